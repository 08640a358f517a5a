"""The WAP gate: write new data to a branch, audit it with the stored GX checkpoint, publish only if it passes.

    with hold_branch_lease(branch), transaction():
        write_to_branch    create the branch from main, create the table from the source, import the rows;
                           return the commit it wrote
        audit_branch_table read that exact commit back, run the checkpoint, report; raise if it fails
        publish_to_main    merge that exact commit into main with the audit as commit properties, delete the
                           branch; if the branch moved, was deleted or recreated meanwhile, publish nothing

A failure anywhere rolls the transaction back: the write task's rollback hook deletes the branch (unless
the user keeps failed branches for inspection), and main is never touched. The lease tells `wap gc` that
the branch belongs to a live run.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import sys
import threading
import uuid
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.tasks import exponential_backoff
from prefect.transactions import get_transaction, transaction

from flows.audit import AuditResult, audit_table, describe_failures, summarize_failures
from flows.datasets import Dataset, get_dataset
from flows.lakehouse import (
    MAIN,
    BackendUnavailableError,
    BranchNotFoundError,
    ConcurrentUpdateError,
    InvalidNameError,
    LakehouseError,
    RefNotFoundError,
    connect,
    default_backend,
    default_lakehouse,
)
from flows.lakehouse.leases import hold_branch_lease
from flows.lakehouse.names import validate_branch
from flows.lakehouse.sources import inspect_source
from flows.reports import emit_audit_event, publish_audit_artifacts, publish_validation_report


class AuditFailedError(Exception):
    """The checkpoint failed: the data is blocked and main is unchanged."""

    def __init__(self, dataset: str, result: AuditResult) -> None:
        # One line (the CLI prints it as is); the audit task logs the detailed description.
        super().__init__(f"{dataset}: {summarize_failures(result)}")
        self.dataset = dataset
        self.result = result


class BranchChangedError(ConcurrentUpdateError):
    """Someone else deleted, recreated or wrote to the gate's branch while it ran: nothing was published."""


class PrefectUnavailableError(BackendUnavailableError):
    """The Prefect API named by PREFECT_API_URL does not answer: the gate does not run, or cannot finish."""


@dataclass(frozen=True)
class Lakehouse:
    """Where to write: plain values, so task parameters stay serialisable and readable in the UI."""

    backend: str
    path: str

    def connect(self):
        return connect(self.backend, self.path)


@dataclass(frozen=True)
class WrittenBranch:
    rows: int
    commit: str  # the branch head right after the import: what the audit reads and publish merges


@dataclass
class GateOutcome:
    dataset: str
    branch: str
    source: str
    rows: int | None = None
    audited_commit: str | None = None  # the branch commit the audit read, and the only one publish may merge
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


def pause_point(step: str) -> None:
    """Fault injection for the integrity tests: with ``WAP_PAUSE_AT=<step>`` the gate stops itself (SIGSTOP)
    just before that step (``audit`` or ``publish``), so a test can change the branch under a run that is
    provably at that point, then let it go on with SIGCONT. Unset, this does nothing."""
    if os.environ.get("WAP_PAUSE_AT") == step:
        import signal

        print(f"paused before {step} (pid {os.getpid()})")
        os.kill(os.getpid(), signal.SIGSTOP)


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
def write_to_branch(
    lakehouse: Lakehouse, dataset: Dataset, source: str, branch: str, keep_failed_branch: bool
) -> WrittenBranch:
    """Create the branch from main and load the source into the dataset's table there; return the commit."""
    client = lakehouse.connect()
    if lakehouse.backend == "local":
        # Refuse a source the audit would misread (e.g. columns `x` and `X`) before any branch exists.
        # (Bauplan reads the source itself, from where this process may not be able to.)
        inspect_source(source)
    get_transaction().set("rollback", {"lakehouse": lakehouse, "branch": branch, "keep": keep_failed_branch})
    client.create_branch(branch, from_ref=MAIN)
    try:
        with branch_must_exist(branch, "while the gate was writing to it"):
            client.create_table(dataset.table, source, branch=branch, namespace=dataset.namespace, replace=True)
            client.import_data(dataset.table, source, branch=branch, namespace=dataset.namespace)
            commit = client.get_branch(branch).hash
            rows = client.get_table(dataset.table, f"{branch}@{commit}", namespace=dataset.namespace).records
    except BaseException as exc:
        # This task's own rollback hook only runs once it has completed, so clean up here; a transient
        # failure always cleans up, so that the retry can create the branch again.
        if not keep_failed_branch or isinstance(exc, BackendUnavailableError):
            _delete_quietly(client, branch)
        raise
    print(f"wrote {rows} rows from {source} to {dataset.fqn} on branch {branch} at commit {commit}")
    return WrittenBranch(rows or 0, commit)


@write_to_branch.on_rollback
def delete_gate_branch(txn) -> None:
    params = txn.get("rollback")
    if params["keep"]:
        print(f"kept branch {params['branch']} for inspection")
        return
    if _delete_quietly(params["lakehouse"].connect(), params["branch"]):
        print(f"rolled back: deleted branch {params['branch']}")
    else:
        print(f"rolled back: branch {params['branch']} was already gone")


@task(name="audit", task_run_name="audit {dataset.name} on {branch}", cache_policy=NO_CACHE)
def audit_branch_table(lakehouse: Lakehouse, dataset: Dataset, branch: str, commit: str) -> AuditResult:
    """Run the dataset's checkpoint on the branch table at `commit`; publish its artifacts; raise if it fails."""
    with branch_must_exist(branch, f"before its commit {commit[:12]} was audited"):
        result = audit_table(
            lakehouse.connect(),
            dataset.table,
            ref=f"{branch}@{commit}",  # the commit written, even if the branch moves meanwhile
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
    lakehouse: Lakehouse, dataset: Dataset, branch: str, source: str, written: WrittenBranch, audit: AuditResult
) -> str:
    """Merge the audited commit into main, recording the audit on the merge commit; then delete the branch.

    Only `written.commit`, the commit the audit read, is ever merged: merging the branch by name would
    publish whatever the branch holds now. If the branch moved, was deleted or was recreated since the
    audit, nothing is published.
    """
    client = lakehouse.connect()
    check_branch_unchanged(client, branch, written.commit)
    with branch_must_exist(branch, f"after its commit {written.commit[:12]} was audited"):
        commit = client.merge_branch(
            f"{branch}@{written.commit}",
            MAIN,
            commit_message=f"wap: publish {dataset.fqn} ({written.rows} rows, audit {audit.suite_name} passed)",
            commit_properties=audit_commit_properties(dataset, branch, source, written, audit),
        )
    _delete_quietly(client, branch)
    print(f"published {dataset.fqn} to {MAIN} at commit {commit}")
    return commit


def check_branch_unchanged(client, branch: str, audited: str) -> None:
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
        client.get_commits(f"{branch}@{audited}", limit=1)
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


def _delete_quietly(client, branch: str) -> bool:
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
    flow_run = FlowRunContext.get()
    # run_gate reads these if Prefect itself fails after the body returned (e.g. its server died).
    _THIS_RUN.outcome = outcome
    _THIS_RUN.flow_run_id = str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else None
    try:
        with hold_branch_lease(target.connect(), outcome.branch), transaction():
            written = write_to_branch(target, spec, outcome.source, outcome.branch, keep_failed_branch)
            outcome.rows, outcome.audited_commit = written.rows, written.commit
            pause_point("audit")
            outcome.audit = audit_branch_table(target, spec, outcome.branch, written.commit)
            pause_point("publish")
            outcome.published_commit = publish_to_main(
                target, spec, outcome.branch, outcome.source, written, outcome.audit
            )
    except AuditFailedError as exc:
        outcome.audit = exc.result
        publish_validation_report(outcome, error=exc)
        raise
    except Exception as exc:
        if not _prefect_unreachable_error(exc):  # the report is a Prefect artifact: no server, no report
            publish_validation_report(outcome, error=exc)
        raise
    publish_validation_report(outcome)
    return outcome


def _prefect_unreachable_error(exc: BaseException) -> bool:
    """A transport failure of Prefect's own API client (the lakehouse raises LakehouseError subclasses)."""
    import httpx

    return isinstance(exc, httpx.TransportError)


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
    Prefect's client retries a failed request `GATE_CLIENT_MAX_RETRIES` times unless the user set
    ``PREFECT_CLIENT_MAX_RETRIES``.

    If the run fails and the configured Prefect API no longer answers, the failure is reported as
    `PrefectUnavailableError` (exit 3) naming the API, not as whatever Prefect's client raised on the way
    out; if the data had already been published, the outcome is returned with a warning on stderr.
    """
    _THIS_RUN.outcome = _THIS_RUN.flow_run_id = None
    try:
        with _gate_settings():
            return wap(
                dataset,
                source=source,
                branch=branch,
                backend=backend,
                lakehouse=lakehouse,
                keep_failed_branch=keep_failed_branch,
            )
    except Exception as exc:
        outcome = _THIS_RUN.outcome
        if _is_gate_verdict(exc):
            raise
        api = configured_prefect_api()
        reason = prefect_unreachable(api) if api else None
        if reason is None:
            raise
        if outcome is not None and outcome.published:
            # The data was audited and merged; only Prefect's record of the run is missing.
            print(
                f"warning: published, but the Prefect API at {api} became unreachable ({reason}): flow run"
                f" {_THIS_RUN.flow_run_id} keeps the state Prefect last recorded",
                file=sys.stderr,
            )
            return outcome
        raise PrefectUnavailableError(_lost_prefect_message(api, reason, _THIS_RUN.flow_run_id)) from exc


_THIS_RUN = threading.local()  # the outcome and flow run id of the gate running in this thread (`--all`: several)


def _is_gate_verdict(exc: BaseException) -> bool:
    """The gate's own answer (blocked, bad input, lakehouse refused): reported as is, whatever Prefect's state."""
    from flows.audit import AuditConfigError
    from flows.datasets import DatasetError

    return isinstance(exc, AuditFailedError | LakehouseError | DatasetError | AuditConfigError | ValueError)


def _lost_prefect_message(api: str, reason: str, flow_run_id: str | None) -> str:
    # The write task's rollback still ran (it needs the lakehouse, not Prefect): the branch is gone, or kept
    # with --keep-failed-branch; the lease was released either way, so `wap gc` may collect a kept branch.
    run = f"flow run {flow_run_id}" if flow_run_id else "the flow run"
    return (
        f"Prefect API at {api} became unreachable during the run ({reason}); main is unchanged; {run} stays"
        f" Running in Prefect, which could not be told: `prefect flow-run delete {flow_run_id or '<id>'}` once"
        " the server is back"
    )


def configured_prefect_api() -> str | None:
    """The Prefect API the gate will report to (PREFECT_API_URL, from the environment or the profile), or
    None when Prefect would start a temporary server of its own."""
    from prefect.settings import PREFECT_API_URL

    return (PREFECT_API_URL.value() or "").rstrip("/") or None


def prefect_unreachable(api: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> str | None:
    """Why the Prefect API at `api` cannot be reached (one line), or None if it answers at all.

    Any HTTP answer counts as reachable (even 401 or 404: the Prefect client then reports the real problem);
    only transport failures (refused, unresolvable, timed out, reset) count as unreachable. The certificate
    is not checked: this only asks whether something listens, and sends no credentials.
    """
    import httpx

    try:
        httpx.get(f"{api}/health", timeout=httpx.Timeout(read_timeout, connect=connect_timeout), verify=False)
    except httpx.TransportError as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def check_prefect_api() -> None:
    """Before any branch exists: refuse to start a gate whose Prefect API does not answer (exit 3, seconds)."""
    api = configured_prefect_api()
    if api and (reason := prefect_unreachable(api)):
        raise PrefectUnavailableError(f"Prefect API at {api} is unreachable: {reason}")


# Retries of Prefect's API client for gate runs, unless the user set PREFECT_CLIENT_MAX_RETRIES: each retry
# of a request waits twice as long as the last (2, 4, 8 ... s), so Prefect's default of 5 spends ~62 s per
# request on a server that has gone, and a gate makes several requests after its last step: minutes before it
# could say so. 2 retries ride out a blip of ~6 s.
GATE_CLIENT_MAX_RETRIES = 2


_QUIET_SETTINGS: list[tuple[object, object]] = []  # (settings, the same as gate settings): the last pair
_QUIET_LOCK = threading.Lock()  # `wap run --all` starts gates from several threads


def _gate_settings() -> contextlib.AbstractContextManager:
    """Prefect's settings for a gate run: no flow-run heartbeats and `GATE_CLIENT_MAX_RETRIES`, each unless
    the user set it. ``temporary_settings(updates=...)``, with the copied settings kept for the next run
    (copying Prefect's settings takes ~40 ms, a tenth of a small gate run)."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = get_settings_context()
    updates: dict = {}
    if "heartbeat_frequency" not in context.settings.flows.model_fields_set:
        updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    if "max_retries" not in context.settings.client.model_fields_set:
        updates[PREFECT_CLIENT_MAX_RETRIES] = GATE_CLIENT_MAX_RETRIES
    if not updates:  # the user's choices stand
        return contextlib.nullcontext()
    with _QUIET_LOCK:
        if not _QUIET_SETTINGS or _QUIET_SETTINGS[0][0] is not context.settings:
            quiet = context.settings.copy_with_update(updates=updates)
            _QUIET_SETTINGS[:] = [(context.settings, quiet)]
        quiet = _QUIET_SETTINGS[0][1]
    return SettingsContext(profile=context.profile, settings=quiet)
