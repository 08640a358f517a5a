"""The WAP gate: write new data to a branch, audit it with the stored GX checkpoint, publish only if it passes.

    with hold_branch_lease(branch), transaction():
        write_to_branch    create the branch from main; replace: create the table from the source, append:
                           keep main's table (create it if main has none); import the rows in one commit;
                           return the commit it wrote
        audit_branch_table read that exact commit back, run the checkpoint, report; blocked if a critical rule
                           failed (rules of severity warning or info only report)
        publish_to_main    merge that exact commit into main with the audit as commit properties, delete the
                           branch; if the branch moved, was deleted or recreated meanwhile, publish nothing
        (keep_for_inspection)  on_success inspect, instead of publish: the branch kept at the audited commit,
                           what publish would record stored for `wap publish BRANCH` (gate/inspection.py)
        (rebase_onto_main) if another append published first: the batch on top of the new main, audited
                           again, then publish

A failure anywhere rolls the transaction back: the write task's rollback hook deletes the branch (unless
on_failure is inspect: the failed branch is kept), and main is never touched. The lease tells `wap gc` that
the branch belongs to a live run. A block is the gate's verdict, not a crash: the run ends Failed named
Blocked, one line, no traceback; published with failed warning rules, Completed named 'Published with
warnings' (gate/verdict.py).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.states import State
from prefect.tasks import exponential_backoff
from prefect.transactions import get_transaction, transaction

from flows.audit import AuditResult, audit_table
from flows.datasets import Dataset, check_source_for_backend, get_dataset, resolve_wap_options, validate_mode
from flows.gate.guards import (
    audit_commit_properties,
    branch_must_exist,
    check_branch_unchanged,
    delete_quietly,
    merge_recorded,
)
from flows.gate.inspection import PendingPublish, PublishOutcome, keep_for_inspection, lakehouse_location, wap_publish
from flows.gate.naming import gate_branch_name, validate_gate_branch
from flows.gate.outcome import (
    AuditFailedError,
    GateOutcome,
    Lakehouse,
    PrefectUnavailableError,
    WrittenBranch,
    keep_blocked_branch,
)
from flows.gate.rebase import MAX_REBASES, pure_append_batch, rebase_batch
from flows.gate.runtime import (
    THIS_RUN,
    configured_prefect_api,
    gate_settings,
    is_gate_verdict,
    lost_prefect_message,
    pause_point,
    prefect_transport_error,
    prefect_unreachable,
)
from flows.gate.staging import delete_staging_branch, isolate_batch, stages_batch
from flows.gate.verdict import blocked, finished, outcome_of
from flows.gate.writing import check_schema_policy, prepare_table, rows_written, snapshots_made
from flows.lakehouse import (
    MAIN,
    BackendUnavailableError,
    MergeConflictError,
    SchemaMismatchError,
    default_backend,
    default_lakehouse,
)
from flows.lakehouse.leases import hold_branch_lease
from flows.lakehouse.progress import reporting_import_progress
from flows.lakehouse.sources import inspect_source
from flows.reports import (
    artifact_key,
    describe_failures,
    emit_audit_event,
    publish_audit_artifacts,
    publish_validation_report,
)
from flows.reports.prefect import emit_published_event
from flows.reports.progress import import_listener, report_step, start_run_progress


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
    lakehouse: Lakehouse,
    dataset: Dataset,
    source: str,
    branch: str,
    keep_failed_branch: bool,
    base: str | None = None,
) -> WrittenBranch:
    """Create the branch from main and load the source into the dataset's table there; return the commit.

    replace: the table is created anew from the source. append: the source's rows are added to the table
    main has (created first if main has none), in one commit. With ``base`` (a group's later members) the
    branch exists already, made from main at ``base`` by the group's first member."""
    client = lakehouse.connect()
    if lakehouse.backend == "local":
        # Refuse a source the audit would misread (e.g. columns `x` and `X`) before any branch exists.
        # (Bauplan reads the source itself, from where this process may not be able to.)
        inspect_source(source)
    check_schema_policy(client, dataset, lakehouse.backend)
    running = get_transaction()
    assert running is not None  # this task runs inside the flow's transaction
    staged = stages_batch(client, dataset)
    running.set("rollback", {"lakehouse": lakehouse, "branch": branch, "keep": keep_failed_branch, "staged": staged})
    created = base is None
    if base is None:
        base = client.create_branch(branch, from_ref=MAIN).hash
    try:
        with branch_must_exist(branch, "while the gate was writing to it"):
            prepare_table(client, dataset, source, branch)
            with reporting_import_progress(import_listener(f"write {dataset.name}", f"write {dataset.fqn}")):
                imported = client.import_data(dataset.table, source, branch=branch, namespace=dataset.namespace)
            commit = client.get_branch(branch).hash
            table = client.get_table(dataset.table, f"{branch}@{commit}", namespace=dataset.namespace)
            rows = table.records
            batch_ref = isolate_batch(client, dataset, source, branch, base=base, commit=commit)  # Bauplan's appends
            added = imported.rows if dataset.mode == "append" else rows
            if added is None and batch_ref is not None:  # Bauplan reports no row count: the staged batch's
                added = client.get_table(dataset.table, batch_ref, namespace=dataset.namespace).records
            made = snapshots_made(client, dataset, table, base)
    except BaseException as exc:
        # This task's own rollback hook only runs once it has completed, so clean up here; a transient
        # failure always cleans up, so that the retry can create the branch again.
        if stages_batch(client, dataset):
            delete_staging_branch(client, branch)
        # A group's later member leaves the branch to the rollback of the member that made it.
        if created and (not keep_failed_branch or isinstance(exc, BackendUnavailableError)):
            delete_quietly(client, branch)
        raise
    appended = dataset.mode == "append"
    verb = "appended" if appended else "wrote"
    print(f"{verb} {added} rows from {source} to {dataset.fqn} on branch {branch} at commit {commit}")
    report_step(f"write {dataset.name}", 1, f"{verb} {added} rows to {dataset.fqn}")
    return WrittenBranch(rows or 0, commit, added, table.snapshot_id, base, snapshot_ids=made, batch_ref=batch_ref)


@write_to_branch.on_rollback
def delete_gate_branch(txn) -> None:
    params = txn.get("rollback")
    if params.get("staged"):
        delete_staging_branch(params["lakehouse"].connect(), params["branch"])
    if params["keep"]:
        print(f"kept branch {params['branch']} for inspection")
        return
    if delete_quietly(params["lakehouse"].connect(), params["branch"]):
        print(f"rolled back: deleted branch {params['branch']}")
    else:
        print(f"rolled back: branch {params['branch']} was already gone")


@task(name="audit", task_run_name="audit {dataset.name} on {branch}", cache_policy=NO_CACHE)
def audit_branch_table(
    lakehouse: Lakehouse,
    dataset: Dataset,
    branch: str,
    written: WrittenBranch,
    delete_staging: bool = True,
) -> AuditResult:
    """Run the dataset's checkpoint on the branch table at the written commit: the batch suite on the rows
    the run added, the table suite on the table as it would be published, both given the facts of main as
    the run found it; publish its artifacts; return the result, failed or not (the flow blocks a failed one:
    `check_verdict`; a block is a verdict, so this task completes, with no traceback). An append
    staged on Bauplan reads its batch on the staging branch, deleted here unless ``delete_staging`` is off (a
    group's members share it: the group deletes it after the last member's audit)."""
    client = lakehouse.connect()
    report_step(f"audit {dataset.name}", 0, f"auditing {dataset.fqn}: {written.rows} rows at {written.commit[:12]}")
    with branch_must_exist(branch, f"before its commit {written.commit[:12]} was audited"):
        try:
            result = audit_table(
                client,
                dataset.table,
                ref=f"{branch}@{written.commit}",  # the commit written, even if the branch moves meanwhile
                namespace=dataset.namespace,
                checkpoint=dataset.checkpoint,
                run_name=f"{dataset.name}-{branch}",
                published=f"{MAIN}@{written.base}",
                appended=dataset.mode == "append",
                batch_ref=written.batch_ref,
                key_columns=dataset.key,
            )
        finally:
            if written.batch_ref is not None and delete_staging:
                delete_staging_branch(client, branch)
    publish_audit_artifacts(dataset.name, result)
    emit_audit_event(dataset.name, result, branch=branch)
    stats = result.statistics
    verdict = "FAILED" if not result.success else "passed with warnings" if result.failed else "passed"
    print(f"audit {verdict}: {stats['successful']}/{stats['evaluated']} expectations")
    report_step(f"audit {dataset.name}", 1, f"audit of {dataset.fqn} {verdict}")
    if result.failed:  # the one detailed description of what failed; the state and the CLI say it in a line
        print(describe_failures(result))
    return result


def check_verdict(dataset: Dataset, result: AuditResult) -> AuditResult:
    """Block (raise AuditFailedError, rolling the transaction back) if a critical rule failed or a rule could not
    run; rules of severity warning or info do not block."""
    if not result.success:
        raise AuditFailedError(dataset.name, result)
    return result


@task(name="publish", task_run_name="publish {dataset.name} from {branch}", cache_policy=NO_CACHE)
def publish_to_main(
    lakehouse: Lakehouse, dataset: Dataset, branch: str, source: str, written: WrittenBranch, audit: AuditResult
) -> str | None:
    """Merge the audited commit into main, recording the audit on the merge commit; then delete the branch.

    Only `written.commit`, the commit the audit read, is ever merged: merging the branch by name would
    publish whatever the branch holds now. If the branch moved, was deleted or was recreated since the
    audit, nothing is published. Returns None, publishing nothing, when the merge conflicts only because
    another append published first (`rebase.pure_append_batch`): the flow rebases the batch and audits again.
    """
    client = lakehouse.connect()
    check_branch_unchanged(client, branch, written.commit)
    with branch_must_exist(branch, f"after its commit {written.commit[:12]} was audited"):
        try:
            commit = merge_recorded(
                client,
                f"{branch}@{written.commit}",
                commit_message=publish_message(dataset, written, audit),
                commit_properties=audit_commit_properties(dataset, branch, source, written, audit),
            )
        except MergeConflictError:
            if pure_append_batch(client, dataset, branch, written) is None:
                raise
            print(f"main moved under {branch} (another append published first): rebasing the batch onto it")
            return None
    delete_quietly(client, branch)
    print(f"published {dataset.fqn} to {MAIN} at commit {commit}")
    report_step("publish", 1, f"published {dataset.fqn} at commit {commit}")
    emit_published_event(
        dataset.name,
        commit=commit,
        rows=written.rows,
        added=written.added,
        table=dataset.fqn,
        branch=branch,
        audited_commit=written.commit,
        warnings=[f"{e.expectation_type}({e.column})" if e.column else e.expectation_type for e in audit.warnings],
    )
    return commit


def publish_message(dataset: Dataset, written: WrittenBranch, audit: AuditResult) -> str:
    return f"wap: publish {dataset.fqn} ({rows_written(dataset, written)}, audit {audit.suite_names} passed)"


def pending_publish(
    lakehouse: Lakehouse, dataset: Dataset, branch: str, source: str, written: WrittenBranch, audit: AuditResult
) -> PendingPublish:
    """on_success inspect: what publish_to_main would record, for `wap publish` to record later."""
    return PendingPublish(
        kind="dataset",
        name=dataset.name,
        branch=branch,
        audited_commit=written.commit,
        commit_message=publish_message(dataset, written, audit),
        properties=audit_commit_properties(dataset, branch, source, written, audit),
        tables=(dataset.fqn,),
        backend=lakehouse.backend,
        lakehouse=lakehouse_location(lakehouse),
    )


@task(name="rebase", task_run_name="rebase {dataset.name} onto main", cache_policy=NO_CACHE)
def rebase_onto_main(lakehouse: Lakehouse, dataset: Dataset, branch: str, written: WrittenBranch) -> WrittenBranch:
    """Put the audited batch on top of main's new head (branch made again, the same rows appended in one commit)."""
    client = lakehouse.connect()
    batch = pure_append_batch(client, dataset, branch, written)
    if batch is None or written.rebases >= MAX_REBASES:
        raise MergeConflictError(f"{branch}@{written.commit}", MAIN, [dataset.fqn])
    rebased = rebase_batch(client, dataset, branch, written, batch)
    print(f"rebased {written.added} rows onto main at {rebased.base}: commit {rebased.commit} ({rebased.rows} rows)")
    return rebased


@flow(name="wap", flow_run_name="wap-{dataset}", log_prints=True)
def wap(
    dataset: str,
    source: str | None = None,
    branch: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
    keep_failed_branch: bool = False,
    mode: str | None = None,
    on_success: str | None = None,
    on_failure: str | None = None,
) -> GateOutcome | State:
    """Write-Audit-Publish one dataset: published to main only if no critical rule of its GX checkpoint fails.

    `mode` (replace or append) overrides the dataset's declared mode; `on_success` (merge, or inspect: keep the
    audited branch for `wap publish`) and `on_failure` (delete, or inspect: keep the failed branch) its declared
    options. `keep_failed_branch` is on_failure inspect. Returns the outcome; a blocked run's final state is
    Failed named Blocked, a run published with warnings Completed named so (`verdict.py`)."""
    spec = get_dataset(dataset)
    if mode is not None:
        spec = dataclasses.replace(spec, mode=validate_mode(mode))
    success, failure = resolve_wap_options(spec, on_success, on_failure, keep_failed_branch)
    target = Lakehouse(backend or default_backend(), str(lakehouse or default_lakehouse()))
    check_source_for_backend(spec.name, source or spec.source, target.backend)  # before any branch exists
    outcome = GateOutcome(
        spec.name,
        validate_gate_branch(branch or gate_branch_name(target.connect(), spec.name)),
        source or spec.source,
        mode=spec.mode,
        kept_failed_branch=failure == "inspect",
    )
    flow_run = FlowRunContext.get()
    # run_gate reads these if Prefect itself fails after the body returned (e.g. its server died).
    THIS_RUN.outcome = outcome
    THIS_RUN.flow_run_id = str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else None
    start_run_progress(spec.name, [f"write {spec.name}", f"audit {spec.name}", "publish"])
    try:
        with hold_branch_lease(target.connect(), outcome.branch), transaction():
            keep = outcome.kept_failed_branch
            written = write_to_branch(target, spec, outcome.source, outcome.branch, keep)
            outcome.rows, outcome.audited_commit, outcome.added = written.rows, written.commit, written.added
            pause_point("audit")
            outcome.audit = check_verdict(spec, audit_branch_table(target, spec, outcome.branch, written))
            if success == "inspect":  # passed: kept at the audited commit for `wap publish`, nothing merged
                pending = pending_publish(target, spec, outcome.branch, outcome.source, written, outcome.audit)
                outcome.pending_key = keep_for_inspection(target, pending)
                report_step("publish", 1, f"passed; kept branch {outcome.branch} for inspection")
            else:
                pause_point("publish")
                published = publish_to_main(target, spec, outcome.branch, outcome.source, written, outcome.audit)
                while published is None:  # main moved under a pure append: the batch on top of it, audited again
                    written = rebase_onto_main(target, spec, outcome.branch, written)
                    outcome.rows, outcome.audited_commit = written.rows, written.commit
                    outcome.audit = check_verdict(spec, audit_branch_table(target, spec, outcome.branch, written))
                    published = publish_to_main(target, spec, outcome.branch, outcome.source, written, outcome.audit)
                outcome.published_commit = published
    except AuditFailedError as exc:
        outcome.audit = exc.result
        if outcome.kept_failed_branch:
            keep_blocked_branch(exc, target, spec, outcome.branch)
        publish_validation_report(outcome, error=exc)
        return blocked(outcome, exc, report=artifact_key(spec.name, "validation"))
    except SchemaMismatchError as exc:  # the batch does not fit main's table: blocked before a row was written
        publish_validation_report(outcome, error=exc)
        return blocked(outcome, exc, report=artifact_key(spec.name, "validation"))
    except Exception as exc:
        if not prefect_transport_error(exc):  # the report is a Prefect artifact: no server, no report
            publish_validation_report(outcome, error=exc)
        raise
    publish_validation_report(outcome)
    return finished(outcome)


def run_gate(
    dataset: str,
    source: str | None = None,
    branch: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
    keep_failed_branch: bool = False,
    mode: str | None = None,
    on_success: str | None = None,
    on_failure: str | None = None,
) -> GateOutcome:
    """Run the ``wap`` flow in this process, as ``wap run`` and ``wap demo`` do.

    Prefect's flow-run heartbeats are off for these runs unless the user set a heartbeat frequency
    (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``). Heartbeats let a server notice a worker that died; here the
    run lives and dies with the caller's own process, and stopping the heartbeat thread adds up to 1 s
    to every run (it sleeps in 1 s steps). Deployments (``wap serve``) run the flow with heartbeats.
    Prefect's client retries failed requests as configured (``PREFECT_CLIENT_MAX_RETRIES``, see `gate_settings`).

    If the run fails and the configured Prefect API no longer answers, the failure is reported as
    `PrefectUnavailableError` (exit 3) naming the API, not as whatever Prefect's client raised on the way
    out; if the data had already been published, the outcome is returned with a warning on stderr. A blocked run
    raises its block (AuditFailedError, SchemaMismatchError: exit 1), the outcome on ``AuditFailedError.outcome``.
    """
    THIS_RUN.outcome = THIS_RUN.flow_run_id = None
    try:
        with gate_settings():
            state = wap(
                dataset,
                source=source,
                branch=branch,
                backend=backend,
                lakehouse=lakehouse,
                keep_failed_branch=keep_failed_branch,
                mode=mode,
                on_success=on_success,
                on_failure=on_failure,
                return_state=True,  # the final state, Blocked included, rather than Prefect raising it
            )
            return outcome_of(state)
    except Exception as exc:
        return reraise_prefect_failure(exc)


def run_publish(branch: str, backend: str | None = None, lakehouse: str | None = None) -> PublishOutcome:
    """Run the ``wap-publish`` flow in this process, as ``wap publish`` does (see ``run_gate``)."""
    THIS_RUN.outcome = THIS_RUN.flow_run_id = None
    try:
        with gate_settings():
            return wap_publish(branch, backend=backend, lakehouse=lakehouse)
    except Exception as exc:
        return reraise_prefect_failure(exc)


def reraise_prefect_failure(exc: Exception) -> Any:
    """After a gate run in this thread raised ``exc``: re-raise it as is if it is the gate's own verdict or
    Prefect still answers; else raise PrefectUnavailableError, or, if the data had been published, return
    the run's outcome with a warning on stderr (see ``run_gate``)."""
    outcome = THIS_RUN.outcome
    if is_gate_verdict(exc):
        raise exc
    api = configured_prefect_api()
    reason = prefect_unreachable(api) if api else None
    if api is None or reason is None:
        raise exc
    if outcome is not None and outcome.published:
        # The data was audited and merged; only Prefect's record of the run is missing.
        print(
            f"warning: published, but the Prefect API at {api} became unreachable ({reason}): flow run"
            f" {THIS_RUN.flow_run_id} keeps the state Prefect last recorded",
            file=sys.stderr,
        )
        return outcome
    raise PrefectUnavailableError(lost_prefect_message(api, reason, THIS_RUN.flow_run_id)) from exc
