"""What a gate run produces and how it fails: the outcome, the written branch, the gate's own errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from flows.audit import AuditResult, ExpectationOutcome
from flows.datasets import DEFAULT_MODE, Dataset
from flows.lakehouse import BackendUnavailableError, ConcurrentUpdateError, LakehouseClient, connect
from flows.reports import summarize_failures
from flows.reports.text import failing_rows_hints, query_hint

_log = logging.getLogger("wap.gate")


class AuditFailedError(Exception):
    """The checkpoint failed: the data is blocked and main is unchanged."""

    kept: str | None = None  # on_failure inspect: the branch the failed data waits on (see `keep`)
    kept_hint: str = ""  # and how to look at it
    failing_rows: tuple[str, ...] = ()  # and each failed rule's rows there: "<rule>: wap query ... --ref <branch>"
    outcome: GateOutcome | GroupOutcome | None = None  # the blocked run's outcome (set by the flow), for the caller

    def __init__(self, dataset: str, result: AuditResult) -> None:
        # One line (the CLI prints it as is); the audit task logs the detailed description.
        super().__init__(f"{dataset}: {summarize_failures(result)}")
        self.dataset = dataset
        self.result = result

    def keep(self, branch: str, hint: str, failing_rows: Sequence[str] = ()) -> None:
        """Say that the failed branch was kept for inspection, and how to look at it."""
        self.kept, self.kept_hint, self.failing_rows = branch, hint, tuple(failing_rows)

    def __str__(self) -> str:
        said = super().__str__()
        return f"{said}; kept branch {self.kept} for inspection: {self.kept_hint}" if self.kept else said


def keep_blocked_branch(
    error: AuditFailedError, lakehouse: Lakehouse, dataset: Dataset, branch: str, result: AuditResult | None = None
) -> None:
    """on_failure inspect: ``error`` says the failed branch is kept, how to look at it, and a `wap query` listing
    each failed rule's rows there (the dataset's key and the rule's column), each also printed (the run's log).
    ``result``: the dataset's audit (default: the error's)."""
    where = {"backend": lakehouse.backend, "lakehouse": lakehouse.path}
    hints: list[str] = []
    try:
        schema = lakehouse.connect().query(f"SELECT * FROM {dataset.fqn} LIMIT 0", ref=branch).schema
        hints = failing_rows_hints(result or error.result, dataset.fqn, schema, dataset.key, branch, **where)
    except Exception as exc:  # the verdict stands and the branch is kept; only the listings are missing
        _log.warning("no failing-row queries for %s on %s: %s", dataset.name, branch, exc)
    error.keep(branch, query_hint(dataset.fqn, branch, **where), hints)
    for hint in hints:
        print(f"failing rows of {hint}")


class BranchChangedError(ConcurrentUpdateError):
    """Someone else deleted, recreated or wrote to the gate's branch while it ran: nothing was published."""


class PrefectUnavailableError(BackendUnavailableError):
    """The Prefect API named by PREFECT_API_URL does not answer: the gate does not run, or cannot finish."""


@dataclass(frozen=True)
class Lakehouse:
    """Where to write: plain values, so task parameters stay serialisable and readable in the UI."""

    backend: str
    path: str

    def connect(self) -> LakehouseClient:
        return connect(self.backend, self.path)


@dataclass(frozen=True)
class WrittenBranch:
    rows: int  # the table's rows at `commit`
    commit: str  # the branch head right after the import: what the audit reads and publish merges
    added: int | None = None  # the rows this run imported (append: the batch; replace: the whole table)
    snapshot_id: int | None = None  # the Iceberg snapshot of the table at `commit` (the one this run's import made)
    base: str | None = None  # main's commit the branch was made from: the published state the run builds on
    rebased_from: str | None = None  # the commit first written and audited, when main moved and the batch was rebased
    rebases: int = 0  # how many times the batch was put on top of a main that had moved
    snapshot_ids: tuple[int, ...] = ()  # every Iceberg snapshot the run's commits made (replace: delete, append)
    # An append on a backend without data-file access: the batch alone, on its staging branch (gate/staging.py).
    batch_ref: str | None = None


@dataclass
class GateOutcome:
    dataset: str
    branch: str
    source: str
    rows: int | None = None  # the table's rows as audited (and published)
    audited_commit: str | None = None  # the branch commit the audit read, and the only one publish may merge
    published_commit: str | None = None
    audit: AuditResult | None = field(default=None, repr=False)
    mode: str = DEFAULT_MODE
    added: int | None = None  # the rows this run imported (append: the batch)
    group: str | None = None  # the group it ran in (published or blocked with the whole group)
    # on_success inspect: passed, not merged; the branch kept at `audited_commit`, what publish would record stored
    # under this Prefect artifact key (flows.gate.inspection), for `wap publish BRANCH`.
    pending_key: str | None = None
    kept_failed_branch: bool = False  # on_failure inspect: the branch stays for inspection if the run fails

    @property
    def published(self) -> bool:
        return self.published_commit is not None

    @property
    def kept_for_inspection(self) -> bool:
        return self.pending_key is not None

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        """The failed rules of severity warning: they did not block (a published run is 'published with warnings')."""
        return self.audit.warnings if self.audit is not None else []

    @property
    def warned(self) -> bool:
        return bool(self.warnings)


class GroupAuditFailedError(AuditFailedError):
    """A member's own audit or the group's cross-table rules failed: no member is published, main is unchanged."""

    def __init__(self, group: str, results: dict[str, AuditResult]) -> None:
        # `results`: each failed audit by what it audited (a member's name, or CROSS_TABLE_RULES).
        Exception.__init__(
            self, f"{group}: " + "; ".join(f"{name}: {summarize_failures(r)}" for name, r in results.items())
        )
        self.dataset = group
        self.result = next(iter(results.values()))
        self.results = results


CROSS_TABLE_RULES = "cross-table rules"  # how reports name the group's own audit beside its members'


@dataclass
class GroupOutcome:
    """A group run: each member's outcome (all published in one commit, or none) and the cross-table audit."""

    group: str
    branch: str
    members: dict[str, GateOutcome]
    checkpoint: str | None = None  # the cross-table rules' checkpoint (None: the group has none)
    cross: AuditResult | None = field(default=None, repr=False)
    published_commit: str | None = None
    base: str | None = None  # main's commit the branch was made from
    audited_commit: str | None = None  # the branch commit every member was audited at
    pending_key: str | None = None  # on_success inspect: as GateOutcome's
    kept_failed_branch: bool = False

    @property
    def published(self) -> bool:
        return self.published_commit is not None

    @property
    def kept_for_inspection(self) -> bool:
        return self.pending_key is not None

    @property
    def audits(self) -> dict[str, AuditResult]:
        """Every audit the run made: each member's, by name, and the cross-table rules' (CROSS_TABLE_RULES)."""
        done = {name: m.audit for name, m in self.members.items() if m.audit is not None}
        return {**done, CROSS_TABLE_RULES: self.cross} if self.cross is not None else done

    @property
    def warned(self) -> bool:
        return any(audit.warnings for audit in self.audits.values())
