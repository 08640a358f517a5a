"""Validation reports: findings computed once on the audit result, rendered as text (`text.py`: the CLI
and the flow's error), as markdown and table rows (`markdown.py`), and published as Prefect artifacts and
events (`prefect.py`).

The names below are loaded on first use (PEP 562): the Prefect modules (`group.py`, `prefect.py`) import
Prefect, which `wap validate` and `wap suite` never need, and importing any submodule runs this file first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.reports.findings import Finding, finding
    from flows.reports.group import publish_group_report, render_group_markdown
    from flows.reports.markdown import GateRun, describe_expectation, expectation_rows, render_markdown
    from flows.reports.prefect import (
        artifact_key,
        emit_audit_event,
        publish_audit_artifacts,
        publish_validation_report,
    )
    from flows.reports.text import describe_failures, describe_finding, summarize_failures

_HOMES = {
    "Finding": "findings",
    "finding": "findings",
    "publish_group_report": "group",
    "render_group_markdown": "group",
    "GateRun": "markdown",
    "describe_expectation": "markdown",
    "expectation_rows": "markdown",
    "render_markdown": "markdown",
    "artifact_key": "prefect",
    "emit_audit_event": "prefect",
    "publish_audit_artifacts": "prefect",
    "publish_validation_report": "prefect",
    "describe_failures": "text",
    "describe_finding": "text",
    "summarize_failures": "text",
}
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
