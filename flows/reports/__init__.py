"""Validation reports: findings computed once on the audit result, rendered as text (`text.py`: the CLI
and the flow's error), as markdown and table rows (`markdown.py`), and published as Prefect artifacts and
events (`prefect.py`)."""

from flows.reports.findings import Finding, finding
from flows.reports.group import publish_group_report, render_group_markdown
from flows.reports.markdown import GateRun, describe_expectation, expectation_rows, render_markdown
from flows.reports.prefect import artifact_key, emit_audit_event, publish_audit_artifacts, publish_validation_report
from flows.reports.text import describe_failures, describe_finding, summarize_failures

__all__ = [
    "Finding",
    "GateRun",
    "artifact_key",
    "describe_expectation",
    "describe_failures",
    "describe_finding",
    "emit_audit_event",
    "expectation_rows",
    "finding",
    "publish_audit_artifacts",
    "publish_group_report",
    "publish_validation_report",
    "render_group_markdown",
    "render_markdown",
    "summarize_failures",
]
