"""A group through the gate: related datasets written to one branch, audited one by one and across tables,
published in one merge commit or not at all.

    with hold_branch_lease(branch), transaction():
        write_to_branch         each member in turn on the one branch (the first makes it from main)
        audit_branch_table      each member at the branch's final commit, by its own checkpoint
        audit_group_tables      the group's cross-table rules on that same commit
        publish_group_to_main   merge exactly that commit into main: every member in one commit
        (keep_for_inspection)   on_success inspect, instead: the branch kept at that commit for `wap publish`

Every member and the cross-table rules are audited even after one fails, so the report lists every reason
at once; any failure of a critical rule blocks the whole group (rules of severity warning or info only
report), and the write tasks' rollback deletes the branch (on_failure inspect: keeps it); the run then ends
Failed named Blocked, one line, no traceback (gate/verdict.py). The group's own on_success / on_failure
apply, not its members'. On Bauplan the appended members' batches are staged on the branch's one staging
branch (gate/staging.py). A group is not rebased: if main changed a member's table meanwhile, the merge
conflicts and nothing is published (exit 3).
"""

from __future__ import annotations

import dataclasses

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.states import State
from prefect.transactions import transaction

from flows.audit import AuditResult
from flows.audit.cross_table import audit_cross_table_rules, check_group_checkpoints, group_namespace
from flows.datasets import (
    Dataset,
    DatasetError,
    Group,
    check_source_for_backend,
    get_dataset,
    get_group,
    resolve_wap_options,
)
from flows.gate.flow import audit_branch_table, reraise_prefect_failure, write_to_branch
from flows.gate.guards import (
    audit_commit_properties,
    branch_must_exist,
    check_branch_unchanged,
    delete_quietly,
    merge_recorded,
)
from flows.gate.inspection import PendingPublish, keep_for_inspection, lakehouse_location
from flows.gate.naming import gate_branch_name, validate_gate_branch
from flows.gate.outcome import (
    CROSS_TABLE_RULES,
    GateOutcome,
    GroupAuditFailedError,
    GroupOutcome,
    Lakehouse,
    WrittenBranch,
    keep_blocked_branch,
)
from flows.gate.runtime import THIS_RUN, gate_settings, pause_point, prefect_transport_error
from flows.gate.staging import delete_staging_branch
from flows.gate.verdict import blocked, finished, outcome_of
from flows.lakehouse import DEFAULT_NAMESPACE, MAIN, SchemaMismatchError, default_backend, default_lakehouse
from flows.lakehouse.leases import hold_branch_lease
from flows.reports import (
    artifact_key,
    emit_audit_event,
    publish_audit_artifacts,
    publish_group_report,
    publish_validation_report,
)
from flows.reports.prefect import emit_published_event
from flows.reports.progress import report_step, start_run_progress


@task(name="audit group", task_run_name="audit {group.name} across tables on {branch}", cache_policy=NO_CACHE)
def audit_group_tables(
    lakehouse: Lakehouse, group: Group, members: list[Dataset], branch: str, commit: str, rows: int
) -> AuditResult:
    """Run the group's cross-table rules on the branch at ``commit`` (every member written); publish their
    artifacts. Returns the result, failed or not: the flow decides once every audit has run."""
    assert group.checkpoint is not None
    client = lakehouse.connect()
    with branch_must_exist(branch, f"before its commit {commit[:12]} was audited across tables"):
        result = audit_cross_table_rules(
            client,
            group.checkpoint,
            ref=f"{branch}@{commit}",
            members={m.fqn: m.name for m in members},
            namespace=group_namespace(members),
            default_namespace=DEFAULT_NAMESPACE,
            rows=rows,
            run_name=f"{group.name}-{branch}",
        )
    publish_audit_artifacts(group.name, result)
    emit_audit_event(group.name, result, branch=branch)
    stats = result.statistics
    verdict = "FAILED" if not result.success else "passed with warnings" if result.failed else "passed"
    print(f"cross-table rules {verdict}: {stats['successful']}/{stats['evaluated']} expectations")
    report_step("audit across tables", 1, f"cross-table rules of {group.name} {verdict}")
    return result


@task(name="publish group", task_run_name="publish {group.name} from {branch}", cache_policy=NO_CACHE)
def publish_group_to_main(
    lakehouse: Lakehouse,
    group: Group,
    members: list[Dataset],
    branch: str,
    commit: str,
    outcome: GroupOutcome,
    written: dict[str, WrittenBranch],
) -> str:
    """Merge the audited commit into main, every member at once, with each member's audit as commit properties."""
    client = lakehouse.connect()
    check_branch_unchanged(client, branch, commit)
    with branch_must_exist(branch, f"after its commit {commit[:12]} was audited"):
        published = merge_recorded(
            client,
            f"{branch}@{commit}",
            commit_message=group_publish_message(group, members),
            commit_properties=group_commit_properties(group, members, branch, commit, outcome, written),
        )
    delete_quietly(client, branch)
    print(f"published group {group.name} ({len(members)} tables) to {MAIN} at commit {published}")
    report_step("publish", 1, f"published group {group.name} at commit {published}")
    emit_published_event(
        group.name,
        commit=published,
        rows=sum(w.rows for w in written.values()),
        added=None,
        group=group.name,
        branch=branch,
        audited_commit=commit,
        members={
            m.name: {"table": m.fqn, "rows": written[m.name].rows, "added_rows": written[m.name].added} for m in members
        },
        warnings=group_warnings(outcome),
    )
    return published


def group_publish_message(group: Group, members: list[Dataset]) -> str:
    return f"wap: publish group {group.name} ({', '.join(m.fqn for m in members)}, audits passed)"


def group_commit_properties(
    group: Group,
    members: list[Dataset],
    branch: str,
    commit: str,
    outcome: GroupOutcome,
    written: dict[str, WrittenBranch],
) -> dict[str, str]:
    """The group's evidence, then each member's as a single publish records it, under ``member.<name>.``."""
    flow_run = FlowRunContext.get()
    properties = {
        "wap.group": group.name,
        "wap.datasets": ",".join(m.name for m in members),
        "wap.tables": ",".join(m.fqn for m in members),
        "wap.branch": branch,
        "wap.audited_commit": commit,
        "wap.based_on": outcome.base or "",
        "gx.checkpoint": group.checkpoint or "",
        "gx.success": "true",
        "gx.warnings": "; ".join(group_warnings(outcome)),  # the failed rules of severity warning: they did not block
        "prefect.flow_run_id": str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else "",
    }
    for member in members:
        audit = outcome.members[member.name].audit
        assert audit is not None  # published: every member was audited
        # Not relied on by a later append (flows.audit.proof looks for the unprefixed keys): its table is grouped.
        own = audit_commit_properties(member, branch, outcome.members[member.name].source, written[member.name], audit)
        properties.update({f"member.{member.name}.{key}": value for key, value in own.items()})
    if outcome.cross is not None:
        stats = outcome.cross.statistics
        properties.update(
            {
                "gx.cross_table.suite": outcome.cross.suite_name,
                "gx.cross_table.evaluated_expectations": str(stats["evaluated"]),
                "gx.cross_table.run_id": outcome.cross.run_id,
            }
        )
    return properties


def group_warnings(outcome: GroupOutcome) -> list[str]:
    """Each failed warning rule as `<member or cross-table rules>: <type>(<column>)`."""
    return [
        f"{name}: {e.expectation_type}({e.column})" if e.column else f"{name}: {e.expectation_type}"
        for name, audit in outcome.audits.items()
        for e in audit.warnings
    ]


@flow(name="wap-group", flow_run_name="wap-group-{group}", log_prints=True)
def wap_group(
    group: str,
    sources: dict[str, str] | None = None,
    branch: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
    keep_failed_branch: bool = False,
    on_success: str | None = None,
    on_failure: str | None = None,
) -> GroupOutcome | State:
    """Write-Audit-Publish a group: every member published to main in one commit only if no critical rule of a
    member's checkpoint or of the group's cross-table rules fails (a blocked run ends Failed named Blocked).
    ``sources`` overrides members' declared sources;
    ``on_success`` / ``on_failure`` the group's declared options (see ``wap``)."""
    spec = get_group(group)
    members = [get_dataset(name) for name in spec.members]
    unknown = sorted(set(sources or {}) - set(spec.members))
    if unknown:
        raise DatasetError(f"--source {unknown[0]}=...: {unknown[0]!r} is not a member of group {group}")
    success, failure = resolve_wap_options(spec, on_success, on_failure, keep_failed_branch)
    target = Lakehouse(backend or default_backend(), str(lakehouse or default_lakehouse()))
    for member in members:  # before any branch exists
        check_source_for_backend(
            member.name, (sources or {}).get(member.name) or member.source, target.backend, group=spec.name
        )
    check_group_checkpoints(
        [m.checkpoint for m in members],
        spec.checkpoint,
        members={m.fqn: m.name for m in members},
        namespace=group_namespace(members),
        default_namespace=DEFAULT_NAMESPACE,
    )
    branch = validate_gate_branch(branch or gate_branch_name(target.connect(), spec.name))
    outcome = GroupOutcome(
        spec.name,
        branch,
        {
            m.name: GateOutcome(
                m.name,
                branch,
                (sources or {}).get(m.name) or m.source,
                mode=m.mode,
                group=spec.name,
                kept_failed_branch=failure == "inspect",
            )
            for m in members
        },
        checkpoint=spec.checkpoint,
        kept_failed_branch=failure == "inspect",
    )
    flow_run = FlowRunContext.get()
    THIS_RUN.outcome = outcome
    THIS_RUN.flow_run_id = str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else None
    stages = [f"write {m.name}" for m in members] + [f"audit {m.name}" for m in members]
    start_run_progress(spec.name, [*stages, "audit across tables", "publish"])
    try:
        with hold_branch_lease(target.connect(), branch), transaction():
            written: dict[str, WrittenBranch] = {}
            for member in members:
                # Only the first write may be retried: it makes the branch, and deletes it if it fails.
                write = write_to_branch if not written else write_to_branch.with_options(retries=0)
                written[member.name] = write(
                    target,
                    member,
                    outcome.members[member.name].source,
                    branch,
                    outcome.kept_failed_branch,
                    outcome.base,
                )
                outcome.base = written[member.name].base
            # Every member is audited on the commit that holds them all: the one that gets merged.
            head = list(written.values())[-1].commit
            outcome.audited_commit = head
            written = {name: dataclasses.replace(w, commit=head) for name, w in written.items()}
            for name, w in written.items():
                outcome.members[name].rows, outcome.members[name].added = w.rows, w.added
                outcome.members[name].audited_commit = head
            pause_point("audit")
            failures: dict[str, AuditResult] = {}
            try:
                for member in members:
                    audit = audit_branch_table(target, member, branch, written[member.name], delete_staging=False)
                    outcome.members[member.name].audit = audit
                    if not audit.success:
                        failures[member.name] = audit
            finally:  # Bauplan's appended members share one staging branch (gate/staging.py): gone once read
                if any(w.batch_ref is not None for w in written.values()):
                    delete_staging_branch(target.connect(), branch)
            if spec.checkpoint is not None:
                rows = sum(w.rows for w in written.values())
                outcome.cross = audit_group_tables(target, spec, members, branch, head, rows)
                if not outcome.cross.success:
                    failures[CROSS_TABLE_RULES] = outcome.cross
            if failures:
                raise GroupAuditFailedError(spec.name, failures)
            if success == "inspect":  # passed: kept at the audited commit for `wap publish`, nothing merged
                pending = PendingPublish(
                    kind="group",
                    name=spec.name,
                    branch=branch,
                    audited_commit=head,
                    commit_message=group_publish_message(spec, members),
                    properties=group_commit_properties(spec, members, branch, head, outcome, written),
                    tables=tuple(m.fqn for m in members),
                    backend=target.backend,
                    lakehouse=lakehouse_location(target),
                )
                outcome.pending_key = keep_for_inspection(target, pending)
                report_step("publish", 1, f"passed; kept branch {branch} for inspection")
                for member_outcome in outcome.members.values():
                    member_outcome.pending_key = outcome.pending_key
            else:
                pause_point("publish")
                outcome.published_commit = publish_group_to_main(target, spec, members, branch, head, outcome, written)
                for member_outcome in outcome.members.values():
                    member_outcome.published_commit = outcome.published_commit
    except Exception as exc:
        if isinstance(exc, GroupAuditFailedError) and outcome.kept_failed_branch:
            failed = next((m for m in members if m.name in exc.results), members[0])
            keep_blocked_branch(exc, target, failed, branch, exc.results.get(failed.name))
        if not prefect_transport_error(exc):
            _report(outcome, exc)
        if isinstance(exc, GroupAuditFailedError | SchemaMismatchError):  # a verdict, not a crash
            return blocked(outcome, exc, report=artifact_key(spec.name, "validation"))
        raise
    _report(outcome)
    return finished(outcome)


def _report(outcome: GroupOutcome, error: BaseException | None = None) -> None:
    """Each member's validation report (its verdict is the group's), then the group's own."""
    for member in outcome.members.values():
        if member.audit is not None:
            publish_validation_report(member, error=error)
    publish_group_report(outcome, error=error)


def run_group(
    group: str,
    sources: dict[str, str] | None = None,
    branch: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
    keep_failed_branch: bool = False,
    on_success: str | None = None,
    on_failure: str | None = None,
) -> GroupOutcome:
    """Run the ``wap-group`` flow in this process, as ``wap run --group`` and ``wap demo`` do (see ``run_gate``)."""
    THIS_RUN.outcome = THIS_RUN.flow_run_id = None
    try:
        with gate_settings():
            state = wap_group(
                group,
                sources=sources,
                branch=branch,
                backend=backend,
                lakehouse=lakehouse,
                keep_failed_branch=keep_failed_branch,
                on_success=on_success,
                on_failure=on_failure,
                return_state=True,  # the final state, Blocked included, rather than Prefect raising it
            )
            return outcome_of(state)
    except Exception as exc:
        return reraise_prefect_failure(exc)
