"""Validation reports: the markdown and table artifacts the Prefect UI shows, and the audit events."""

from flows.reports.prefect import (
    artifact_key,
    describe_expectation,
    emit_audit_event,
    expectation_rows,
    publish_audit_artifacts,
    publish_validation_report,
    render_markdown,
)

__all__ = [
    "artifact_key",
    "describe_expectation",
    "emit_audit_event",
    "expectation_rows",
    "publish_audit_artifacts",
    "publish_validation_report",
    "render_markdown",
]
