"""Validation reports as Prefect artifacts and events: the gate's face in the Prefect UI.

Per dataset, three artifact keys hold its history:
    <dataset>-validation    markdown: verdict, statistics, one row per expectation, branch, source, commit
    <dataset>-expectations  table: one row per expectation
    <dataset>-data-docs     link: the GX data docs page of the validation
Expectations are described with GX's own prescriptive renderer ("PassengerId values must never be null");
GX's markdown page view reads badly in the Prefect UI (indented code blocks, icon boxes), so the
surrounding tables are written here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

if TYPE_CHECKING:
    from .audit import AuditResult, ExpectationOutcome
    from .wap import GateOutcome

MAX_CELL = 120
MAX_SAMPLES = 5


def artifact_key(dataset: str, kind: str) -> str:
    # Prefect keys allow lowercase letters, digits and dashes only.
    return f"{dataset.lower().replace('_', '-')}-{kind}"


def _cell(value: Any, limit: int = MAX_CELL) -> str:
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}%"


def describe_expectation(outcome: ExpectationOutcome) -> str:
    """GX's prescriptive sentence for the expectation, or its type when GX renders none."""
    return outcome.description or outcome.expectation_type


def expectation_rows(result: AuditResult) -> list[dict[str, Any]]:
    """One row per expectation, failed first: the table artifact and the markdown share it."""
    rows = []
    for e in sorted(result.expectations, key=lambda e: e.success):
        rows.append(
            {
                "status": "pass" if e.success else "FAIL",
                "expectation": e.expectation_type,
                "description": describe_expectation(e),
                "column": e.column or "",
                "arguments": _cell(e.kwargs),
                "mostly": e.kwargs.get("mostly", ""),
                "observed_value": _cell(e.exception_message or e.observed_value),
                "unexpected_count": "" if e.unexpected_count is None else e.unexpected_count,
                "unexpected_percent": _percent(e.unexpected_percent),
                "sample_unexpected_values": _cell((e.partial_unexpected_list or [])[:MAX_SAMPLES]),
            }
        )
    return rows


def render_markdown(outcome: GateOutcome, error: BaseException | None = None) -> str:
    audit = outcome.audit
    if outcome.published:
        verdict = "✔ PUBLISHED"
    elif audit is not None and not audit.success:
        verdict = "✘ BLOCKED by the audit"
    else:
        verdict = "✘ NOT PUBLISHED"
    lines = [f"# {outcome.dataset}: {verdict}", "", "| | |", "|---|---|"]
    facts = [
        ("Dataset", outcome.dataset),
        ("Source", outcome.source),
        ("Branch", outcome.branch),
        ("Rows written", outcome.rows),
        ("Published commit", f"`{outcome.published_commit}`" if outcome.published else "blocked"),
    ]
    if audit is not None:
        s = audit.statistics
        facts += [
            ("Suite", f"{audit.suite_name} (checkpoint {audit.checkpoint_name}, GX {audit.gx_version})"),
            ("Expectations", f"{s['evaluated']} evaluated, {s['successful']} passed, {s['unsuccessful']} failed"),
            ("Success", _percent(s.get("success_percent"))),
            ("Validation run", f"{audit.run_id} at {audit.run_time}"),
            ("Data docs", audit.data_docs_url or "not built"),
        ]
    if error is not None and not (audit is not None and not audit.success):
        facts.append(("Error", _cell(f"{type(error).__name__}: {error}", 300)))
    lines += [f"| {name} | {_cell(value, 300) if name != 'Published commit' else value} |" for name, value in facts]
    if audit is not None:
        lines += [
            "",
            "## Expectations",
            "",
            "| Status | Expectation | Column | Arguments | Observed | Unexpected | Unexpected % | Sample unexpected |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in expectation_rows(audit):
            status = "✔ pass" if row["status"] == "pass" else "**✘ FAIL**"
            lines.append(
                f"| {status} | {_cell(row['description'])} | {row['column']} | {row['arguments']}"
                f" | {row['observed_value']} | {row['unexpected_count']} | {row['unexpected_percent']}"
                f" | {row['sample_unexpected_values']} |"
            )
    return "\n".join(lines) + "\n"


def publish_audit_artifacts(dataset: str, result: AuditResult) -> None:
    """Table and link artifacts for one validation (created by the audit task, pass or fail)."""
    stats = result.statistics
    create_table_artifact(
        key=artifact_key(dataset, "expectations"),
        table=expectation_rows(result),
        description=f"{dataset}: {stats['successful']}/{stats['evaluated']} expectations passed",
    )
    if result.data_docs_url:
        create_link_artifact(
            key=artifact_key(dataset, "data-docs"),
            link=result.data_docs_url,
            link_text=f"GX data docs: {result.suite_name} validation {result.run_time}",
            description=f"{dataset}: GX data docs page of this validation (local file)",
        )


def publish_validation_report(outcome: GateOutcome, error: BaseException | None = None) -> None:
    """The markdown verdict, written once the gate knows whether it published."""
    create_markdown_artifact(
        key=artifact_key(outcome.dataset, "validation"),
        markdown=render_markdown(outcome, error),
        description=f"{outcome.dataset}: {'published' if outcome.published else 'blocked'}",
    )


def emit_audit_event(dataset: str, result: AuditResult, *, branch: str) -> None:
    """`wap.audit.passed` / `wap.audit.failed`, with the dataset as resource, for Prefect automations."""
    stats = result.statistics
    emit_event(
        event=f"wap.audit.{'passed' if result.success else 'failed'}",
        resource={"prefect.resource.id": f"wap.dataset.{dataset}", "prefect.resource.name": dataset},
        payload={
            "dataset": dataset,
            "branch": branch,
            "suite": result.suite_name,
            "evaluated": stats["evaluated"],
            "successful": stats["successful"],
            "unsuccessful": stats["unsuccessful"],
            "failed_expectations": [e.expectation_type for e in result.expectations if not e.success],
            "run_id": result.run_id,
        },
    )
