"""The gate: the Prefect flow (write -> audit -> publish in one transaction), its outcome, gc and deployments.

flow.py      the flow and its three tasks, as the process reads
outcome.py   what a run produces (GateOutcome, WrittenBranch) and the gate's own errors
guards.py    publish merges exactly the audited commit: the branch checks, and the evidence recorded
writing.py   how the write task shapes the table by mode and schema policy
rebase.py    an append that lost the race to another append: its batch on top of the new main
naming.py    gate branch names
runtime.py   how a run executes in this process: Prefect settings, the API's reachability, pause points
gc.py        `wap gc`
deployments.py  `wap serve`
"""

from flows.gate.flow import audit_branch_table, publish_to_main, run_gate, wap, write_to_branch
from flows.gate.naming import default_branch_name, is_gate_branch, validate_gate_branch
from flows.gate.outcome import (
    AuditFailedError,
    BranchChangedError,
    GateOutcome,
    PrefectUnavailableError,
    WrittenBranch,
)
from flows.gate.runtime import check_prefect_api

__all__ = [
    "AuditFailedError",
    "BranchChangedError",
    "GateOutcome",
    "PrefectUnavailableError",
    "WrittenBranch",
    "audit_branch_table",
    "check_prefect_api",
    "default_branch_name",
    "is_gate_branch",
    "publish_to_main",
    "run_gate",
    "validate_gate_branch",
    "wap",
    "write_to_branch",
]
