"""The audit's verdict as plain text: the lines the flow logs and `wap validate` prints, and the one line
the CLI ends with (and the gate's `AuditFailedError` says)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from flows.audit.gx_project import SQL_RULE
from flows.lakehouse import DEFAULT_LAKEHOUSE
from flows.reports.docs_site import docs_text
from flows.reports.findings import MAX_EXAMPLES, WHAT_SUITES_VALIDATE, Finding, finding, scope

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from flows.audit import AuditResult, ExpectationOutcome


def describe_failures(result: AuditResult, max_examples: int = MAX_EXAMPLES) -> str:
    """Human-readable summary of why an audit blocked, or what it warned of: one line per failed expectation.

    Each line names the expectation, its column and arguments, example offending values and the rule's notes
    (why it exists); rules of severity warning or info are marked as such (they do not block).
    """
    failed = result.failed
    stats = result.statistics
    if not failed:
        return f"Audit passed: checkpoint {result.checkpoint_name!r}, {stats.get('evaluated')} expectations."
    blocking = result.blocking
    verdict = "failed" if blocking else "passed with warnings"
    lines = [
        f"Audit {verdict}: checkpoint {result.checkpoint_name!r} (suite {result.suite_names!r}): {_counted(result)}"
    ]
    lines += [f"  - {_scoped(e, result, max_examples)}" for e in blocking]
    lines += [f"  - {_scoped(e, result, max_examples)}" for e in failed if not e.blocks]
    if len(result.suites) > 1:
        lines += [
            f"Data docs of {s.suite_name} ({WHAT_SUITES_VALIDATE[s.validates]}): {docs_text(s.data_docs_url)}"
            for s in result.suites
            if s.data_docs_url
        ]
    elif result.data_docs_url:
        lines.append(f"Data docs: {docs_text(result.data_docs_url)}")
    return "\n".join(lines)


def _counted(result: AuditResult) -> str:
    """ "2 of 20 expectations failed (1 warning)": every failed rule counted, the ones that do not block named."""
    stats = result.statistics
    said = f"{len(result.failed)} of {stats.get('evaluated', len(result.expectations))} expectations failed"
    minor = [_plural(len(result.warnings), "warning"), _plural(len(result.infos), "info")]
    minor = [m for m in minor if not m.startswith("0 ")]
    return f"{said} ({', '.join(minor)}, not blocking)" if minor else said


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 or noun == 'info' else 's'}"


def _scoped(e: ExpectationOutcome, result: AuditResult, max_examples: int) -> str:
    where = scope(e, result)
    said = describe_finding(finding(e, max_examples))
    said = f"{where}: {said}" if where else said
    if not e.blocks:  # a warning or info rule: reported, never blocking
        said = f"[{e.severity}] {said}"
    return f"{said} (notes: {notes_line(e.notes)})" if e.notes else said


def notes_line(notes: str) -> str:
    """A rule's meta.notes on one line (they may be markdown over several)."""
    return " ".join(notes.split())


def summarize_failures(result: AuditResult, max_examples: int = MAX_EXAMPLES) -> str:
    """`describe_failures` on one line: what the CLI prints and what the gate's error says; the blocking rules
    first, then those that only warn."""
    ordered = result.blocking + [e for e in result.failed if not e.blocks]
    failures = [_scoped(e, result, max_examples) for e in ordered]
    return f"{_counted(result)}: " + "; ".join(failures)


def summarize_warnings(result: AuditResult, max_examples: int = MAX_EXAMPLES) -> str:
    """The failed rules that did not block a publish, on one line ("" if none)."""
    minor = [e for e in result.failed if not e.blocks]
    return "; ".join(_scoped(e, result, max_examples) for e in minor)


def describe_finding(f: Finding) -> str:
    head = _head(f.outcome)
    if f.kind == "error":
        return f"{head}: could not be evaluated: {f.message}"
    if f.kind == "nulls":
        pct = f" ({f.percent:.2f}% of rows)" if f.percent is not None else ""
        rows = f.rows_by_key or ", ".join(map(str, f.rows))
        where = f"; e.g. at rows {rows}" if rows else ""
        return f"{head}: {f.count} null value(s){pct}{where}"
    if f.kind == "unexpected" and f.outcome.expectation_type == SQL_RULE:
        sample = f"; e.g. {', '.join(map(_row, f.examples))}" if f.examples else ""
        return f"{head}: {f.count} unexpected row(s){sample}"
    details = f.outcome.details if isinstance(f.outcome.details, dict) else {}
    missing = details.get("missing_values") or []  # a distinct-value set check: the set's values the column lacks
    lacks = f"missing value(s) {', '.join(map(repr, missing[:MAX_EXAMPLES]))}" if missing else ""
    if f.kind == "unexpected":
        pct = f" ({f.percent:.2f}% of non-null rows)" if f.percent is not None else ""
        sample = f"; e.g. {', '.join(map(repr, f.examples))}" if f.examples else ""
        sample += f", at rows {f.rows_by_key}" if f.keys else ""
        if lacks and not f.count:
            return f"{head}: {lacks}"
        return f"{head}: {f.count} unexpected value(s){pct}{sample}" + (f"; {lacks}" if lacks else "")
    if f.kind == "mismatch":
        return f"{head}: {'; '.join(f'{kind} columns {cols}' for kind, cols in f.mismatched.items())}"
    if lacks:
        return f"{head}: {lacks}"
    if f.observed is None:  # GX observed nothing it reports (e.g. expect_column_to_exist)
        return f"{head}: failed"
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


def query_hint(table: str, branch: str, *, backend: str = "local", lakehouse: str = DEFAULT_LAKEHOUSE) -> str:
    """How to look at a branch kept for inspection: a `wap query` to paste."""
    return query_command(f"SELECT * FROM {table} LIMIT 20", branch, backend=backend, lakehouse=lakehouse)


def query_command(sql: str, ref: str, *, backend: str = "local", lakehouse: str = DEFAULT_LAKEHOUSE) -> str:
    """`wap query "<sql>" --ref <ref>`, ready to paste into a POSIX shell (inside its double quotes, backslashes,
    double quotes, dollars and backquotes are escaped), naming the backend and lakehouse unless they are defaults."""
    escaped = "".join("\\" + c if c in '\\"$`' else c for c in sql)
    where = f" --backend {backend}" if backend != "local" else ""
    if backend == "local" and lakehouse != DEFAULT_LAKEHOUSE:
        where += f" --lakehouse {shlex.quote(lakehouse)}"
    return f'wap query "{escaped}" --ref {shlex.quote(ref)}{where}'


def failing_rows_hints(
    result: AuditResult,
    table: str,
    schema: pa.Schema,
    key: Sequence[str],
    branch: str,
    *,
    backend: str = "local",
    lakehouse: str = DEFAULT_LAKEHOUSE,
) -> list[str]:
    """For each failed rule with rows to list, a line "<rule>: wap query ... --ref <branch>" that lists its failing
    rows on the kept branch (every one, or, where only GX's sample is known, those rows by key)."""
    from flows.audit.failing_rows import failing_rows_query
    from flows.audit.pushdown import rule_label

    hints = []
    for e in result.failed:
        query = failing_rows_query(e, table, schema, key)
        if query is None:
            continue
        command = query_command(query.sql, branch, backend=backend, lakehouse=lakehouse)
        said = "" if query.every_row else " (the sampled failing rows, by key)"
        hints.append(f"{rule_label(_RuleLabel(e))}{said}: {command}")
    return list(dict.fromkeys(hints))


class _RuleLabel:
    """An outcome as ``rule_label`` reads a configuration: its type and its arguments with the column."""

    def __init__(self, e: ExpectationOutcome) -> None:
        self.type = e.expectation_type
        self.kwargs = {**e.kwargs, "column": e.column} if e.column else dict(e.kwargs)
