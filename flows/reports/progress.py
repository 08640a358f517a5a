"""A run's progress in Prefect: the `<name>-progress` progress artifact (0-100 %, with what it is doing), and a
log line per step, so a long write or audit is never silent.

The run's stages (`write <dataset>` for each dataset written, `audit <dataset>`, a group's `audit across tables`,
`publish`) weigh the same; inside a write the import reports each chunk it writes (flows.lakehouse.progress), at
most one update a second. Found by the flow run's id, so tasks need no parameter for it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.reports.history import current_flow_run_id
from flows.reports.prefect import artifact_key

THROTTLE_SECONDS = 1.0
_RUNS: dict[str, RunProgress] = {}
_LOCK = threading.Lock()


class RunProgress:
    def __init__(self, name: str, stages: list[str]) -> None:
        self.name, self.stages = name, stages
        # Prefect's sync/async dispatch types the call as either; in a sync flow it answers the id.
        self.artifact_id: Any = create_progress_artifact(
            progress=0.0, key=artifact_key(name, "progress"), description=f"{name}: starting"
        )
        self.percent = 0.0
        self._last = 0.0

    def update(self, stage: str, fraction: float, said: str, *, force: bool = False) -> None:
        """``fraction`` (0-1) of ``stage`` done; ``said`` what it is doing. Throttled unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last < THROTTLE_SECONDS:
            return
        self._last = now
        index = self.stages.index(stage) if stage in self.stages else len(self.stages) - 1
        percent = round(100 * (index + min(max(fraction, 0.0), 1.0)) / len(self.stages), 1)
        self.percent = max(self.percent, percent)  # never backwards (a rebase audits again)
        print(f"progress {self.percent:.0f}%: {said}")
        update_progress_artifact(self.artifact_id, self.percent, description=f"{self.name}: {said}")


def start_run_progress(name: str, stages: list[str]) -> RunProgress | None:
    """The running flow's progress, made once per flow run; None outside a flow."""
    run_id = current_flow_run_id()
    if run_id is None:
        return None
    progress = RunProgress(name, stages)
    with _LOCK:
        _RUNS[run_id] = progress
        while len(_RUNS) > 100:  # a served process runs many flows: the oldest runs' entries go
            _RUNS.pop(next(iter(_RUNS)))
    return progress


def run_progress() -> RunProgress | None:
    """This flow run's progress (from a task of the flow too), or None."""
    run_id = current_flow_run_id()
    with _LOCK:
        return _RUNS.get(run_id) if run_id else None


def report_step(stage: str, fraction: float, said: str) -> None:
    """A step of this run, always recorded (stage boundaries are few)."""
    progress = run_progress()
    if progress is not None:
        progress.update(stage, fraction, said, force=True)


def import_listener(stage: str, what: str) -> Any:
    """A listener for flows.lakehouse.progress: each chunk of an import as a fraction of ``stage``."""
    progress = run_progress()

    def listen(rows: int, total: int | None) -> None:
        if progress is None:
            return
        if total:
            progress.update(stage, rows / total, f"{what}: {rows:,} of {total:,} rows written")
        else:  # a CSV: its row count is known only once read
            progress.update(stage, 0.5, f"{what}: {rows:,} rows written")

    return listen
