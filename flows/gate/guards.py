"""The checks that make publish merge exactly the audited commit, and the evidence it records."""

from __future__ import annotations

import contextlib

from prefect import get_run_logger
from prefect.context import FlowRunContext

from flows.audit import AuditResult, ExpectationOutcome
from flows.datasets import Dataset
from flows.gate.outcome import BranchChangedError, WrittenBranch
from flows.lakehouse import (
    MAIN,
    BackendUnavailableError,
    BranchNotFoundError,
    LakehouseClient,
    LakehouseError,
    RefNotFoundError,
)

# The properties that name one publish: the branch (unique per run) and the commit it audited.
PUBLISH_MARKER = ("wap.branch", "wap.audited_commit")


def merge_recorded(
    client: LakehouseClient,
    source_ref: str,
    *,
    commit_message: str,
    commit_properties: dict[str, str],
    marker: tuple[str, ...] = PUBLISH_MARKER,
) -> str:
    """Merge `source_ref` into main; return main's new head, even when the reply to the merge was lost.

    A transient error (the connection dropped, a gateway timed out) may come after the service merged. Before
    reporting "not published", main is searched for the commit carrying this merge's `marker` properties:
    found, the merge landed and its hash is returned. If main cannot be read either, the error says that the
    merge may have landed, so nobody reruns a publish blind."""
    try:
        return client.merge_branch(source_ref, MAIN, commit_message=commit_message, commit_properties=commit_properties)
    except BackendUnavailableError as exc:
        wanted = {k: commit_properties[k] for k in marker if commit_properties.get(k)}
        if not marker or len(wanted) != len(marker):
            raise
        try:
            landed = next(iter(client.get_commits(MAIN, filter_by_properties=wanted, limit=1)), None)
        except LakehouseError as lookup:
            raise BackendUnavailableError(
                f"{exc}; then main could not be read to see whether the merge landed ({lookup}): check `wap log`"
                f" for a commit with {', '.join(f'{k}={v}' for k, v in wanted.items())} before running this again"
            ) from exc
        if landed is None:
            raise  # main has no commit of this publish: it did not land
        print(f"the reply to the merge was lost ({exc}); main holds its commit {landed.hash[:12]}: published")
        return landed.hash


def check_branch_unchanged(client: LakehouseClient, branch: str, audited: str) -> None:
    """Raise BranchChangedError, naming what changed, unless `branch` still points at the audited commit."""
    try:
        head = client.get_branch(branch).hash
    except BranchNotFoundError:
        raise BranchChangedError(
            f"branch {branch} was deleted after its commit {audited[:12]} was audited (by `wap gc` or another"
            " user): nothing was published"
        ) from None
    if head == audited:
        return
    try:
        list(client.get_commits(f"{branch}@{audited}", limit=1))  # consumed: a lazy listing raises when read
    except RefNotFoundError:
        raise BranchChangedError(
            f"branch {branch} was deleted and recreated after the audit: the audited commit {audited[:12]} is not"
            f" on it any more (its head is {head[:12]}): nothing was published"
        ) from None
    raise BranchChangedError(
        f"branch {branch} moved after the audit: audited commit {audited[:12]}, head now {head[:12]} (someone"
        " wrote to it): nothing was published"
    )


@contextlib.contextmanager
def branch_must_exist(branch: str, when: str):
    """A lookup failure of the gate's own branch means someone deleted it under the run: say so (exit 3)."""
    try:
        yield
    except (BranchNotFoundError, RefNotFoundError) as exc:
        missing = getattr(exc, "branch", None) or getattr(exc, "ref", "").partition("@")[0]
        if missing != branch:
            raise
        raise BranchChangedError(
            f"branch {branch} was deleted {when} (by `wap gc` or another user): nothing was published"
        ) from exc


def audit_commit_properties(
    dataset: Dataset, branch: str, source: str, written: WrittenBranch, audit: AuditResult
) -> dict[str, str]:
    """The evidence every published commit carries."""
    flow_run = FlowRunContext.get()
    stats = audit.statistics
    return {
        "wap.dataset": dataset.name,
        "wap.table": dataset.fqn,
        "wap.source": source,
        "wap.branch": branch,
        "wap.audited_commit": written.commit,
        "wap.rows": str(written.rows),
        "wap.mode": dataset.mode,
        "wap.added_rows": "" if written.added is None else str(written.added),
        # The table's Iceberg snapshot this commit publishes: readers time-travel by it (append: one per batch).
        "iceberg.snapshot_id": "" if written.snapshot_id is None else str(written.snapshot_id),
        "iceberg.snapshot_ids": ",".join(map(str, written.snapshot_ids)),  # every snapshot the run made, oldest first
        "gx.suite": audit.suite_name,
        "gx.suites": audit.suite_names,  # the batch suite, and the table suite if the checkpoint has one
        "wap.based_on": written.base or "",  # main's commit the run built on (the audit's baseline)
        # When main moved under an append: the batch's first audited commit, and how often it was rebased.
        "wap.rebased_from": written.rebased_from or "",
        "wap.rebases": str(written.rebases),
        "gx.checkpoint": audit.checkpoint_name,
        "gx.success": str(audit.success).lower(),
        "gx.evaluated_expectations": str(stats["evaluated"]),
        "gx.successful_expectations": str(stats["successful"]),
        "gx.unsuccessful_expectations": str(stats["unsuccessful"]),
        # The failed rules of severity warning (published anyway) and info, as `<type>(<column>)`; "" if none.
        "gx.warnings": "; ".join(_rule(e) for e in audit.warnings),
        "gx.infos": "; ".join(_rule(e) for e in audit.infos),
        "gx.run_id": audit.run_id,
        "gx.run_time": audit.run_time,
        "gx.version": audit.gx_version,
        "prefect.flow_run_id": str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else "",
        # What the audit proved about the published table (its files, its distinct columns): the next append
        # relies on it rather than group the whole table again (flows.audit.proof).
        **(audit.proof.properties() if audit.proof is not None else {}),
    }


def _rule(e: ExpectationOutcome) -> str:
    return f"{e.expectation_type}({e.column})" if e.column else e.expectation_type


def delete_quietly(client: LakehouseClient, branch: str) -> bool:
    """Delete the branch if it is there; return whether this call deleted it."""
    try:
        if client.has_branch(branch):
            client.delete_branch(branch)
            return True
    except BranchNotFoundError:
        return False  # deleted meanwhile
    except LakehouseError as exc:  # the branch stays visible to `wap branches` / `wap gc`
        get_run_logger().warning(f"could not delete branch {branch}: {exc}")
    return False
