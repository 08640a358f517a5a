"""The gate's verdict as the markdown report read in the Prefect UI (V1 and V2), and the rows of the
expectations table. Expectations are described with GX's own prescriptive renderer ("PassengerId values
must never be null"); GX's markdown page view reads badly in the Prefect UI (indented code blocks, icon
boxes), so the surrounding tables are written here."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from flows.audit.gx_project import SQL_RULE
from flows.lakehouse.errors import SchemaMismatchError
from flows.reports.docs_site import docs_markdown
from flows.reports.findings import WHAT_SUITES_VALIDATE, finding, is_null, scope
from flows.shorten import shorten

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flows.audit import AuditResult, ExpectationOutcome


class GateRun(Protocol):
    """What a report needs of a gate run (`flows.gate.GateOutcome` is one): the gate imports the reports,
    not the other way round."""

    dataset: str
    branch: str
    source: str
    rows: int | None
    published_commit: str | None
    audit: AuditResult | None
    mode: str
    added: int | None
    group: str | None  # the group it ran in: blocked or published with it

    @property
    def published(self) -> bool: ...


@runtime_checkable
class AuditFailedLike(Protocol):
    """An audit's block (`flows.gate.AuditFailedError`): the error carries the failed result."""

    result: AuditResult


MAX_CELL = 120
MAX_SAMPLES = 5


def _cell(value: Any, limit: int = MAX_CELL) -> str:
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split()).replace("|", "\\|")
    return shorten(text, limit, marker="…")


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


_ROW_METRICS = {
    "duckdb": "computed by DuckDB over the table's Parquet files, GX on a zero-row frame of the same dtypes",
    "query": (
        "computed by the lakehouse's SQL engine on the audited commit (only counts and samples returned),"
        " GX on a zero-row frame of the same dtypes"
    ),
    "pandas": "computed by GX on the table read into pandas",
}


def _row_metrics(kind: str, fallback: str | None = None) -> str:
    """Where a validation's row metrics were computed, and why in pandas when the pushdown was tried."""
    said = _ROW_METRICS.get(kind, kind)
    return f"{said}, because {fallback}" if fallback and kind == "pandas" else said


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}%"


def describe_expectation(outcome: ExpectationOutcome) -> str:
    """GX's prescriptive sentence for the expectation, or its type when GX renders none."""
    return outcome.description or outcome.expectation_type


def status(e: ExpectationOutcome) -> str:
    """pass; FAIL (blocks the publish); or, for a failed rule that does not block, its severity (warning, info)."""
    if e.success:
        return "pass"
    return "FAIL" if e.blocks else e.severity


def _order(e: ExpectationOutcome) -> int:
    """Blocking failures first, then warnings, then info, then passes."""
    return 0 if e.blocks else 1 if e.failed and e.severity == "warning" else 2 if e.failed else 3


# The table artifact's cells do not wrap, and the UI shows 700-850 px of a table at a 1400 px window before it
# scrolls: what a reader scans for (what failed, where, how many, which values) comes first, in short columns.
TABLE_CELL = {"rule": 48, "sample": 40, "observed": 40, "notes": 60}


def expectation_rows(result: AuditResult) -> list[dict[str, Any]]:
    """One row per expectation, failed first, for the `<dataset>-expectations` table artifact and `wap validate`'s
    table (the markdown report has every detail in full)."""
    rows = []
    for e in sorted(result.expectations, key=_order):
        rows.append(
            {
                "status": status(e),
                "column": e.column or "",
                "rule": _cell(describe_expectation(e), TABLE_CELL["rule"]),
                "unexpected": "" if e.unexpected_count is None else e.unexpected_count,
                "percent": _percent(e.unexpected_percent),
                "sample": _cell((e.partial_unexpected_list or [])[:MAX_SAMPLES] or "", TABLE_CELL["sample"]),
                "observed": _cell(e.exception_message or e.observed_value, TABLE_CELL["observed"]),
                "severity": e.severity,
                "suite": e.suite or result.suite_name,
                "notes": _cell(e.notes or "", TABLE_CELL["notes"]),
                "expectation": e.expectation_type,
                "arguments": _cell(e.kwargs),
                "mostly": e.kwargs.get("mostly", ""),
            }
        )
    return rows


def _code(value: Any) -> str:
    text = " ".join(str(value).split())
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}" if text else '""'


def _sample(value: Any) -> str:
    if is_null(value):
        return "null"
    return _code(value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False))


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _failure(e: ExpectationOutcome) -> str:
    """What a failed expectation found: counts and sample bad values, a schema mismatch, or an error."""
    f = finding(e, MAX_SAMPLES)
    if f.kind == "error":
        return f"Could not be evaluated: {_prose(f.message or '', 300)}"
    if f.kind == "nulls":
        pct = f" ({_percent(f.percent)} of rows)" if f.percent is not None else ""
        rows = _cell(f.rows_by_key, 200) if f.keys else ", ".join(map(str, f.rows))
        return f"Found **{_plural(f.count or 0, 'null value')}**{pct}" + (f", e.g. at rows {rows}" if rows else "")
    if f.kind == "unexpected":
        pct = f" ({_percent(f.percent)} of non-null rows)" if f.percent is not None else ""
        shown = list(dict.fromkeys(_sample(v) for v in f.examples))
        noun = "unexpected row" if e.expectation_type == SQL_RULE else "unexpected value"
        missing = (e.details or {}).get("missing_values") if isinstance(e.details, dict) else None
        lacks = f"; missing from the column: {', '.join(_sample(v) for v in missing[:MAX_SAMPLES])}" if missing else ""
        at = f", at rows {_cell(f.rows_by_key, 200)}" if f.keys else ""
        examples = f", e.g. {', '.join(shown)}" if shown else ""
        return f"Found **{_plural(f.count or 0, noun)}**{pct}{examples}{at}{lacks}"
    if f.kind == "mismatch":
        return "; ".join(
            f"{kind.capitalize()} columns: "
            + (", ".join(_code(c) for c in cols) if isinstance(cols, list) else _code(cols))
            for kind, cols in f.mismatched.items()
        )
    missing = (e.details or {}).get("missing_values") if isinstance(e.details, dict) else None
    if missing:
        return "Missing from the column: " + ", ".join(_sample(v) for v in missing[:MAX_SAMPLES])
    if f.observed is None:
        return "Failed"
    observed = _cell(f.observed, 200).replace("\\|", "|")  # a code span, not a table cell
    return f"Observed {_code(observed)}"


def _result(e: ExpectationOutcome) -> str:
    """A few words for the overview table (V1 does not wrap cells): what the expectation observed.

    A column map expectation counts its unexpected rows (with their share of the non-null rows); an aggregate one
    (distinct values, most common value, mean, row count, ...) observed a value, or, in GX 1.24, counts distinct
    values outside the set (``unexpected_count`` without a percent) and names them."""
    if e.exception_message:
        return "**error**"
    if e.unexpected_count is not None and e.unexpected_percent is not None:
        pct = f" ({_percent(e.unexpected_percent)})" if e.unexpected_count else ""
        return f"{e.unexpected_count} unexpected{pct}"
    missing = _missing(e)
    if e.unexpected_count is not None:  # not a share of rows: rows of a SQL rule, distinct values outside a set
        noun = "unexpected row" if e.expectation_type == SQL_RULE else "unexpected value"
        values = "" if e.expectation_type == SQL_RULE or not e.partial_unexpected_list else f": {_values(e)}"
        if missing and not e.unexpected_count:
            return missing
        return f"{_plural(e.unexpected_count, noun)}{values}" + (f"; {missing}" if missing else "")
    if missing:
        return missing
    observed = e.observed_value
    if isinstance(observed, list) and e.expectation_type.startswith("expect_table_columns"):
        return f"{len(observed)} columns"
    if isinstance(observed, list):
        return f"observed {_cell(', '.join(map(str, observed)), 30)}" if observed else "observed none"
    if observed is not None:
        return f"observed {_cell(observed, 30)}"
    return "" if e.success else "failed"


def _missing(e: ExpectationOutcome) -> str:
    """ "missing: X": the values of a distinct-value set check's set that the column lacks ("" if none)."""
    values = (e.details or {}).get("missing_values") if isinstance(e.details, dict) else None
    if not values:
        return ""
    return "missing: " + _cell(", ".join(str(v) for v in values[:MAX_SAMPLES]), 40)


def _values(e: ExpectationOutcome) -> str:
    """A result's sample values, as in a cell: `Q`, `X` (distinct, at most MAX_SAMPLES)."""
    distinct: dict[str, Any] = {}
    for value in e.partial_unexpected_list or []:
        distinct.setdefault(repr(value), value)
    shown = ", ".join(str(v) for v in list(distinct.values())[:MAX_SAMPLES])
    return _cell(shown, 40)


def failing_rows_lines(hints: Sequence[str]) -> list[str]:
    """Markdown for each failed rule's `wap query` listing its rows on the kept branch ("rule: command")."""
    if not hints:
        return []
    lines = ["", "Its failing rows, rule by rule (paste into a shell):", ""]
    for hint in hints:
        rule, _, command = hint.partition(": wap query ")
        lines.append(f"- {_prose(rule, 200)}: {_code('wap query ' + command)}")
    return lines


def _prose(value: str, limit: int) -> str:
    """GX's sentence as markdown text: markup characters in it (a regex, say) are shown, not applied."""
    return _cell(value.translate({ord(c): "\\" + c for c in "\\`*_[]<>#"}), limit)


def _short(description: str) -> str:
    for long, sign in (("greater than or equal to", "≥"), ("less than or equal to", "≤")):
        description = description.replace(long, sign)
    return _prose(description, 72)


def render_markdown(outcome: GateRun, error: BaseException | None = None) -> str:
    """The verdict as markdown that reads well in both Prefect UIs (V1 and V2).

    Written for how the UIs render it: V1 never wraps table cells (a wide table is cut off at the
    right edge, with a hidden scrollbar) and V2 squeezes wide tables into narrow columns. So only
    lists carry long text (what failed, with its bad values; the run's facts), and the one table is
    a narrow overview of every expectation. Plain words, no symbols: ✔/✘ render as empty boxes with
    some browsers' fonts.
    """
    audit = outcome.audit
    failed = [] if audit is None else audit.blocking  # what blocks: critical rules, and rules that could not run
    minor = [] if audit is None else [e for e in audit.failed if not e.blocks]  # warning and info: reported only

    code, prose, short, failure, result = _code, _prose, _short, _failure, _result

    schema = error if isinstance(error, SchemaMismatchError) else None
    inspect = getattr(outcome, "pending_key", None) is not None  # on_success inspect: passed, kept, not merged
    if outcome.published:
        verdict = "PUBLISHED with warnings" if audit is not None and audit.warnings else "PUBLISHED"
    elif inspect:
        verdict = "PASSED — kept for inspection"
    elif failed:
        verdict = "BLOCKED by the audit"
    elif outcome.group is not None and isinstance(error, AuditFailedLike):
        verdict = f"BLOCKED with group {outcome.group}"
    elif schema is not None:
        verdict = "BLOCKED by the schema check"
    else:
        verdict = "NOT PUBLISHED"
    lines = [f"# {outcome.dataset}: {verdict}", ""]
    if schema is not None:
        lines += [
            f"**The batch does not fit table {code(schema.table)} on `main`**: no row was written, nothing was"
            " published, `main` is unchanged.",
            "",
            "## Schema against `main`",
            "",
            *[f"- {code(c)}: missing from the source ({code(t)} in the table)" for c, t in schema.missing],
            *[f"- {code(c)}: not in the table ({code(t)} in the source)" for c, t in schema.extra],
            *[f"- {code(c)}: retyped: {code(a)} in the source, {code(b)} in the table" for c, a, b in schema.retyped],
        ]
        error = None  # said above, column by column
    elif audit is not None:
        s = audit.statistics
        passed = f"**All {s['evaluated']} expectations passed**"
        if minor:  # the publish went ahead: no critical rule failed
            passed = f"**No critical rule failed** ({_minor_counts(audit)} of {s['evaluated']} expectations)"
        if outcome.published:
            if outcome.mode == "append":
                lines.append(f"{passed}: {outcome.added} rows appended, the table on `main` now holds {outcome.rows}.")
            else:
                lines.append(f"{passed}: {outcome.rows} rows published to `main`.")
        elif inspect:
            lines.append(
                f"{passed}: kept on branch {code(outcome.branch)} at commit"
                f" {code(getattr(outcome, 'audited_commit', ''))} for inspection, not published; `main` is unchanged."
                f" Publish it with {code(f'wap publish {outcome.branch}')}."
            )
        elif failed:
            lines.append(
                f"**{s['unsuccessful']} of {s['evaluated']} expectations failed**: nothing was published,"
                " `main` is unchanged."
            )
        elif outcome.group is not None and isinstance(error, AuditFailedLike):
            lines.append(
                f"All {s['evaluated']} expectations passed, but group {code(outcome.group)} was blocked (see its"
                " report): no member was published, `main` is unchanged."
            )
        else:
            lines.append(f"All {s['evaluated']} expectations passed, but publishing failed: `main` is unchanged.")
    else:
        lines.append("The gate stopped before the audit: nothing was published, `main` is unchanged.")
    if error is not None and not failed and not (outcome.group is not None and isinstance(error, AuditFailedLike)):
        lines += ["", f"**Error**: {prose(f'{type(error).__name__}: {error}', 300)}"]
    if isinstance(error, AuditFailedLike) and getattr(error, "kept", None):  # on_failure inspect
        hint = getattr(error, "kept_hint", "")
        lines += ["", f"**The failed branch {code(error.kept)} is kept for inspection**: {code(hint)}"]
        lines += failing_rows_lines(getattr(error, "failing_rows", ()))
    lines.append("")

    for title, shown in (("Failed expectations", failed), ("Warnings and info (not blocking)", minor)):
        if not shown:
            continue
        lines += [f"## {title}", ""]
        for e in shown:
            sentence = prose(describe_expectation(e), 300)
            sentence += "" if sentence.endswith((".", "…")) else "."
            where = f" on column {code(e.column)}" if e.column else ""
            found = failure(e)
            found += "" if found.endswith((".", "…")) else "."
            in_suite = scope(e, audit) if audit is not None else ""
            in_suite = f"; suite {code(e.suite)} on {WHAT_SUITES_VALIDATE[e.validates]}" if in_suite else ""
            severity = "" if e.blocks else f"**{e.severity}**: "
            lines.append(f"- {severity}**{sentence}** {found} ({code(e.expectation_type)}{where}{in_suite})")
            if e.notes:
                lines.append(f"  - Why the rule exists: {notes_prose(e.notes)}")
        lines.append("")

    rows_facts = (
        [("Rows appended", _count(outcome.added)), ("Rows in the table", _count(outcome.rows))]
        if outcome.mode == "append"
        else [("Rows written", _count(outcome.rows))]
    )
    facts: list[tuple[str, str]] = [
        ("Dataset", outcome.dataset),
        ("Group", outcome.group or ""),
        ("Source", code(outcome.source)),
        ("Branch", code(outcome.branch)),
        ("Mode", outcome.mode),
        *rows_facts,
        (
            "Published commit",
            code(outcome.published_commit)
            if outcome.published
            else ("none yet: kept for inspection" if inspect else "blocked"),
        ),
    ]
    if audit is not None:
        s = audit.statistics
        run = audit.run_id if audit.run_time in audit.run_id else f"{audit.run_id} at {audit.run_time}"
        facts += [
            ("Checkpoint", f"{audit.checkpoint_name} (GX {audit.gx_version})"),
            (
                "Expectations",
                f"{s['evaluated']} evaluated, {s['successful']} passed, {s['unsuccessful']} failed"
                f" ({_percent(s.get('success_percent'))} success)",
            ),
            ("Validation run", code(run)),
        ]
        if len(audit.suites) < 2:
            facts += [
                ("Suite", audit.suite_name),
                (
                    "Row metrics",
                    _row_metrics(audit.row_metrics, audit.suites[0].row_metrics_fallback if audit.suites else None),
                ),
                ("Data docs", docs_markdown(audit.data_docs_url) if audit.data_docs_url else "not built"),
            ]
        for suite in audit.suites if len(audit.suites) > 1 else ():
            t = suite.statistics
            facts += [
                (
                    f"Suite {suite.suite_name}",
                    f"{'passed' if suite.success else '**failed**'} on {WHAT_SUITES_VALIDATE[suite.validates]}"
                    f" ({_count(suite.rows)} rows): {t['successful']} of {t['evaluated']} expectations passed;"
                    f" row metrics {_row_metrics(suite.row_metrics, suite.row_metrics_fallback)}",
                ),
                (
                    f"Data docs of {suite.suite_name}",
                    docs_markdown(suite.data_docs_url) if suite.data_docs_url else "not built",
                ),
            ]
        if audit.relied_proof is not None:
            relied = audit.relied_proof
            facts.append(
                (
                    "Uniqueness across the table",
                    f"{', '.join(map(code, relied.unique_columns))} checked as a semi-join of the batch's values"
                    f" against main's, which the audit of commit {code(relied.commit[:12])} proved distinct",
                )
            )
    lines += ["## Run", ""] + [f"- **{name}**: {value}" for name, value in facts if value]
    if audit is not None and audit.baseline is not None:
        lines += ["", *_baseline_section(audit, code)]

    if audit is not None:
        two = len(audit.suites) > 1  # then a column says which suite each rule is from
        head = "| Status | Suite | Expectation | Result |" if two else "| Status | Expectation | Result |"
        lines += ["", "## All expectations", "", head, "|---|---|---|---|" if two else "|---|---|---|"]
        for e in sorted(audit.expectations, key=_order):  # failed first, as in the table artifact
            cell = f" {e.suite} |" if two else ""
            said = status(e) if e.success else f"**{status(e)}**"
            lines.append(f"| {said} |{cell} {short(describe_expectation(e))} | {result(e)} |")
    return "\n".join(lines) + "\n"


def _minor_counts(audit: AuditResult) -> str:
    """e.g. "1 warning, 1 info": the failed rules that did not block."""
    parts = [(len(audit.warnings), "warning"), (len(audit.infos), "info")]
    return ", ".join(f"{n} {noun}{'s' if n > 1 and noun == 'warning' else ''}" for n, noun in parts if n)


def notes_prose(notes: str) -> str:
    """A rule's meta.notes (the suite author's markdown, e.g. `code`) in a list item: one paragraph, kept short."""
    return shorten(" ".join(notes.split()), 500, marker="…")


def _baseline_section(audit: AuditResult, code: Any) -> list[str]:
    """The facts of main the suites compared with: the parameters they use, with their values."""
    baseline = audit.baseline
    assert baseline is not None
    used = baseline.values_used()
    lines = ["## Compared with `main`", ""]
    if baseline.first_run:
        lines.append(
            "`main` has no such table yet (first run): the facts below are this run's own table's, so every rule"
            " comparing with `main` compares the new table with itself."
        )
    else:
        lines.append(
            f"Facts of the table on {code(baseline.measured)} (`main` as this run found it), as GX suite parameters:"
        )
    lines.append("")
    if used:
        lines += [f"- {code(name)} = {code(json.dumps(value, default=str))}" for name, value in used.items()]
    else:
        lines.append("No suite uses them (`main_*` parameters, see the README).")
    if baseline.unkeyed_columns:
        lines += [
            "",
            f"Columns without parameters (their names collide): {', '.join(map(code, baseline.unkeyed_columns))}",
        ]
    return lines
