"""The WAP gate: write new data to a branch, audit it with the stored GX checkpoint, publish only if it passes.

    with transaction():
        write_to_branch    create the branch from main, create the table from the source, import the rows
        audit_branch_table read the branch table back, run the checkpoint, report; raise if it fails
        publish_to_main    merge into main with the audit as commit properties, delete the branch

A failure anywhere rolls the transaction back: the write task's rollback hook deletes the branch (unless
the user keeps failed branches for inspection), and main is never touched.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import threading
import uuid
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.tasks import exponential_backoff
from prefect.transactions import get_transaction, transaction

from .audit import AuditResult, audit_table, describe_failures, summarize_failures
from .datasets import Dataset, get_dataset
from .lakehouse import (
    MAIN,
    BackendUnavailableError,
    InvalidNameError,
    LakehouseError,
    connect,
    default_backend,
    default_lakehouse,
)
from .lakehouse.names import validate_branch
from .reports import emit_audit_event, publish_audit_artifacts, publish_validation_report


class AuditFailedError(Exception):
    """The checkpoint failed: the data is blocked and main is unchanged."""

    def __init__(self, dataset: str, result: AuditResult) -> None:
        # One line (the CLI prints it as is); the audit task logs the detailed description.
        super().__init__(f"{dataset}: {summarize_failures(result)}")
        self.dataset = dataset
        self.result = result


@dataclass(frozen=True)
class Lakehouse:
    """Where to write: plain values, so task parameters stay serialisable and readable in the UI."""

    backend: str
    path: str

    def connect(self):
        return connect(self.backend, self.path)


@dataclass
class GateOutcome:
    dataset: str
    branch: str
    source: str
    rows: int | None = None
    published_commit: str | None = None
    audit: AuditResult | None = field(default=None, repr=False)

    @property
    def published(self) -> bool:
        return self.published_commit is not None


def default_branch_name(dataset: str, user: str | None = None) -> str:
    """`<user>.wap_<dataset>_<short id>`: Bauplan requires branches to start with the username."""
    user = re.sub(r"[^A-Za-z0-9_-]", "_", user or os.environ.get("WAP_USER") or getpass.getuser()) or "wap"
    return f"{user}.wap_{dataset}_{uuid.uuid4().hex[:8]}"


def validate_gate_branch(branch: str) -> str:
    """A valid branch name that is not main: the gate only ever writes to its own branch."""
    if validate_branch(branch) == MAIN:
        raise InvalidNameError("the gate cannot write to main directly: give another --branch")
    return branch


def _is_transient(task, task_run, state) -> bool:
    # Retry only what may succeed on a second try; bad input fails at once.
    try:
        state.result()
    except BackendUnavailableError:
        return True
    except Exception:
        return False
    return False


@task(
    name="write",
    task_run_name="write {dataset.name} to {branch}",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=_is_transient,
)
def write_to_branch(lakehouse: Lakehouse, dataset: Dataset, source: str, branch: str, keep_failed_branch: bool) -> int:
    """Create the branch from main and load the source into the dataset's table there; return its row count."""
    client = lakehouse.connect()
    get_transaction().set("rollback", {"lakehouse": lakehouse, "branch": branch, "keep": keep_failed_branch})
    client.create_branch(branch, from_ref=MAIN)
    try:
        client.create_table(dataset.table, source, branch=branch, namespace=dataset.namespace, replace=True)
        client.import_data(dataset.table, source, branch=branch, namespace=dataset.namespace)
        rows = client.get_table(dataset.table, branch, namespace=dataset.namespace).records
    except BaseException as exc:
        # This task's own rollback hook only runs once it has completed, so clean up here; a transient
        # failure always cleans up, so that the retry can create the branch again.
        if not keep_failed_branch or isinstance(exc, BackendUnavailableError):
            _delete_quietly(client, branch)
        raise
    print(f"wrote {rows} rows from {source} to {dataset.fqn} on branch {branch}")
    return rows


@write_to_branch.on_rollback
def delete_gate_branch(txn) -> None:
    params = txn.get("rollback")
    if params["keep"]:
        print(f"kept branch {params['branch']} for inspection")
        return
    _delete_quietly(params["lakehouse"].connect(), params["branch"])
    print(f"rolled back: deleted branch {params['branch']}")


@task(name="audit", task_run_name="audit {dataset.name} on {branch}", cache_policy=NO_CACHE)
def audit_branch_table(lakehouse: Lakehouse, dataset: Dataset, branch: str) -> AuditResult:
    """Run the dataset's checkpoint on the branch table; publish its artifacts; raise if it fails."""
    result = audit_table(
        lakehouse.connect(),
        dataset.table,
        ref=branch,
        namespace=dataset.namespace,
        checkpoint=dataset.checkpoint,
        run_name=f"{dataset.name}-{branch}",
    )
    publish_audit_artifacts(dataset.name, result)
    emit_audit_event(dataset.name, result, branch=branch)
    stats = result.statistics
    print(f"audit {'passed' if result.success else 'FAILED'}: {stats['successful']}/{stats['evaluated']} expectations")
    if not result.success:
        print(describe_failures(result))
        raise AuditFailedError(dataset.name, result)
    return result


@task(name="publish", task_run_name="publish {dataset.name} from {branch}", cache_policy=NO_CACHE)
def publish_to_main(
    lakehouse: Lakehouse, dataset: Dataset, branch: str, source: str, rows: int, audit: AuditResult
) -> str:
    """Merge the audited branch into main, recording the audit on the commit; then delete the branch."""
    client = lakehouse.connect()
    commit = client.merge_branch(
        branch,
        MAIN,
        commit_message=f"wap: publish {dataset.fqn} ({rows} rows, audit {audit.suite_name} passed)",
        commit_properties=audit_commit_properties(dataset, branch, source, rows, audit),
    )
    _delete_quietly(client, branch)
    print(f"published {dataset.fqn} to {MAIN} at commit {commit}")
    return commit


def audit_commit_properties(
    dataset: Dataset, branch: str, source: str, rows: int, audit: AuditResult
) -> dict[str, str]:
    """The evidence every published commit carries."""
    flow_run = FlowRunContext.get()
    stats = audit.statistics
    return {
        "wap.dataset": dataset.name,
        "wap.table": dataset.fqn,
        "wap.source": source,
        "wap.branch": branch,
        "wap.rows": str(rows),
        "gx.suite": audit.suite_name,
        "gx.checkpoint": audit.checkpoint_name,
        "gx.success": str(audit.success).lower(),
        "gx.evaluated_expectations": str(stats["evaluated"]),
        "gx.successful_expectations": str(stats["successful"]),
        "gx.unsuccessful_expectations": str(stats["unsuccessful"]),
        "gx.run_id": audit.run_id,
        "gx.run_time": audit.run_time,
        "gx.version": audit.gx_version,
        "prefect.flow_run_id": str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else "",
    }


def _delete_quietly(client, branch: str) -> None:
    try:
        if client.has_branch(branch):
            client.delete_branch(branch)
    except LakehouseError as exc:  # the branch stays visible to `wap branches` / `wap gc`
        get_run_logger().warning(f"could not delete branch {branch}: {exc}")


@flow(name="wap", flow_run_name="wap-{dataset}", log_prints=True)
def wap(
    dataset: str,
    source: str | None = None,
    branch: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
    keep_failed_branch: bool = False,
) -> GateOutcome:
    """Write-Audit-Publish one dataset: published to main only if its GX checkpoint passes."""
    spec = get_dataset(dataset)
    target = Lakehouse(backend or default_backend(), str(lakehouse or default_lakehouse()))
    outcome = GateOutcome(
        spec.name, validate_gate_branch(branch or default_branch_name(spec.name)), source or spec.source
    )
    try:
        with transaction():
            outcome.rows = write_to_branch(target, spec, outcome.source, outcome.branch, keep_failed_branch)
            outcome.audit = audit_branch_table(target, spec, outcome.branch)
            outcome.published_commit = publish_to_main(
                target, spec, outcome.branch, outcome.source, outcome.rows, outcome.audit
            )
    except AuditFailedError as exc:
        outcome.audit = exc.result
        publish_validation_report(outcome, error=exc)
        raise
    except Exception as exc:
        publish_validation_report(outcome, error=exc)
        raise
    publish_validation_report(outcome)
    return outcome


def run_gate(
    dataset: str,
    source: str | None = None,
    branch: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
    keep_failed_branch: bool = False,
) -> GateOutcome:
    """Run the ``wap`` flow in this process, as ``wap run`` and ``wap demo`` do.

    Prefect's flow-run heartbeats are off for these runs unless the user set a heartbeat frequency
    (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``). Heartbeats let a server notice a worker that died; here the
    run lives and dies with the caller's own process, and stopping the heartbeat thread adds up to 1 s
    to every run (it sleeps in 1 s steps). Deployments (``wap serve``) run the flow with heartbeats.
    """
    with _settings_without_heartbeats():
        return wap(
            dataset,
            source=source,
            branch=branch,
            backend=backend,
            lakehouse=lakehouse,
            keep_failed_branch=keep_failed_branch,
        )


_QUIET_SETTINGS: list[tuple[object, object]] = []  # (settings, the same without heartbeats): the last pair
_QUIET_LOCK = threading.Lock()  # `wap run --all` starts gates from several threads


def _settings_without_heartbeats() -> contextlib.AbstractContextManager:
    """``temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})``, with the copied settings
    kept for the next run (copying Prefect's settings takes ~40 ms, a tenth of a small gate run)."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = get_settings_context()
    if "heartbeat_frequency" in context.settings.flows.model_fields_set:  # the user's choice stands
        return contextlib.nullcontext()
    with _QUIET_LOCK:
        if not _QUIET_SETTINGS or _QUIET_SETTINGS[0][0] is not context.settings:
            quiet = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
            _QUIET_SETTINGS[:] = [(context.settings, quiet)]
        quiet = _QUIET_SETTINGS[0][1]
    return SettingsContext(profile=context.profile, settings=quiet)
