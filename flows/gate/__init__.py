"""The gate: the Prefect flow (write -> audit -> publish in one transaction), its outcome, gc and deployments."""

from flows.gate.flow import (
    AuditFailedError,
    BranchChangedError,
    GateOutcome,
    PrefectUnavailableError,
    WrittenBranch,
    audit_branch_table,
    check_prefect_api,
    default_branch_name,
    publish_to_main,
    run_gate,
    validate_gate_branch,
    wap,
    write_to_branch,
)

__all__ = [
    "AuditFailedError",
    "BranchChangedError",
    "GateOutcome",
    "PrefectUnavailableError",
    "WrittenBranch",
    "audit_branch_table",
    "check_prefect_api",
    "default_branch_name",
    "publish_to_main",
    "run_gate",
    "validate_gate_branch",
    "wap",
    "write_to_branch",
]
