"""Validation reports as Prefect artifacts and events: the gate's face in the Prefect UI.

Per dataset, three artifact keys hold its history:
    <dataset>-validation    markdown: verdict, statistics, one row per expectation, branch, source, commit
    <dataset>-expectations  table: one row per expectation
    <dataset>-data-docs     link: the GX data docs page of the batch suite's validation
    <dataset>-table-data-docs  link: the same for the table suite, when the checkpoint has one
A run kept for inspection (on_success inspect) also writes its pending publish (flows.gate.inspection).
The markdown and the table rows come from `markdown.py`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.lakehouse.errors import SchemaMismatchError
from flows.reports.history import current_flow_run_id, failed_rule_names, history_row, record_history, this_run_link
from flows.reports.markdown import GateRun, expectation_rows, render_markdown

if TYPE_CHECKING:
    from flows.audit import AuditResult


def artifact_key(dataset: str, kind: str) -> str:
    # Prefect keys allow lowercase letters, digits and dashes only.
    return f"{dataset.lower().replace('_', '-')}-{kind}"


def publish_audit_artifacts(dataset: str, result: AuditResult) -> None:
    """Table and link artifacts for one validation (created by the audit task, pass or fail)."""
    from flows.reports.docs_site import DOCS_URL_ENV, docs_base_url, docs_page

    stats = result.statistics
    create_table_artifact(
        key=artifact_key(dataset, "expectations"),
        table=expectation_rows(result),
        description=f"{dataset}: {stats['successful']}/{stats['evaluated']} expectations passed",
    )
    for suite in result.suites:
        if not suite.data_docs_url:
            continue
        # The link opens the page over http(s) (a browser refuses a file:// link from the UI, and the file is on
        # this machine only): at WAP_DOCS_URL, where `wap docs serve` or an uploaded `wap docs build` serves it.
        page = docs_page(suite.data_docs_url)
        what = f"{dataset}: GX data docs page of this validation of {suite.validates}"
        if page is None:  # a page outside every filesystem site of the project: only its file is known
            link, description = suite.data_docs_url, f"{what} (a local file, in no data docs site wap serves)"
        else:
            link, description = page.url, f"{what}, served by `wap docs serve` at {docs_base_url()} ({DOCS_URL_ENV})"
            if page.file:
                description += f"; the file on the machine that ran the audit: `{page.file}`"
        # The batch suite's page (and a group's cross-table one) under <name>-data-docs, the table suite's under
        # <name>-table-data-docs.
        create_link_artifact(
            key=artifact_key(dataset, "table-data-docs" if suite.validates == "table" else "data-docs"),
            link=link,
            link_text=f"GX data docs: {suite.suite_name} validation {result.run_time}",
            description=description,
        )


def publish_validation_report(outcome: GateRun, error: BaseException | None = None) -> None:
    """The markdown verdict, written once the gate knows whether it published."""
    create_markdown_artifact(
        key=artifact_key(outcome.dataset, "validation"),
        markdown=render_markdown(outcome, error),
        description=f"{outcome.dataset}: {said_in_brief(outcome)}",
    )
    if outcome.group is None:  # a group's member: its run is the group's, named by the group's report
        name_this_run(f"wap-{outcome.dataset}", outcome.branch, short_verdict(outcome, error))
    record_run_history(
        outcome.dataset,
        history_verdict(outcome, error),
        rows=outcome.rows,
        added=outcome.added,
        audits=[outcome.audit],
        published_commit=outcome.published_commit,
        branch=outcome.branch,
    )


def _judged(error: BaseException | None) -> bool:
    """Whether the run ended in the gate's own verdict: no error, or a block (an audit's result, the schema
    check), as against an outage or bad input."""
    return error is None or getattr(error, "result", None) is not None or isinstance(error, SchemaMismatchError)


def short_verdict(outcome: Any, error: BaseException | None) -> str:
    """The verdict in a word or three, for the run's name."""
    if getattr(outcome, "pending_key", None) and not outcome.published:
        return "kept for inspection"
    return said_in_brief(outcome) if outcome.published or _judged(error) else "not published"


_BRANCH_STAMP = re.compile(r"_(\d{8}t\d{6}z_[0-9a-f]{8})$")  # the gate's branch names end <created>_<id>


def name_this_run(prefix: str, branch: str, verdict: str) -> None:
    """Rename the running flow run `<prefix>-<its branch's time and id>: <verdict>` (e.g. `wap-titanic-
    20261202t150725z_ab12cd34: blocked`): every run of a dataset starts as `wap-<dataset>`, and the UI's lists
    could not tell them apart. Best effort: the run's record is Prefect's, the verdict is the gate's."""
    from prefect.client.orchestration import get_client

    run_id = current_flow_run_id()
    if run_id is None:
        return
    stamp = _BRANCH_STAMP.search(branch)
    tag = stamp.group(1) if stamp else branch.rsplit(".", 1)[-1][:40]
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), name=f"{prefix}-{tag}: {verdict}")


def history_verdict(outcome: Any, error: BaseException | None) -> str:
    """The verdict of the history table: as the report's description, or what stopped a run the audit did not
    block (an outage, bad input), by its error's name."""
    if isinstance(error, SchemaMismatchError) and not outcome.published:
        return "blocked by the schema check"
    return said_in_brief(outcome) if outcome.published or _judged(error) else f"not published ({type(error).__name__})"


def record_run_history(
    name: str,
    verdict: str,
    *,
    rows: int | None,
    added: int | None,
    audits: list[Any],
    published_commit: str | None,
    branch: str,
) -> None:
    """This run's row of ``<name>-history`` and the ``<name>-quality`` chart (flows.reports.history)."""
    row = history_row(
        verdict=verdict,
        rows=rows,
        added=added,
        failed=failed_rule_names([a for a in audits if a is not None]),
        published_commit=published_commit,
        branch=branch,
        run=this_run_link(),
    )
    record_history(artifact_key(name, "history"), artifact_key(name, "quality"), name, row)


def said_in_brief(outcome: Any) -> str:
    """A run's verdict in a few words, for an artifact's description (a dataset's run or a group's)."""
    if outcome.published:
        return "published with warnings" if getattr(outcome, "warned", False) else "published"
    if getattr(outcome, "pending_key", None):
        return f"passed, kept on branch {outcome.branch} for inspection (not published)"
    return "blocked"


def emit_audit_event(dataset: str, result: AuditResult, *, branch: str) -> None:
    """`wap.audit.passed` / `wap.audit.failed` (the gate's verdict: failed iff a critical rule failed or a rule
    could not run), and `wap.audit.warned` as well when a rule of severity warning failed; the dataset as
    resource, for Prefect automations. The audit only: `wap.published` says when the data reached main."""
    stats = result.statistics
    resource = {"prefect.resource.id": f"wap.dataset.{dataset}", "prefect.resource.name": dataset}
    payload = {
        "dataset": dataset,
        "branch": branch,
        "suite": result.suite_name,
        "suites": {suite.suite_name: "passed" if suite.success else "failed" for suite in result.suites},
        "evaluated": stats["evaluated"],
        "successful": stats["successful"],
        "unsuccessful": stats["unsuccessful"],
        "failed_expectations": [e.expectation_type for e in result.blocking],
        "warnings": [_rule(e) for e in result.warnings],
        "infos": [_rule(e) for e in result.infos],
        "run_id": result.run_id,
    }
    emit_event(event=f"wap.audit.{'passed' if result.success else 'failed'}", resource=resource, payload=payload)
    if result.warnings:
        emit_event(event="wap.audit.warned", resource=resource, payload=payload)


def _rule(e: Any) -> str:
    """A failed rule in an event's payload: its type and column, e.g. expect_column_values_to_be_between(Fare)."""
    return f"{e.expectation_type}({e.column})" if e.column else e.expectation_type


def emit_published_event(name: str, *, commit: str, rows: int | None, added: int | None, **payload: Any) -> None:
    """`wap.published`: the data is on main, at ``commit`` (a dataset's, or a group's with ``members``)."""
    emit_event(
        event="wap.published",
        resource={"prefect.resource.id": f"wap.dataset.{name}", "prefect.resource.name": name},
        payload={"dataset": name, "commit": commit, "rows": rows, "added_rows": added, **payload},
    )


def emit_inspection_event(event: str, name: str, payload: dict[str, Any]) -> None:
    """`wap.audit.inspect` (passed, kept for inspection) and `wap.inspect.published` (then published by `wap
    publish`), with the dataset or group as resource, as the audit events have it."""
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"wap.dataset.{name}", "prefect.resource.name": name},
        payload={"dataset": name, **payload},
    )
