"""on_success inspect: an audit that passed, kept on its branch instead of merged, and `wap publish BRANCH` (the
`wap-publish` flow) merging it later, exactly as the gate would have.

    wap / wap-group (on_success inspect)
        keep_for_inspection  the branch still at the audited commit; record what publish would record
    wap-publish BRANCH
        publish_inspected    the record of BRANCH, made by a completed gate run; the branch still at the audited
                             commit (moved, deleted or recreated: nothing is published); merge exactly
                             BRANCH@<audited commit> with the recorded properties plus `wap.inspected`,
                             `wap.published_by`; delete the branch; record that the pending publish was used

Where the pending publish lives: a Prefect table artifact, key `wap-pending-<branch slug>-<hash>`, one row per
value: the dataset or group, the audited commit, the commit message, the lakehouse, then every commit property
publish will record (readable in the UI as "what publish will record"). It survives the process and needs no
file the Bauplan backend does not have. Each change of state is a new artifact under the same key (Prefect
keeps a key's history); the newest says whether the publish is still pending or was used. A Prefect Variable
would not do: its value is capped at 5000 characters, less than a checkpoint's evidence.

Trust: the record is as trustworthy as write access to the Prefect API. `wap publish` only takes a record made
by a gate flow run (`wap` or `wap-group`) that completed, and merges only the commit the record names, from the
branch that still points at it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from flows.datasets import DatasetError
from flows.gate.guards import (
    PUBLISH_MARKER,
    branch_must_exist,
    check_branch_unchanged,
    delete_quietly,
    merge_recorded,
)
from flows.gate.outcome import Lakehouse
from flows.gate.runtime import THIS_RUN
from flows.lakehouse import (
    MAIN,
    ConcurrentUpdateError,
    MergeConflictError,
    default_backend,
    default_lakehouse,
)
from flows.lakehouse.leases import hold_branch_lease
from flows.reports.prefect import emit_inspection_event

KEY_PREFIX = "wap-pending-"
PENDING, PUBLISHED = "pending", "published"
GATE_FLOWS = ("wap", "wap-group")  # the flows whose runs may record a pending publish
_SLUG = 48
# The rows' `what` column: a fact of the pending publish, or a property the merge commit will carry.
FACT, PROPERTY = "pending publish", "commit property"


class NoPendingPublishError(DatasetError):
    """`wap publish BRANCH` found nothing it may publish for BRANCH (exit 2)."""


class MainChangedError(ConcurrentUpdateError):
    """main changed a table of the inspected branch since its audit: publishing it would merge unaudited state."""


@dataclass(frozen=True)
class PendingPublish:
    """What publish would have recorded, kept for `wap publish`: plain values, readable as task parameters."""

    kind: str  # "dataset" or "group"
    name: str
    branch: str
    audited_commit: str
    commit_message: str
    properties: dict[str, str]
    tables: tuple[str, ...]
    backend: str
    lakehouse: str  # the embedded lakehouse's directory, resolved; "" on Bauplan
    state: str = PENDING
    published_commit: str = ""
    flow_run_id: str | None = field(default=None, compare=False)  # the run that recorded this state


@dataclass
class PublishOutcome:
    """A `wap publish`: what it merged, and where."""

    kind: str
    name: str
    branch: str
    audited_commit: str
    tables: tuple[str, ...]
    published_commit: str | None = None

    @property
    def published(self) -> bool:
        return self.published_commit is not None


def pending_key(branch: str) -> str:
    """The artifact key of a branch's pending publish: Prefect keys are lowercase letters, digits and dashes,
    so a slug of the name, and a hash of the exact name (branch names are case-sensitive and may be long)."""
    slug = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")[:_SLUG].strip("-")
    return f"{KEY_PREFIX}{slug}-{hashlib.sha256(branch.encode()).hexdigest()[:12]}"


def lakehouse_location(lakehouse: Lakehouse) -> str:
    return str(Path(lakehouse.path).expanduser().resolve()) if lakehouse.backend == "local" else ""


def _rows(pending: PendingPublish) -> list[dict[str, str]]:
    facts = {
        "state": pending.state,
        "kind": pending.kind,
        "name": pending.name,
        "branch": pending.branch,
        "audited_commit": pending.audited_commit,
        "commit_message": pending.commit_message,
        "tables": ",".join(pending.tables),
        "backend": pending.backend,
        "lakehouse": pending.lakehouse,
        "published_commit": pending.published_commit,
    }
    return [{"what": FACT, "key": k, "value": v} for k, v in facts.items()] + [
        {"what": PROPERTY, "key": k, "value": v} for k, v in pending.properties.items()
    ]


def _describe(pending: PendingPublish) -> str:
    who = f"{pending.kind} {pending.name}"
    if pending.state == PUBLISHED:
        return f"{who}: branch {pending.branch} published by `wap publish` at commit {pending.published_commit}"
    return (
        f"{who}: audit passed, kept on branch {pending.branch} at commit {pending.audited_commit[:12]} for inspection;"
        f" what `wap publish {pending.branch}` will record"
    )


def record_pending(pending: PendingPublish) -> str:
    """Store this state of the branch's pending publish (a new artifact under its key); return the key."""
    key = pending_key(pending.branch)
    create_table_artifact(key=key, table=_rows(pending), description=_describe(pending))
    return key


def _parse(artifact: Any) -> PendingPublish:
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    facts = {r["key"]: str(r["value"]) for r in data if r.get("what") == FACT}
    properties = {r["key"]: "" if r["value"] is None else str(r["value"]) for r in data if r.get("what") == PROPERTY}
    return PendingPublish(
        kind=facts["kind"],
        name=facts["name"],
        branch=facts["branch"],
        audited_commit=facts["audited_commit"],
        commit_message=facts["commit_message"],
        properties=properties,
        tables=tuple(t for t in facts["tables"].split(",") if t),
        backend=facts["backend"],
        lakehouse=facts["lakehouse"],
        state=facts["state"],
        published_commit=facts.get("published_commit", ""),
        flow_run_id=str(artifact.flow_run_id) if artifact.flow_run_id else None,
    )


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def list_pending(show: int = 10, look_at: int = 50) -> list[str]:
    """The branches whose newest record is still pending, newest first: at most ``show`` of them, from the
    ``look_at`` most recently updated keys (one request, so a long history costs no more)."""
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
    from prefect.client.schemas.sorting import ArtifactCollectionSort

    with _client() as client:
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(like_=KEY_PREFIX)),
            sort=ArtifactCollectionSort.UPDATED_DESC,
            limit=look_at,
        )
    branches = []
    for artifact in latest:
        try:
            pending = _parse(artifact)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if pending.state == PENDING and (artifact.key or "").startswith(KEY_PREFIX):
            branches.append(pending.branch)
    return branches[:show]


def read_pending(branch: str) -> PendingPublish:
    """The branch's pending publish, as its newest record says; NoPendingPublishError (exit 2) when there is none
    (never recorded, already published, or not recorded by a completed gate run)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with _client() as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[pending_key(branch)])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
        if not found:
            others = [b for b in list_pending() if b != branch]
            listed = f" (pending: {', '.join(others)})" if others else " (none is pending)"
            raise NoPendingPublishError(
                f"no pending publish for branch {branch}: no run kept it for inspection (on_success inspect){listed}"
            )
        try:
            pending = _parse(found[0])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NoPendingPublishError(
                f"the pending publish of branch {branch} (artifact {found[0].key}) is unreadable ({exc!r:.80}):"
                " run the gate again"
            ) from None
        if pending.branch != branch:  # two names with one slug and hash: never
            raise NoPendingPublishError(f"no pending publish for branch {branch}: its key holds {pending.branch}'s")
        if pending.state == PUBLISHED:
            raise NoPendingPublishError(
                f"no pending publish for branch {branch}: it was published already, at commit"
                f" {pending.published_commit}"
            )
        _check_origin(client, pending)
    return pending


def _check_origin(client: Any, pending: PendingPublish) -> None:
    """Only a completed gate run's record is taken: not one written by hand, nor one of a run that failed later."""
    why = None
    if pending.flow_run_id is None:
        why = "it was not recorded by a flow run"
    else:
        run = client.read_flow_run(pending.flow_run_id)
        name = client.read_flow(run.flow_id).name
        state = run.state.type.value if run.state is not None else "unknown"
        if name not in GATE_FLOWS:
            why = f"it was recorded by flow {name!r}, not by the gate"
        elif state != "COMPLETED":
            why = f"the gate run that recorded it ({pending.flow_run_id}) is {state}, not COMPLETED"
    if why:
        raise NoPendingPublishError(
            f"the pending publish of branch {pending.branch} cannot be trusted: {why}; run the gate again"
        )


@task(name="keep for inspection", task_run_name="keep {pending.name} on {pending.branch}", cache_policy=NO_CACHE)
def keep_for_inspection(lakehouse: Lakehouse, pending: PendingPublish) -> str:
    """on_success inspect: check the branch still holds the audited commit, record what publish would record,
    say so; merge nothing. Returns the record's artifact key."""
    check_branch_unchanged(lakehouse.connect(), pending.branch, pending.audited_commit)
    key = record_pending(pending)
    emit_inspection_event(
        "wap.audit.inspect",
        pending.name,
        {
            "kind": pending.kind,
            "branch": pending.branch,
            "audited_commit": pending.audited_commit,
            "tables": list(pending.tables),
            "pending": key,
        },
    )
    print(
        f"kept branch {pending.branch} at commit {pending.audited_commit} for inspection, not published:"
        f" `wap publish {pending.branch}` merges it (recorded under artifact {key})"
    )
    return key


@task(name="publish inspected", task_run_name="publish {pending.name} from {pending.branch}", cache_policy=NO_CACHE)
def publish_inspected(lakehouse: Lakehouse, pending: PendingPublish) -> str:
    """Merge exactly the audited commit, with what the audit recorded plus who published it; delete the branch."""
    client = lakehouse.connect()
    wanted = {k: pending.properties[k] for k in PUBLISH_MARKER if pending.properties.get(k)}
    landed = next(iter(client.get_commits(MAIN, filter_by_properties=wanted, limit=1)), None) if wanted else None
    if landed is not None:  # an earlier `wap publish` merged it and could not record that: record it now
        record_pending(_published(pending, landed.hash))
        raise NoPendingPublishError(
            f"no pending publish for branch {pending.branch}: main already holds it, at commit {landed.hash}"
        )
    check_branch_unchanged(client, pending.branch, pending.audited_commit)
    flow_run = FlowRunContext.get()
    properties = {
        **pending.properties,
        "wap.inspected": "true",
        "wap.published_by": client.info().user.username or "",
        "wap.publish_flow_run_id": str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else "",
    }
    with branch_must_exist(pending.branch, f"after its commit {pending.audited_commit[:12]} was audited"):
        try:
            commit = merge_recorded(
                client,
                f"{pending.branch}@{pending.audited_commit}",
                commit_message=pending.commit_message,
                commit_properties=properties,
            )
        except MergeConflictError as exc:
            changed = ", ".join(exc.tables or pending.tables)
            raise MainChangedError(
                f"main changed {changed} since the audit: run the gate again (nothing was published; branch"
                f" {pending.branch} is kept)"
            ) from exc
    delete_quietly(client, pending.branch)
    print(f"published {pending.kind} {pending.name} from {pending.branch} to {MAIN} at commit {commit}")
    return commit


def _published(pending: PendingPublish, commit: str) -> PendingPublish:
    from dataclasses import replace

    return replace(pending, state=PUBLISHED, published_commit=commit)


@flow(name="wap-publish", flow_run_name="wap-publish-{branch}", log_prints=True)
def wap_publish(branch: str, backend: str | None = None, lakehouse: str | None = None) -> PublishOutcome:
    """Publish a branch a gate run kept for inspection (on_success inspect): exactly its audited commit, with the
    evidence the audit recorded, or nothing."""
    target = Lakehouse(backend or default_backend(), str(lakehouse or default_lakehouse()))
    pending = read_pending(branch)
    here = lakehouse_location(target)
    if (pending.backend, pending.lakehouse) != (target.backend, here):
        where = f"--backend {pending.backend}" + (f" --lakehouse {pending.lakehouse}" if pending.lakehouse else "")
        raise NoPendingPublishError(
            f"branch {branch} was kept on another lakehouse than this one ({target.backend} {here}): run"
            f" `wap publish {branch} {where}`"
        )
    outcome = PublishOutcome(pending.kind, pending.name, branch, pending.audited_commit, pending.tables)
    THIS_RUN.outcome = outcome
    with hold_branch_lease(target.connect(), branch):  # `wap gc` leaves the branch alone meanwhile
        outcome.published_commit = publish_inspected(target, pending)
    record_pending(_published(pending, outcome.published_commit))
    emit_inspection_event(
        "wap.inspect.published",
        pending.name,
        {
            "kind": pending.kind,
            "branch": branch,
            "audited_commit": pending.audited_commit,
            "commit": outcome.published_commit,
            "tables": list(pending.tables),
        },
    )
    return outcome
