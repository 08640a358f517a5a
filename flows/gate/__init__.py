"""The gate: the Prefect flow (write -> audit -> publish in one transaction), its outcome, gc and deployments.

flow.py      the flow and its three tasks, as the process reads
group.py     a group's flow: its members on one branch, their audits and the cross-table rules, one publish
inspection.py  on_success inspect: the pending publish kept in Prefect, and `wap publish` (the wap-publish flow)
outcome.py   what a run produces (GateOutcome, WrittenBranch) and the gate's own errors
guards.py    publish merges exactly the audited commit: the branch checks, and the evidence recorded
writing.py   how the write task shapes the table by mode and schema policy
rebase.py    an append that lost the race to another append: its batch on top of the new main
naming.py    gate branch names
runtime.py   how a run executes in this process: Prefect settings, the API's reachability, pause points
verdict.py   how a run ends in Prefect: a block is a Failed state named Blocked, not a crash
gc.py        `wap gc`
deployments.py  `wap serve`
"""

from flows.gate.flow import audit_branch_table, publish_to_main, run_gate, run_publish, wap, write_to_branch
from flows.gate.group import run_group, wap_group
from flows.gate.inspection import NoPendingPublishError, PendingPublish, PublishOutcome, wap_publish
from flows.gate.naming import default_branch_name, gate_branch_name, is_gate_branch, validate_gate_branch
from flows.gate.outcome import (
    AuditFailedError,
    BranchChangedError,
    GateOutcome,
    GroupAuditFailedError,
    GroupOutcome,
    PrefectUnavailableError,
    WrittenBranch,
)
from flows.gate.runtime import check_prefect_api

__all__ = [
    "AuditFailedError",
    "BranchChangedError",
    "GateOutcome",
    "GroupAuditFailedError",
    "GroupOutcome",
    "NoPendingPublishError",
    "PendingPublish",
    "PrefectUnavailableError",
    "PublishOutcome",
    "WrittenBranch",
    "audit_branch_table",
    "check_prefect_api",
    "default_branch_name",
    "gate_branch_name",
    "is_gate_branch",
    "publish_to_main",
    "run_gate",
    "run_group",
    "run_publish",
    "validate_gate_branch",
    "wap",
    "wap_group",
    "wap_publish",
    "write_to_branch",
]
