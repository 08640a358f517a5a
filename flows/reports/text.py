"""The audit's verdict as plain text: the lines the flow logs and `wap validate` prints, and the one line
the CLI ends with (and the gate's `AuditFailedError` says)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows.audit.gx_project import SQL_RULE
from flows.reports.docs_site import docs_text
from flows.reports.findings import MAX_EXAMPLES, WHAT_SUITES_VALIDATE, Finding, finding, scope

if TYPE_CHECKING:
    from flows.audit import AuditResult, ExpectationOutcome


def describe_failures(result: AuditResult, max_examples: int = MAX_EXAMPLES) -> str:
    """Human-readable summary of why an audit blocked: one line per failed expectation.

    Each line names the expectation, its column and arguments, and example offending values.
    """
    failed = result.failed
    stats = result.statistics
    if not failed:
        return f"Audit passed: checkpoint {result.checkpoint_name!r}, {stats.get('evaluated')} expectations."
    lines = [
        f"Audit failed: checkpoint {result.checkpoint_name!r} (suite {result.suite_names!r}): "
        f"{len(failed)} of {stats.get('evaluated', len(result.expectations))} expectations failed"
    ]
    lines += [f"  - {_scoped(e, result, max_examples)}" for e in failed]
    if len(result.suites) > 1:
        lines += [
            f"Data docs of {s.suite_name} ({WHAT_SUITES_VALIDATE[s.validates]}): {docs_text(s.data_docs_url)}"
            for s in result.suites
            if s.data_docs_url
        ]
    elif result.data_docs_url:
        lines.append(f"Data docs: {docs_text(result.data_docs_url)}")
    return "\n".join(lines)


def _scoped(e: ExpectationOutcome, result: AuditResult, max_examples: int) -> str:
    where = scope(e, result)
    return (
        f"{where}: {describe_finding(finding(e, max_examples))}"
        if where
        else describe_finding(finding(e, max_examples))
    )


def summarize_failures(result: AuditResult, max_examples: int = MAX_EXAMPLES) -> str:
    """`describe_failures` on one line: what the CLI prints and what the gate's error says."""
    failures = [_scoped(e, result, max_examples) for e in result.failed]
    stats = result.statistics
    return f"{stats['unsuccessful']} of {stats['evaluated']} expectations failed: " + "; ".join(failures)


def describe_finding(f: Finding) -> str:
    head = _head(f.outcome)
    if f.kind == "error":
        return f"{head}: could not be evaluated: {f.message}"
    if f.kind == "nulls":
        pct = f" ({f.percent:.2f}% of rows)" if f.percent is not None else ""
        where = f"; e.g. at rows {', '.join(map(str, f.rows))}" if f.rows else ""
        return f"{head}: {f.count} null value(s){pct}{where}"
    if f.kind == "unexpected" and f.outcome.expectation_type == SQL_RULE:
        sample = f"; e.g. {', '.join(map(_row, f.examples))}" if f.examples else ""
        return f"{head}: {f.count} unexpected row(s){sample}"
    if f.kind == "unexpected":
        pct = f" ({f.percent:.2f}% of non-null rows)" if f.percent is not None else ""
        sample = f"; e.g. {', '.join(map(repr, f.examples))}" if f.examples else ""
        return f"{head}: {f.count} unexpected value(s){pct}{sample}"
    if f.kind == "mismatch":
        return f"{head}: {'; '.join(f'{kind} columns {cols}' for kind, cols in f.mismatched.items())}"
    return f"{head}: observed {f.observed!r}"


def _row(row: Any) -> str:
    """An offending row of a SQL rule, as `item_id=510 order_id=9000`."""
    return " ".join(f"{k}={v!r}" for k, v in row.items()) if isinstance(row, dict) else repr(row)


def _head(e: ExpectationOutcome) -> str:
    if e.expectation_type == SQL_RULE:
        # Its query is long and says how, not what: the rule's description names it ("Every item's order exists").
        return f"{e.expectation_type} {e.description!r}" if e.description else e.expectation_type
    target = f"column {e.column!r}" if e.column else "table"
    head = f"{e.expectation_type} on {target}"
    # The column list of a schema expectation is long and the mismatch says what is wrong.
    args = "" if e.expectation_type.startswith("expect_table_columns_to_match") else _arguments(e.kwargs)
    return f"{head} ({args})" if args else head


def _arguments(kwargs: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if v is not None and k not in ("result_format", "catch_exceptions")}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def query_hint(table: str, branch: str) -> str:
    """How to look at a branch kept for inspection: a `wap query` to paste."""
    return f'wap query "SELECT * FROM {table} LIMIT 20" --ref {branch}'
