"""How a gate run ends in Prefect: a block is the gate's verdict, not a crash.

A blocked run ends in a Failed state named ``Blocked`` with a one-line message (what blocked it, where the report
is), the block itself (AuditFailedError, SchemaMismatchError) as its data, and no traceback in any log; a run
published despite failed rules of severity warning ends ``Completed`` named ``Published with warnings``. The flow
returns these states (Prefect 3 takes a returned state as the run's final one); ``outcome_of`` turns a run's final
state back into the outcome, or raises the block, for ``run_gate`` / ``run_group`` and so for the CLI's exit code.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.states import Completed, Failed, State

from flows.gate.outcome import AuditFailedError, GateOutcome, GroupOutcome
from flows.lakehouse import SchemaMismatchError

BLOCKED = "Blocked"
PUBLISHED_WITH_WARNINGS = "Published with warnings"
EXPECTED_BLOCKS = (AuditFailedError, SchemaMismatchError)  # the gate's verdicts: exit 1, never a crash


def blocked(outcome: GateOutcome | GroupOutcome, block: Exception, report: str) -> State:
    """The final state of a run its audit (or the schema check) blocked: Failed, named Blocked, one line."""
    if isinstance(block, AuditFailedError):
        block.outcome = outcome
        said = f"blocked by the audit: {_failed_counts(block)}"
    else:
        said = "blocked by the schema check: the batch does not fit the table on main"
    quiet_expected_blocks()  # Prefect logs the block it raises on the way out (see below)
    return Failed(name=BLOCKED, message=f"{said}; nothing published, main unchanged (report: {report})", data=block)


def _failed_counts(block: AuditFailedError) -> str:
    results = getattr(block, "results", None) or {block.dataset: block.result}
    return "; ".join(f"{name}: {len(r.blocking)} critical rule(s) failed" for name, r in results.items())


def finished(outcome: Any) -> Any:
    """The run's return value: the outcome itself, or, published with failed warning rules, a Completed state
    named 'Published with warnings' holding it."""
    if not (outcome.published and outcome.warned):
        return outcome
    return Completed(name=PUBLISHED_WITH_WARNINGS, message=_warned(outcome), data=outcome)


def _warned(outcome: Any) -> str:
    if isinstance(outcome, GroupOutcome):
        counts = [f"{name}: {len(a.warnings)}" for name, a in outcome.audits.items() if a.warnings]
        return f"published at {outcome.published_commit}; warnings ({', '.join(counts)})"
    return f"published at {outcome.published_commit}; {len(outcome.warnings)} warning rule(s) failed"


def outcome_of(state: State) -> Any:
    """The outcome of a finished run from its final state; raises what it failed with (a block: AuditFailedError
    or SchemaMismatchError, exit 1; anything else as it was raised)."""
    return state.result()


class _DropExpectedBlocks(logging.Filter):
    """Prefect logs a flow run's failure with its traceback ("Engine execution exited with unexpected exception",
    flow_engine.run_flow, under a deployment; "Task run failed with exception", the write task's schema check).
    For the gate's own verdicts the state says it all: the flow logger's record is dropped, the task logger's
    keeps its one line without the traceback."""

    def __init__(self, drop: bool) -> None:
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EXPECTED_BLOCKS):
            if self.drop:
                return False
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_blocks() -> None:
    """Install the filter on Prefect's flow- and task-run loggers, once per process."""
    for name, drop in (("prefect.flow_runs", True), ("prefect.task_runs", False)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropExpectedBlocks) for f in logger.filters):
            logger.addFilter(_DropExpectedBlocks(drop))
