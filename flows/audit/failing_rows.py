"""SQL that lists a failed rule's rows, for a person to paste (`wap query ... --ref <kept branch>`).

The predicate is the pushdown's own (``pushdown.SqlRowMetrics``): the rows GX's pandas metric looks at and which
of those are unexpected, for the same GX metric the rule asked for, so the listing matches what the audit
counted. A rule the pushdown has no SQL for, but whose failing rows GX named by the dataset's key, gets those
sampled rows by key instead; a rule about the table or a column's aggregate (no failing rows) gets none.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.audit.pushdown import QueryTableMetrics, SqlRowMetrics, _quote, _sql_value, engine_class

if TYPE_CHECKING:
    import pyarrow as pa

    from flows.audit.checkpoint import ExpectationOutcome


@dataclass(frozen=True)
class FailingRowsQuery:
    sql: str
    every_row: bool  # True: every failing row; False: only the rows GX sampled (by key)


class _ListingSQL(SqlRowMetrics):
    """The pushdown's predicates over a table as `wap query` names it, values written as literals."""

    def __init__(self, schema: pa.Schema, table: str) -> None:
        super().__init__(schema)
        self.table = table
        self._null_counts = dict.fromkeys(schema.names, 0)  # only the SQL is wanted, never run here

    def _relation(self) -> str:
        return self.table

    _bind = QueryTableMetrics._bind  # literals: the query is pasted, not bound


def failing_rows_query(
    outcome: ExpectationOutcome, table: str, schema: pa.Schema, key: Sequence[str] = ()
) -> FailingRowsQuery | None:
    """A SELECT listing ``outcome``'s failing rows of ``table`` (schema ``schema``): the key columns and the
    rule's column, in key order; None if the rule has no failing rows to list."""
    if not outcome.failed or outcome.exception_message or not outcome.column or outcome.column not in schema.names:
        return None
    key = [k for k in key if k in schema.names and k != outcome.column]
    shown = ", ".join(_quote(c) for c in [*key, outcome.column])
    order = f" ORDER BY {', '.join(_quote(k) for k in key)}" if key else ""
    predicate = _predicate(outcome, schema, table)
    if predicate is not None:
        return FailingRowsQuery(_readable(f"SELECT {shown} FROM {table} WHERE {predicate}{order}"), every_row=True)
    sampled = outcome.failing_row_keys
    if not key or not sampled:
        return None
    rows = []
    for row in sampled:
        literals = [_sql_value(row.get(k)) for k in key]
        if any(v is None for v in literals):
            return None
        rows.append(" AND ".join(f"{_quote(k)} = {v}" for k, v in zip(key, literals, strict=True)))
    where = " OR ".join(f"({r})" for r in dict.fromkeys(rows))
    return FailingRowsQuery(_readable(f"SELECT {shown} FROM {table} WHERE {where}{order}"), every_row=False)


def _predicate(outcome: ExpectationOutcome, schema: pa.Schema, table: str) -> str | None:
    """The pushdown's SQL for the unexpected rows of the metric GX asked this rule for, values inlined."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    source = _ListingSQL(schema, table)
    kwargs: dict[str, Any] = {**copy.deepcopy(outcome.kwargs), "column": outcome.column}
    try:
        expectation = ExpectationConfiguration(type=outcome.expectation_type, kwargs=kwargs).to_domain_obj()
        engine = engine_class()()
        engine.load_batch_data("listing", source.frame())
        dependencies = expectation.get_validation_dependencies(
            execution_engine=engine, runtime_configuration={"result_format": {"result_format": "SUMMARY"}}
        )
    except Exception:  # e.g. arguments that only suite parameters made valid: no listing rather than a wrong one
        return None
    map_metric = getattr(expectation, "map_metric", None)  # e.g. column_values.in_set: what the rule counts
    for metric in dependencies.get_metric_configurations():
        if map_metric and metric.metric_name == f"{map_metric}.unexpected_count":
            check = source._check_for(metric)
            if check is None or check.params:
                return None
            return check.unexpected if check.domain == "TRUE" else f"{check.domain} AND {check.unexpected}"
    return None


_LITERAL = re.compile(r"('(?:[^']|'')*')")
_QUOTED_NAME = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"')


def _readable(sql: str) -> str:
    """``sql`` with plain identifiers unquoted (``"Sex"`` -> ``Sex``): it is pasted inside a shell's double
    quotes. A name that is a DuckDB keyword, or not plain, stays quoted; string literals are left as they are."""
    keywords = _duckdb_keywords()
    parts = _LITERAL.split(sql)  # odd positions: literals
    for i in range(0, len(parts), 2):
        parts[i] = _QUOTED_NAME.sub(lambda m: m[0] if m[1].lower() in keywords else m[1], parts[i])
    return "".join(parts)


@functools.cache
def _duckdb_keywords() -> frozenset[str]:
    import duckdb

    rows = duckdb.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()
    return frozenset(row[0].lower() for row in rows)
