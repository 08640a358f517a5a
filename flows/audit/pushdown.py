"""The audit's row-level metrics computed by SQL where the table lives ("pushdown").

GX still runs the checkpoint: the same suite, Expectation classes, result objects, stores and data
docs. Only the numbers that depend on the rows come from somewhere else. GX validates a zero-row
pandas frame with the exact dtypes the full conversion would have (so schema expectations see what
they would see), and ``PushdownPandasExecutionEngine`` answers the row-dependent metrics (row count,
null counts, unexpected counts, the first unexpected values and their row positions) from SQL: one
aggregate pass for every count, plus one small query per failing expectation for its samples. Nothing
is read into Python, so memory stays at the SQL engine's working set.

The SQL is one (``SqlRowMetrics``); two sources run it. ``ParquetTableMetrics``: DuckDB over the table's
Parquet files, on a backend that hands them out (the embedded one). ``QueryTableMetrics``: the lakehouse's
own ``client.query`` on the audited ref, on one that does not (Bauplan: its engine runs the SQL, and only
counts and samples cross the network).

Only metrics whose pandas semantics are reproduced exactly are answered (``SqlRowMetrics.can_answer``):
null, set, range and uniqueness checks on int64, float64 and string columns (NaN counts as null, as in
pandas), regex checks whose pattern RE2 reads as Python does (``re2_pattern``) and value lengths on strings,
null checks and some equality checks on bool, date, timestamp and decimal columns (``_FAMILIES_OF_KIND``),
GX's ``Condition`` row conditions, failing rows named by key columns, in the BASIC/SUMMARY result formats.
``plan`` lists what a suite needs beyond that; the audit
then runs GX on the full pandas frame instead, so a suite never gives a different verdict because of
where it ran. ``tests/test_audit_pushdown.py``, ``tests/test_audit_pushdown_query.py`` and
``tests/test_audit_speed.py`` compare both paths' GX results field by field.

Column aggregates and distinct values (min, max, median, int sums and means, distinct counts and sets, the most
common value) are decided and answered by ``pushdown_aggregates``, to which ``can_answer``, ``prefetch`` and
``answer`` hand them (``tests/test_audit_pushdown_aggregates.py``).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

# Table column -> its name inside a file, matched by Iceberg field id (pyiceberg writes `a b` as `a_x20b`).
from flows.lakehouse.parquet_fields import stored_names as _stored_names

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.validator.metric_configuration import MetricConfiguration

    from flows.lakehouse.protocol import LakehouseClient

# Map metrics answered here (GX's ``map_metric`` names) and the summaries GX asks of each.
MAP_METRICS = (
    "column_values.nonnull",
    "column_values.in_set",
    "column_values.between",
    "column_values.unique",
    "column_values.match_regex",
    "column_values.not_match_regex",
    "column_values.match_regex_list",
    "column_values.not_match_regex_list",
    "column_values.value_length.equals",
    "column_values.value_length.between",
)
_SUFFIXES = ("unexpected_count", "unexpected_values", "unexpected_index_list", "unexpected_index_query")
# Metrics GX computes correctly on the zero-row frame: they depend on the columns and dtypes only.
SCHEMA_METRICS = frozenset({"table.columns", "table.column_types"})
_VALUE_KEYS = {
    "column_values.nonnull": frozenset(),
    "column_values.unique": frozenset(),
    "column_values.in_set": frozenset({"value_set"}),
    "column_values.between": frozenset({"min_value", "max_value", "strict_min", "strict_max"}),
    "column_values.match_regex": frozenset({"regex"}),
    "column_values.not_match_regex": frozenset({"regex"}),
    "column_values.match_regex_list": frozenset({"regex_list", "match_on"}),
    "column_values.not_match_regex_list": frozenset({"regex_list"}),
    "column_values.value_length.equals": frozenset({"value"}),
    "column_values.value_length.between": frozenset({"min_value", "max_value", "strict_min", "strict_max"}),
}
_SHARED_NAN = float("nan")
# The families answered on the other column types (int64, float64 and string columns take every one): where
# pandas' semantics are plain (null tests; equality of bools, dates, naive timestamps) and its values reproduced.
_FAMILIES_OF_KIND = {
    "bool": ("column_values.nonnull", "column_values.unique", "column_values.in_set"),
    "date": ("column_values.nonnull", "column_values.unique"),
    "timestamp": ("column_values.nonnull", "column_values.unique"),
    "timestamptz": ("column_values.nonnull",),
    "decimal": ("column_values.nonnull",),
}
_KEY_KINDS = ("int", "float", "str")  # the types a row key may have (unexpected_index_column_names)
_COMPOUND = "compound_columns.unique"  # expect_compound_columns_to_be_unique's multicolumn map metric
_IGNORE_ROW_IF = ("never", "all_values_are_missing", "any_value_is_missing")
# A metric's domain keys of a row condition, and the comparisons of GX's Condition objects, as SQL.
_CONDITION_KEYS = ("row_condition", "condition_parser")
_CONDITION_OPERATORS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "IN": "", "NOT_IN": ""}
# GX's pandas unexpected_index_query lists every unexpected row; above this many rows it is left to pandas.
_MAX_QUERY_ROWS = 1_000_000


class MetricsSource(Protocol):
    """What answers metrics for GX inside ``answering``: ``ParquetTableMetrics``/``QueryTableMetrics`` here,
    ``CrossTableMetrics``."""

    failures: list[str]  # errors raised while GX asked (GX folds them into results, which must not be trusted)

    @property
    def fingerprint(self) -> str: ...

    def can_answer(self, metric: MetricConfiguration) -> bool: ...

    def answer(self, metric: MetricConfiguration) -> Any: ...


_ACTIVE: contextvars.ContextVar[MetricsSource | None] = contextvars.ContextVar("wap_pushdown", default=None)


class PushdownError(Exception):
    """The pushdown cannot serve this table (files it cannot map), or failed while GX was asking it."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _add_footer_null_counts(counts: dict[str, int] | None, meta: Any, stored: dict[str, str]) -> dict[str, int] | None:
    """``counts`` plus one Parquet file's per-column null counts from its footer; None if it lacks any."""
    if counts is None:
        return None
    position = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    if set(position) != set(stored.values()):  # nested columns: count them in SQL
        return None
    column_index = {name: position[stored_name] for name, stored_name in stored.items()}
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for name, i in column_index.items():
            stats = row_group.column(i).statistics
            if stats is None or not stats.has_null_count:
                return None
            counts[name] += stats.null_count
    return counts


def _domain(metric: MetricConfiguration) -> dict[str, Any]:
    """The metric's domain without the batch (one batch here) and without unset keys (GX lists them as None)."""
    return {k: v for k, v in (metric.metric_domain_kwargs or {}).items() if v is not None and k != "batch_id"}


@dataclass(frozen=True)
class _Check:
    """One map metric on one column, as SQL: the rows it considers and which of those are unexpected."""

    column: str
    domain: str  # predicate: the rows GX's pandas metric looks at (non-null ones, except for nonnull)
    unexpected: str  # predicate over those rows
    params: tuple[Any, ...] = ()  # bound to the ? in `unexpected` (none where values are inlined)
    repeated_values: bool = False  # uniqueness: unexpected = rows whose value occurs more than once
    count_sql: str = ""  # uniqueness: a scalar query counting those rows without a pass over every row


class SqlRowMetrics:
    """GX's row-dependent metrics of one table version, as SQL over one relation holding its rows.

    The SQL (which rows each metric considers, which are unexpected, what GX's pandas metric would count and
    sample) is shared; a subclass says what the relation is, how a row's position is numbered and how the SQL
    runs: ``ParquetTableMetrics`` (DuckDB over the data files, here) and ``QueryTableMetrics`` (the lakehouse's
    own ``query``, on a backend that does not hand out its files).
    """

    row_metrics = "duckdb"  # where the audit's report says the row metrics were computed
    fingerprint_marker = "parquet_files_fingerprint"  # the batch marker GX records, naming what identifies the rows

    def __init__(self, schema: pa.Schema) -> None:
        if {"file_row_number", "__wap_row", "__wap_n"} & {n.lower() for n in schema.names}:
            raise PushdownError("a column is named like the row-position column the pushdown adds")
        self.schema = schema
        self.row_count = 0
        self.fingerprint = ""  # identifies this table version, like a data hash
        self._counts: dict[str, int] = {}
        self._filtered_counts: dict[str, int] = {}  # rows kept by each row_condition (SQL) asked about
        self._sampled: dict[tuple[str, int | None, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        self.failures: list[str] = []  # errors raised while GX was asking (the audit must not trust that run)
        # Null counts decide dtypes (int64 with nulls is float64 in pandas).
        self._null_counts: dict[str, int] | None = None

    # ---------------------------------------------------------------- what a subclass provides

    def _relation(self) -> str:
        """A relation (SQL) holding the table's rows under the table's column names."""
        raise NotImplementedError

    def _positioned(self) -> str:
        """The relation's rows with ``__wap_row``: their position as GX's pandas index numbers them (0-based)."""
        raise NotImplementedError

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """Run one SELECT; its rows."""
        raise NotImplementedError

    def _bind(self, values: list[Any]) -> tuple[list[str], tuple[Any, ...]] | None:
        """SQL standing for each value in a predicate, and what is bound to it: here a ``?`` each, bound to it.
        None: these values cannot be written in this source's SQL (the metric is then not answered)."""
        return ["?"] * len(values), tuple(values)

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- what can be answered

    def _kind(self, column: str) -> str | None:
        if column not in self.schema.names:
            return None
        t = self.schema.field(column).type
        if pa.types.is_int64(t):
            return "int"
        if pa.types.is_float64(t):
            return "float"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "str"
        if pa.types.is_boolean(t):
            return "bool"  # bool in pandas, object (True/False/None) with nulls
        if pa.types.is_date32(t):
            return "date"  # object: datetime.date, None
        if pa.types.is_timestamp(t):
            return "timestamp" if t.tz is None else "timestamptz"  # datetime64[unit(, tz)]: Timestamp, NaT
        if pa.types.is_decimal(t):
            return "decimal"  # object: Decimal, None
        return None  # other types convert to pandas dtypes whose GX semantics are not reproduced here

    def _not_null(self, column: str) -> str:
        c = _quote(column)
        # pandas treats NaN as missing; DuckDB treats it as a number.
        return f"({c} IS NOT NULL AND NOT isnan({c}))" if self._kind(column) == "float" else f"({c} IS NOT NULL)"

    def _check(self, base: str, column: str, value_kwargs: dict[str, Any], row_filter: str = "TRUE") -> _Check | None:
        kind = self._kind(column)
        if kind is None or base not in _FAMILIES_OF_KIND.get(kind, MAP_METRICS):
            return None
        c = _quote(column)
        if base == "column_values.nonnull":
            return _Check(column, row_filter, f"NOT {self._not_null(column)}", ())
        domain = self._not_null(column) if row_filter == "TRUE" else f"{row_filter} AND {self._not_null(column)}"
        if base == "column_values.unique":
            repeated, count = self._repeated(column, domain)
            return _Check(column, domain, f"{c} IN ({repeated})", repeated_values=True, count_sql=count)
        if base == "column_values.in_set":
            values = value_kwargs.get("value_set")
            if values is None:  # GX: vacuously true
                return _Check(column, domain, "FALSE", ())
            if not isinstance(values, list | tuple | set):
                return None
            values = list(values)
            if kind == "str":
                ok = all(isinstance(v, str) for v in values)
            elif kind == "bool":
                ok = all(isinstance(v, bool) for v in values)  # pandas' isin takes 1 for True; SQL does not
            else:
                ok = all(_is_number(v) for v in values)
            if not ok:  # mixed types: pandas' isin and SQL's IN disagree on coercions
                return None
            if not values:
                return _Check(column, domain, "TRUE", ())
            bound = self._bind(values)
            if bound is None:
                return None
            return _Check(column, domain, f"{c} NOT IN ({', '.join(bound[0])})", bound[1])
        if base.startswith(("column_values.match_regex", "column_values.not_match_regex")):
            return self._regex_check(base, column, domain, value_kwargs) if kind == "str" else None
        if base.startswith("column_values.value_length."):
            # GX on pandas: len(str(value)), code points, as DuckDB's length() counts them.
            if kind != "str":
                return None  # str() of a number is pandas' own text (1.0, nan)
            if base.endswith(".equals"):
                value = value_kwargs.get("value")
                bound = self._bind([value]) if _is_number(value) else None
                if bound is None:
                    return None
                return _Check(column, domain, f"NOT (length({c}) = {bound[0][0]})", bound[1])
            return self._between(column, domain, f"length({c})", value_kwargs)
        if base == "column_values.between":
            if kind == "str":
                return None  # pandas compares strings value by value and raises on mixed types
            return self._between(column, domain, c, value_kwargs)
        return None

    def _between(self, column: str, domain: str, value_sql: str, value_kwargs: dict[str, Any]) -> _Check | None:
        """A range check of ``value_sql`` (GX's between, on numbers)."""
        low, high = value_kwargs.get("min_value"), value_kwargs.get("max_value")
        if low is None and high is None:
            return None
        if any(v is not None and not _is_number(v) for v in (low, high)):
            return None
        if low is not None and high is not None and low > high:
            return None  # GX raises; let it, on the pandas path
        bounds = [v for v in (low, high) if v is not None]
        bound = self._bind(bounds)
        if bound is None:
            return None
        sql = iter(bound[0])
        parts = []
        if low is not None:
            parts.append(f"{value_sql} {'>' if value_kwargs.get('strict_min') else '>='} {next(sql)}")
        if high is not None:
            parts.append(f"{value_sql} {'<' if value_kwargs.get('strict_max') else '<='} {next(sql)}")
        return _Check(column, domain, f"NOT ({' AND '.join(parts)})", bound[1])

    def _regex_check(self, base: str, column: str, domain: str, value_kwargs: dict[str, Any]) -> _Check | None:
        """GX's regex checks: pandas' ``str.contains`` (Python ``re.search``) as DuckDB's ``regexp_matches`` (RE2),
        for the patterns ``re2_pattern`` translates exactly; None for any other."""
        if base.endswith("_list"):
            patterns = value_kwargs.get("regex_list")
            match_on = value_kwargs.get("match_on", "any") if base == "column_values.match_regex_list" else "any"
            if not isinstance(patterns, list) or not patterns or match_on not in ("any", "all"):
                return None  # pandas raises on an empty list or another match_on
        else:
            patterns = [value_kwargs.get("regex")]
            match_on = "any"
        translated = [re2_pattern(p) if isinstance(p, str) else None for p in patterns]
        if any(t is None for t in translated):
            return None
        bound = self._bind([t for t in translated if t is not None])
        if bound is None:
            return None
        c = _quote(column)
        matches = [f"regexp_matches({c}, {sql})" for sql in bound[0]]
        matched = "(" + (" OR " if match_on == "any" else " AND ").join(matches) + ")"
        unexpected = matched if base.startswith("column_values.not_") else f"NOT {matched}"
        return _Check(column, domain, unexpected, bound[1])

    def _repeated(self, column: str, domain: str) -> tuple[str, str]:
        """SQL for the values of ``column`` that occur more than once (pandas: ``duplicated(keep=False)`` over the
        non-null values), and a scalar SQL for the rows holding them."""
        c = _quote(column)
        # `__wap_n`, not `n`: a column named `n` would be renamed `n_1` by DuckDB and `n` would mean its values.
        groups = f"SELECT {c}, count(*) AS __wap_n FROM {self._relation()} WHERE {domain} GROUP BY {c}"
        groups += " HAVING count(*) > 1"
        return f"SELECT {c} FROM ({groups})", f"SELECT coalesce(sum(__wap_n), 0) FROM ({groups})"

    @staticmethod
    def _split(name: str) -> tuple[str, str] | None:
        base, _, suffix = name.rpartition(".")
        return (base, suffix) if base in MAP_METRICS and suffix in _SUFFIXES else None

    def _check_for(self, metric: MetricConfiguration) -> _Check | None:
        split = self._split(metric.metric_name)
        domain = _domain(metric)
        if split is None or "column" not in domain or not set(domain) <= {"column", *_CONDITION_KEYS}:
            return None
        row_filter = self._row_filter(domain)
        if row_filter is None:
            return None
        base, _ = split
        values = {k: v for k, v in (metric.metric_value_kwargs or {}).items() if k != "result_format"}
        if not set(values) <= _VALUE_KEYS[base]:
            return None
        return self._check(base, domain["column"], values, row_filter)

    def _row_filter(self, domain: dict[str, Any]) -> str | None:
        """The rows a domain's ``row_condition`` keeps, as SQL ("TRUE" without one); None if not reproduced here.

        GX 1.24's ``Condition`` objects (``Column("x") > 5``, ``==``, ``!=``, ``<``, ``<=``, ``>=``, ``is_in``,
        ``is_not_in``, ``is_null``, ``is_not_null``, combined with ``&`` and ``|``) reach the metrics as dicts; GX's
        pandas engine writes each as a ``DataFrame.query`` clause, where a missing value (NaN) compares False except
        under ``!=`` and ``not in``; SQL's NULL (and DuckDB's NaN, a number there) are mapped to that. String
        conditions (``condition_parser: pandas``) are pandas expressions, not translated."""
        condition = domain.get("row_condition")
        if condition is None:
            return "TRUE"
        if not isinstance(condition, dict) and callable(getattr(condition, "dict", None)):
            condition = condition.dict()  # a Condition object
        return self._condition_sql(condition) if isinstance(condition, dict) else None

    def _condition_sql(self, condition: dict[str, Any]) -> str | None:
        kind = condition.get("type")
        if kind in ("and", "or"):
            parts = [self._condition_sql(c) if isinstance(c, dict) else None for c in condition.get("conditions") or []]
            if not parts or any(p is None for p in parts):
                return None
            return "(" + f" {kind.upper()} ".join(p for p in parts if p is not None) + ")"
        column = (condition.get("column") or {}).get("name")
        if not isinstance(column, str) or self._kind(column) not in _KEY_KINDS:
            return None
        present = self._not_null(column)
        if kind == "nullity":
            return f"(NOT {present})" if condition.get("is_null") else present
        if kind != "comparison":
            return None  # pass_through: a pandas expression
        operator, parameter = condition.get("operator"), condition.get("parameter")
        listed = operator in ("IN", "NOT_IN")
        values: list[Any] = list(parameter) if listed and isinstance(parameter, list | tuple | set) else [parameter]
        if self._kind(column) == "str":
            same_type = all(isinstance(v, str) for v in values)
        else:  # numbers: within 2**53, where an int64 read as float64 (nulls) is still the same number
            same_type = all(_is_number(v) and abs(v) < 2**53 for v in values)
        literals = [_sql_value(v) for v in values]
        if not same_type or any(v is None for v in literals) or operator not in _CONDITION_OPERATORS:
            return None
        c = _quote(column)
        if listed:
            if not literals:
                return "FALSE" if operator == "IN" else "TRUE"
            test = f"{c} {'IN' if operator == 'IN' else 'NOT IN'} ({', '.join(str(v) for v in literals)})"
        else:
            test = f"{c} {_CONDITION_OPERATORS[operator]} {literals[0]}"
        # A missing value: False for pandas' comparisons, True for its != and not in.
        return f"(NOT {present} OR {test})" if operator in ("!=", "NOT_IN") else f"({present} AND {test})"

    def can_answer(self, metric: MetricConfiguration) -> bool:
        from flows.audit import pushdown_aggregates  # column aggregates and distinct values (min, mode, sets...)

        if pushdown_aggregates.handles(metric):
            return pushdown_aggregates.can_answer(self, metric)
        name = metric.metric_name
        if name.startswith(_COMPOUND + "."):
            return self._compound_can_answer(metric)
        if name == "table.row_count":
            domain = _domain(metric)
            return (
                set(domain) <= set(_CONDITION_KEYS)
                and self._row_filter(domain) is not None
                and not metric.metric_value_kwargs
            )
        split = self._split(name)
        if split is None or self._check_for(metric) is None:
            return False
        suffix = split[1]
        return suffix == "unexpected_count" or self._can_sample(suffix, metric)

    def _can_sample(self, suffix: str, metric: MetricConfiguration) -> bool:
        """Whether a map metric's samples (values, row positions or keys, the index query) are answered for the
        metric's result format."""
        value_kwargs: dict[str, Any] = metric.metric_value_kwargs or {}
        result_format = value_kwargs.get("result_format") or {}
        if not isinstance(result_format, dict):
            return False
        if suffix == "unexpected_index_query":
            # pandas builds it for every result format but GX only reports it when asked for; then it is every
            # unexpected row's position.
            return result_format.get("return_unexpected_index_query") is not True or self.row_count <= _MAX_QUERY_ROWS
        return (
            suffix in ("unexpected_values", "unexpected_index_list")
            and result_format.get("result_format") in ("BASIC", "SUMMARY")
            and self._key_columns(result_format) is not None
            and not result_format.get("include_unexpected_rows")
            and isinstance(result_format.get("partial_unexpected_count"), int)
        )

    # ---------------------------------------------------------------- compound uniqueness (several columns)

    def _compound(self, metric: MetricConfiguration) -> tuple[list[str], str] | None:
        """``expect_compound_columns_to_be_unique``'s columns and the SQL of the rows GX's pandas metric looks at
        (its ``row_condition``, then ``ignore_row_if``'s ``dropna``); None if not reproduced here."""
        domain = _domain(metric)
        columns = domain.get("column_list")
        if not set(domain) <= {"column_list", "ignore_row_if", *_CONDITION_KEYS} or not isinstance(columns, list):
            return None
        if not columns or len(set(columns)) != len(columns) or any(self._kind(c) not in _KEY_KINDS for c in columns):
            return None
        row_filter = self._row_filter(domain)
        present = [self._not_null(c) for c in columns]
        ignore = domain.get("ignore_row_if", "never")
        if row_filter is None or ignore not in _IGNORE_ROW_IF:
            return None
        kept = {
            "never": "TRUE",
            "all_values_are_missing": " OR ".join(present),
            "any_value_is_missing": " AND ".join(present),
        }
        return columns, f"({row_filter}) AND ({kept[ignore]})"

    def _compound_groups(self, columns: list[str], domain: str) -> str:
        """The column tuples occurring more than once among the domain's rows, with their counts. pandas'
        ``duplicated`` takes missing values as equal (NaN and null alike), as GROUP BY does NULLs."""
        keys = ", ".join(self._group_value(c) + f" AS __wap_k{i}" for i, c in enumerate(columns))
        grouped = ", ".join(f"__wap_k{i}" for i in range(len(columns)))
        return (
            f"SELECT {grouped}, count(*) AS __wap_n FROM (SELECT {keys} FROM {self._relation()} WHERE {domain}) "
            f"GROUP BY {grouped} HAVING count(*) > 1"
        )

    def _group_value(self, column: str) -> str:
        c = _quote(column)
        return f"CASE WHEN isnan({c}) THEN NULL ELSE {c} END" if self._kind(column) == "float" else c

    def _compound_can_answer(self, metric: MetricConfiguration) -> bool:
        suffix = metric.metric_name[len(_COMPOUND) + 1 :]
        if self._compound(metric) is None:
            return False
        return suffix in ("unexpected_count", "filtered_row_count") or self._can_sample(suffix, metric)

    def _compound_rows(self, columns: list[str], domain: str, limit: int | None, keys: tuple[str, ...]) -> list[Any]:
        """The first ``limit`` rows holding a repeated tuple, in scan order: (position, *columns, *keys)."""
        cache_key = (json.dumps([_COMPOUND, columns, domain]), limit, keys)
        if cache_key not in self._sampled:
            if self.row_count == 0 or (limit is not None and limit <= 0):
                return []
            on = " AND ".join(
                f"{self._group_value(c)} IS NOT DISTINCT FROM g.__wap_k{i}" for i, c in enumerate(columns)
            )
            selected = ", ".join(f"r.{_quote(c)}" for c in (*columns, *keys))
            sql = (
                f"SELECT r.__wap_row, {selected} FROM (SELECT * FROM {self._positioned()} WHERE {domain}) AS r "
                f"JOIN ({self._compound_groups(columns, domain)}) AS g ON {on} ORDER BY r.__wap_row"
            )
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            self._sampled[cache_key] = [(int(r[0]), *r[1:]) for r in self._rows(sql, [])]
        return self._sampled[cache_key]

    def _compound_answer(self, metric: MetricConfiguration) -> Any:
        compound = self._compound(metric) if self._compound_can_answer(metric) else None
        if compound is None:
            raise PushdownError(f"cannot compute {metric.metric_name} for {metric.metric_domain_kwargs}")
        columns, domain = compound
        suffix = metric.metric_name[len(_COMPOUND) + 1 :]
        if suffix in ("unexpected_count", "filtered_row_count"):
            if self.row_count == 0:
                return 0
            if suffix == "filtered_row_count":
                sql = f"SELECT count(*) FROM {self._relation()} WHERE {domain}"
            else:
                sql = f"SELECT coalesce(sum(__wap_n), 0) FROM ({self._compound_groups(columns, domain)})"
            key = json.dumps([_COMPOUND, suffix, columns, domain])
            if key not in self._counts:
                self._counts[key] = int(self._rows(sql, [])[0][0])
            return self._counts[key]
        result_format = metric.metric_value_kwargs["result_format"]
        if suffix == "unexpected_index_query":
            if result_format.get("return_unexpected_index_query") is not True:
                return None
            return f"df.filter(items={[row[0] for row in self._compound_rows(columns, domain, None, ())]}, axis=0)"
        partial = result_format["partial_unexpected_count"]
        if suffix == "unexpected_values":
            from great_expectations.constants import MAX_RESULT_RECORDS

            # pandas' to_dict("records"): one dict per row, Python values as the full frame holds them.
            rows = self._compound_rows(columns, domain, min(partial, MAX_RESULT_RECORDS), ())
            return [{c: self._pandas_value(c, v) for c, v in zip(columns, row[1:], strict=True)} for row in rows]
        keys = self._key_columns(result_format)
        if not keys:
            return [row[0] for row in self._compound_rows(columns, domain, partial, ())]
        others = tuple(k for k in dict.fromkeys(keys) if k not in columns)
        named = []
        for row in self._compound_rows(columns, domain, partial, others):
            values = dict(zip((*columns, *others), row[1:], strict=True))
            record = {}
            for column in columns:  # GX's pandas order: each checked column, then every key column after it
                record[column] = self._cell(column, values[column])
                record.update({k: self._cell(k, values[k]) for k in keys})
            named.append(record)
        return named

    def _key_columns(self, result_format: dict[str, Any]) -> list[str] | None:
        """The result format's ``unexpected_index_column_names`` (the columns naming a failing row in GX's
        ``unexpected_index_list``), [] if none; None if their values are not reproduced here (a column the table
        lacks, where GX raises; a type not converted here; ``exclude_unexpected_values``' other shape)."""
        names = result_format.get("unexpected_index_column_names")
        if not names:
            return []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        if result_format.get("exclude_unexpected_values") or any(self._kind(n) not in _KEY_KINDS for n in names):
            return None
        return list(names)

    # ---------------------------------------------------------------- answers

    @staticmethod
    def _key(check: _Check) -> str:
        return json.dumps([check.column, check.domain, check.unexpected, check.params], default=repr)

    def prefetch(self, metrics: Iterable[MetricConfiguration]) -> None:
        """Every count the metrics need, and every column's null count if not known yet, in one aggregate pass."""
        from flows.audit import pushdown_aggregates

        metrics = list(metrics)
        pushdown_aggregates.prefetch(self, metrics)  # the aggregate metrics' scalars: one pass of their own
        checks: dict[str, _Check] = {}
        for metric in metrics:
            check = self._check_for(metric)
            if check is not None:
                checks.setdefault(self._key(check), check)
        todo = [(k, c) for k, c in checks.items() if k not in self._counts]
        need_nulls = self._null_counts is None
        if not todo and not need_nulls:
            return
        if self.row_count == 0:  # an empty table: every count is 0
            self._counts.update({k: 0 for k, _ in todo})
            self._null_counts = dict.fromkeys(self.schema.names, 0)
            return
        selects: list[str] = []
        params: list[Any] = []
        names = list(self.schema.names) if need_nulls else []
        for name in names:
            selects.append(f"count(*) - count({_quote(name)})")
        prechecked: set[str] = set()
        for key, check in todo:
            if check.repeated_values and self._precheck_distinct(check):
                # In the same pass: how many of the values are repeats. Zero (the usual case) means no row holds a
                # repeated value, exactly; only otherwise are the rows holding one counted, grouping the column.
                c = _quote(check.column)
                selects.append(
                    f"count({c}) FILTER (WHERE {check.domain}) - count(DISTINCT {c}) FILTER (WHERE {check.domain})"
                )
                prechecked.add(key)
            elif check.repeated_values:
                selects.append(f"({check.count_sql})")  # rows holding a repeated value: grouping that one column
            else:
                selects.append(f"count(*) FILTER (WHERE {check.domain} AND {check.unexpected})")
                params.extend(check.params)
        row = self._rows(f"SELECT {', '.join(selects)} FROM {self._relation()}", params)[0] if selects else ()
        values = [int(v) for v in row]
        if need_nulls:
            self._null_counts = dict(zip(names, values[: len(names)], strict=True))
        for (key, check), value in zip(todo, values[len(names) :], strict=True):
            self._counts[key] = self._query_count(check) if key in prechecked and value else value

    def _precheck_distinct(self, check: _Check) -> bool:
        """Whether a uniqueness check is first answered by a distinct count in the aggregate pass (see prefetch)."""
        return False

    def _count(self, check: _Check) -> int:
        key = self._key(check)
        if key not in self._counts:
            self._counts[key] = self._query_count(check)
        return self._counts[key]

    def _query_count(self, check: _Check) -> int:
        if self.row_count == 0:
            return 0
        if check.repeated_values:
            return int(self._rows(check.count_sql, [])[0][0])
        sql = f"SELECT count(*) FROM {self._relation()} WHERE {check.domain} AND {check.unexpected}"
        return int(self._rows(sql, list(check.params))[0][0])

    def _samples(self, check: _Check, limit: int | None, keys: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        """The first ``limit`` unexpected rows (every one if None), in scan order: (position, value, *key values)."""
        cache_key = (self._key(check), limit, keys)
        cached = self._sampled.get(cache_key)
        if cached is not None:
            return cached
        if self.row_count == 0 or (limit is not None and limit <= 0) or self._count(check) == 0:
            return []
        columns = ", ".join(_quote(c) for c in (check.column, *keys))
        sql = (
            f"SELECT __wap_row, {columns} FROM {self._positioned()} "
            f"WHERE {check.domain} AND {check.unexpected} ORDER BY __wap_row"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = [(int(r[0]), *r[1:]) for r in self._rows(sql, list(check.params))]
        self._sampled[cache_key] = rows
        return rows

    def _cell(self, column: str, value: Any) -> Any:
        """A value as ``DataFrame.at`` hands it out of the full frame (what GX puts in ``unexpected_index_list``):
        a numpy scalar in a numeric column, the Python object in a string one."""
        import numpy as np

        value = self._pandas_value(column, value)
        kind = self._kind(column)
        if kind == "bool" and self.null_counts()[column] == 0:
            return np.bool_(value)
        if kind not in ("int", "float"):
            return value  # objects (str, bool with nulls, date, Decimal) and Timestamps as they are
        return np.float64(value) if isinstance(value, float) else np.int64(value)

    def _pandas_value(self, column: str, value: Any) -> Any:
        """A value as the full frame holds it: int64 columns with nulls are float64 there, nulls are NaN."""
        if value is None:
            # pandas hands out a new NaN per null of a float column, and the one np.nan for a string column;
            # GX counts values by identity-then-equality, so this decides its partial_unexpected_counts.
            kind = self._kind(column)
            if kind in ("bool", "date", "decimal"):
                return None  # object columns hold None
            if kind in ("timestamp", "timestamptz"):
                import pandas as pd

                return pd.NaT
            return _SHARED_NAN if kind == "str" else float("nan")
        if self._kind(column) == "float" or (self._kind(column) == "int" and self.null_counts()[column] > 0):
            return float(value)
        if self._kind(column) == "timestamp":
            import pandas as pd

            return pd.Timestamp(value).as_unit(self.schema.field(column).type.unit)
        return value

    def answer(self, metric: MetricConfiguration) -> Any:
        from flows.audit import pushdown_aggregates

        if pushdown_aggregates.handles(metric):
            return pushdown_aggregates.answer(self, metric)
        if metric.metric_name.startswith(_COMPOUND + "."):
            return self._compound_answer(metric)
        if metric.metric_name == "table.row_count":
            row_filter = self._row_filter(_domain(metric))
            if row_filter == "TRUE" or self.row_count == 0:
                return self.row_count
            if row_filter is None:
                raise PushdownError(f"cannot compute {metric.metric_name} for {metric.metric_domain_kwargs}")
            if row_filter not in self._filtered_counts:  # the rows a row_condition keeps
                sql = f"SELECT count(*) FROM {self._relation()} WHERE {row_filter}"
                self._filtered_counts[row_filter] = int(self._rows(sql, [])[0][0])
            return self._filtered_counts[row_filter]
        check = self._check_for(metric)
        split = self._split(metric.metric_name)
        if check is None or split is None or not self.can_answer(metric):
            raise PushdownError(f"cannot compute {metric.metric_name} for {metric.metric_domain_kwargs}")
        suffix = split[1]
        if suffix == "unexpected_count":
            return self._count(check)
        result_format = metric.metric_value_kwargs["result_format"]
        if suffix == "unexpected_index_query":
            if result_format.get("return_unexpected_index_query") is not True:
                return None  # not reported (see can_answer)
            # GX's pandas query: every unexpected row's index label, written as a Python list.
            return f"df.filter(items={[row[0] for row in self._samples(check, None)]}, axis=0)"
        partial = result_format["partial_unexpected_count"]
        if suffix == "unexpected_values":
            # GX's cap on returned values, which its pandas sampling obeys (imported here: GX is loaded by now,
            # and this module must not load it at import time).
            from great_expectations.constants import MAX_RESULT_RECORDS

            rows = self._samples(check, min(partial, MAX_RESULT_RECORDS))
            return [self._pandas_value(check.column, row[1]) for row in rows]
        keys = self._key_columns(result_format)
        if not keys:  # unexpected_index_list: positions, or with key columns one dict per row
            return [row[0] for row in self._samples(check, partial)]
        # GX's pandas rows: the checked column first, then each key column (a key that is the checked column
        # keeps its first place).
        others = tuple(k for k in dict.fromkeys(keys) if k != check.column)
        named = []
        for _, value, *key_values in self._samples(check, partial, others):
            row = {check.column: self._cell(check.column, value)}
            row.update({k: self._cell(k, v) for k, v in zip(others, key_values, strict=True)})
            named.append(row)
        return named

    def null_counts(self) -> dict[str, int]:
        if self._null_counts is None:
            self.prefetch([])
        assert self._null_counts is not None
        return self._null_counts

    def frame(self) -> pd.DataFrame:
        """Zero rows, with the dtypes ``table_to_dataframe`` gives the full table (nulls turn int64 into float64)."""
        nulls = self.null_counts()
        empty = self.schema.empty_table().to_pandas()
        for name in self.schema.names:
            if nulls[name]:
                empty[name] = empty[name].astype(pa.array([None], self.schema.field(name).type).to_pandas().dtype)
        return empty


class ParquetTableMetrics(SqlRowMetrics):
    """GX metrics of one table version, answered with DuckDB over its Parquet data files.

    ``files`` must be in the order a scan concatenates them (the row positions GX reports are
    positions in that concatenation) and hold only live rows (the embedded lakehouse writes no deletes).
    """

    def __init__(self, files: list[str], schema: pa.Schema, *, distinct_in: dict[str, list[str]] | None = None) -> None:
        import pyarrow.parquet as pq

        super().__init__(schema)
        self.files = list(files)
        # Per column, some of the files whose non-null values are known to be distinct (main's files, which an
        # earlier audit proved unique): its uniqueness is then checked as a semi-join of the other files'
        # values against them, exact under that premise, instead of grouping the whole table.
        self.distinct_in = {
            column: known
            for column, known in (distinct_in or {}).items()
            if known and set(known) < set(self.files) and column in schema.names
        }
        self._offsets: list[int] = []
        rows = 0
        digest = hashlib.md5(usedforsecurity=False)
        nulls: dict[str, int] | None = dict.fromkeys(schema.names, 0)
        self._stored_names: dict[str, str] | None = None  # table column -> its name inside the files
        for path in self.files:
            meta = pq.read_metadata(path)
            stored = _stored_names(schema, meta.schema.to_arrow_schema())
            if stored is None or (self._stored_names is not None and stored != self._stored_names):
                raise PushdownError(f"{path}: its columns cannot be matched to the table's by field id")
            self._stored_names = stored
            self._offsets.append(rows)
            rows += meta.num_rows
            digest.update(f"{path}\0{meta.num_rows}\0".encode())
            nulls = _add_footer_null_counts(nulls, meta, stored)
        self.fingerprint = digest.hexdigest()  # identifies this table version (its files), like a data hash
        self.row_count = rows
        self._connection: Any = None  # opened on first query: the row count alone needs only the footers
        # Footers usually have the null counts; else the first aggregate pass counts them.
        self._null_counts = nulls

    def _repeated(self, column: str, domain: str) -> tuple[str, str]:
        known = self.distinct_in.get(column)
        if known is None:
            return super()._repeated(column, domain)
        c = _quote(column)
        # `known`'s values are distinct, so a value repeats iff it repeats among the other files or occurs in both;
        # only the other files' values are grouped, and `known` is probed against them (a semi-join).
        others = [f for f in self.files if f not in set(known)]
        added = f"SELECT {c}, count(*) AS __wap_n FROM {self._relation(others)} WHERE {domain} GROUP BY {c}"
        hits = f"SELECT {c} FROM {self._relation(known)} WHERE {domain} AND {c} IN (SELECT {c} FROM added)"
        common = f"WITH added AS MATERIALIZED ({added}), hits AS MATERIALIZED ({hits}) "
        repeated = f"{common}SELECT {c} FROM added WHERE __wap_n > 1 OR {c} IN (SELECT {c} FROM hits)"
        # Each hit is one row of `known`; the other files' rows of a repeated value are counted by their groups.
        count = (
            f"{common}SELECT (SELECT coalesce(sum(__wap_n), 0) FROM added"
            f" WHERE __wap_n > 1 OR {c} IN (SELECT {c} FROM hits)) + (SELECT count(*) FROM hits)"
        )
        return repeated, count

    def _precheck_distinct(self, check: _Check) -> bool:
        # DuckDB's count(DISTINCT) in the one pass costs less than grouping with counts (30M ids: 3.8 vs 5.3-6.0 s
        # CPU); a column checked as a semi-join against main's distinct files has a cheaper query of its own.
        return check.column not in self.distinct_in

    def _relation(self, files: list[str] | None = None) -> str:
        files = self.files if files is None else files
        if not files:
            return "(SELECT * FROM (VALUES (NULL)) AS t(x) WHERE FALSE)"  # never used: row count 0 short-circuits
        return f"(SELECT {self._projection()} FROM read_parquet([{', '.join(_literal(f) for f in files)}]))"

    def _projection(self) -> str:
        """The files' columns under the table's names."""
        assert self._stored_names is not None
        return ", ".join(f"{_quote(stored)} AS {_quote(name)}" for name, stored in self._stored_names.items())

    def _positioned(self) -> str:
        """The rows with their position in the scan's concatenation, as GX's pandas index numbers them."""
        parts = [
            f"SELECT {self._projection()}, file_row_number + {offset} AS __wap_row "
            f"FROM read_parquet({_literal(path)}, file_row_number=true)"
            for path, offset in zip(self.files, self._offsets, strict=True)
        ]
        return "(" + " UNION ALL ".join(parts) + ")"

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return list(self._con().execute(sql, params).fetchall())

    def _con(self) -> Any:
        if self._connection is None:
            from flows.lakehouse.sql import BoundedDuckDB

            self._connection = BoundedDuckDB()
        return self._connection.con

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class QueryTableMetrics(SqlRowMetrics):
    """GX metrics of one table version, answered by the lakehouse's own SQL engine: ``client.query`` on ``ref``.

    For a backend that does not hand out its Parquet files (Bauplan): the same SQL as ``ParquetTableMetrics``
    runs where the table lives (Bauplan's engine remotely, DuckDB over the files on the embedded lakehouse), so
    only one row per aggregate and the samples of failing checks cross the network, never the table. The
    relation is the table's qualified name as ``query`` resolves it (``"namespace"."table"``, as
    ``audit/baseline.py`` and ``gate/staging.py`` read it); ``query`` takes no bound parameters, so a value of a
    check is written into the SQL as a literal of the type DuckDB would bind it as (strings quoted, numbers by
    their exact ``repr``; never NaN or infinity, which are not answered). Construction runs one aggregate: the
    row count and every column's null count (there are no Parquet footers to read them from).

    Row positions (GX's ``unexpected_index_list``) are ``row_number() OVER () - 1``: positions in the order the
    engine scans the table, which is the order ``scan`` returns it in only where the engine keeps one (the
    embedded DuckDB numbers a non-partitioned ``row_number`` sequentially over its scan, in file order for a
    table of one layout; no SQL engine promises it). Uniqueness groups the whole column (the semi-join against
    main's proven-distinct files needs those files). ``schema`` is the table's Arrow schema as ``scan`` returns it:
    the zero-row frame GX validates takes its dtypes from it.
    """

    row_metrics = "query"
    fingerprint_marker = "table_ref_fingerprint"

    def __init__(self, client: LakehouseClient, table: str, ref: str, namespace: str | None, schema: pa.Schema) -> None:
        from flows.lakehouse.names import resolve_table_name

        super().__init__(schema)
        ns, name = resolve_table_name(table, namespace)
        self.client, self.ref, self.namespace = client, ref, ns
        self.table = f"{_quote(ns)}.{_quote(name)}"
        self.received_rows = 0  # rows every query returned, in all: what crossed from the engine
        counts = ["count(*)", *(f"count(*) - count({_quote(n)})" for n in schema.names)]
        row = self._rows(f"SELECT {', '.join(counts)} FROM {self.table}", [])[0]
        self.row_count = int(row[0])
        self._null_counts = dict(zip(schema.names, (int(v) for v in row[1:]), strict=True))
        # The table on the ref: a pinned ref (`branch@hash`, as the gate audits) names one commit's rows.
        identity = json.dumps([getattr(client, "backend", ""), ns, name, ref, self.row_count])
        self.fingerprint = hashlib.md5(identity.encode(), usedforsecurity=False).hexdigest()

    def _relation(self) -> str:
        return self.table

    def _positioned(self) -> str:
        return f"(SELECT *, row_number() OVER () - 1 AS __wap_row FROM {self.table})"

    def _bind(self, values: list[Any]) -> tuple[list[str], tuple[Any, ...]] | None:
        literals = [_sql_value(v) for v in values]
        if any(v is None for v in literals):
            return None
        return [v for v in literals if v is not None], ()

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if params:
            raise PushdownError("client.query takes no bound parameters")  # _bind inlines every value
        result = self.client.query(sql, ref=self.ref, namespace=self.namespace)
        self.received_rows += result.num_rows
        return list(zip(*(column.to_pylist() for column in result.columns), strict=True))


def _sql_value(value: Any) -> str | None:
    """``value`` as a SQL literal of the type DuckDB binds it as (BIGINT, DOUBLE, VARCHAR); None if there is none
    (NaN, infinity, an integer beyond 64 bits, a string holding NUL)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(int(value)) if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        # repr is the shortest text that reads back as this very double; DuckDB reads it so (an unquoted 0.1 would
        # be a DECIMAL).
        return f"CAST({_literal(repr(float(value)))} AS DOUBLE)" if math.isfinite(value) else None
    if isinstance(value, str):
        return None if "\x00" in value else _literal(value)
    return None


# Regex text both Python's re and RE2 read as the same literal character (outside a class).
_REGEX_PUNCTUATION = frozenset(" _,:;/@#%='\"!<>~&`")
_REGEX_ESCAPABLE = frozenset(".^$*+?()[]{}|\\-/")  # \x stands for x in both
_REGEX_MAX_REPEAT = 1000  # RE2 refuses larger counted repeats


def re2_pattern(regex: str) -> str | None:
    r"""``regex`` (Python ``re``, as GX's pandas ``str.contains`` searches it) as an RE2 pattern matching exactly
    the same strings (DuckDB's ``regexp_matches``), or None where this cannot be promised.

    Only a plain subset is translated: literal letters, digits and punctuation, escaped metacharacters, ``\n``
    and ``\t``, ``.``, classes of literals and ranges (negated too), groups (``(...)``, ``(?:...)``),
    alternation, the quantifiers ``* + ? {m} {m,} {m,n}`` (lazy too), ``^`` at the start and ``$`` at the end.
    Refused: ``\d \w \s \b`` (Unicode classes in Python, ASCII ones in RE2), flags, lookarounds, backreferences,
    and ``$`` where an alternation reaches it. Python's final ``$`` also matches before a trailing newline; RE2's
    only at the end, so it is written ``\n?$``.
    """
    import re
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Python's FutureWarnings of set syntax: refused below anyway
            re.compile(regex)
    except re.error:
        return None  # GX on pandas reports the error
    out: list[str] = []
    i, depth, top_level_alternation = 0, 0, False
    quantifiable = False  # whether the previous token is an atom a quantifier may follow
    while i < len(regex):
        ch = regex[i]
        if ch == "^":
            if i != 0:
                return None
            out.append(ch)
            quantifiable = False
        elif ch == "$":
            if i != len(regex) - 1 or depth or top_level_alternation:
                return None
            out.append("\\n?$")
            quantifiable = False
        elif ch == ".":
            out.append(ch)
            quantifiable = True
        elif ch == "\\":
            if i + 1 >= len(regex):
                return None
            nxt = regex[i + 1]
            if nxt in _REGEX_ESCAPABLE or nxt in "nt":
                out.append("\\" + nxt)
            else:
                return None
            i += 1
            quantifiable = True
        elif ch == "(":
            if regex.startswith("(?:", i):
                out.append("(?:")
                i += 2
            elif regex.startswith("(?", i):
                return None
            else:
                out.append("(")
            depth += 1
            quantifiable = False
        elif ch == ")":
            if depth == 0:
                return None
            depth -= 1
            out.append(ch)
            quantifiable = True
        elif ch == "|":
            top_level_alternation = top_level_alternation or depth == 0
            out.append(ch)
            quantifiable = False
        elif ch in "*+?{":
            if not quantifiable:
                return None
            if ch == "{":
                close = regex.find("}", i)
                counts = regex[i + 1 : close].split(",") if close > 0 else []
                if not 1 <= len(counts) <= 2 or not all(c.isdigit() for c in counts if c) or not counts[0]:
                    return None
                numbers = [int(c) for c in counts if c]
                if any(n > _REGEX_MAX_REPEAT for n in numbers) or (len(numbers) == 2 and numbers[0] > numbers[1]):
                    return None
                out.append(regex[i : close + 1])
                i = close
            else:
                out.append(ch)
            if regex.startswith("?", i + 1):  # lazy: the same strings match
                out.append("?")
                i += 1
            quantifiable = False
        elif ch == "[":
            class_end = _regex_class(regex, i)
            if class_end is None:
                return None
            out.append(regex[i : class_end + 1])
            i = class_end
            quantifiable = True
        elif ch.isalnum() or ch in _REGEX_PUNCTUATION or ord(ch) > 127:  # beyond ASCII: a literal code point
            out.append(ch)
            quantifiable = True
        else:
            return None
        i += 1
    return "".join(out) if depth == 0 else None


def _regex_class(regex: str, start: int) -> int | None:
    """Where the class opening at ``start`` closes, if it holds only literals and ranges both engines read alike."""
    i = start + 1
    if regex.startswith("^", i):
        i += 1
    items: list[str] = []
    while i < len(regex) and regex[i] != "]":
        ch = regex[i]
        if ch == "\\":
            if i + 1 >= len(regex) or regex[i + 1] not in "\\]-^[.":
                return None
            items.append(regex[i + 1])
            i += 2
            continue
        if not (ch.isalnum() or ch in " _,:;/@#%='\"!<>.-" or ord(ch) > 127):
            return None  # nested sets, set operations (&& ~~ ||), classes like \d
        items.append(ch)
        i += 1
    if i >= len(regex) or not items:
        return None
    body = regex[start + 1 : i]
    if "--" in body:
        return None  # a set difference in Python's future syntax
    return i


def _columns(configuration: Any) -> list[str]:
    """The columns a rule is about (none for a table's rules, whose column lists are its contract)."""
    kwargs = getattr(configuration, "kwargs", None) or {}
    if str(configuration.type).startswith("expect_table_"):
        return []
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    if isinstance(kwargs.get("column_list"), list):
        columns += [c for c in kwargs["column_list"] if isinstance(c, str)]
    return list(dict.fromkeys(columns))


def rule_label(configuration: Any) -> str:
    """A rule as the reports name it: its type, and its column(s) in parentheses."""
    columns = _columns(configuration)
    return f"{configuration.type} ({', '.join(columns)})" if columns else str(configuration.type)


def unanswered(
    metrics_source: SqlRowMetrics,
    configurations: Iterable[ExpectationConfiguration],
    result_format: Any,
    parameters: dict[str, Any] | None = None,
) -> tuple[list[str], list[MetricConfiguration]]:
    """Which rules the pushdown cannot answer exactly (each as ``rule_label`` names it), and the metrics it will
    answer for the others. The one decision of "can the pushdown answer this rule", for the audit (``plan``) and
    for ``wap suite check`` (``rules_sent_to_pandas``).

    The dependencies are GX's own (``Expectation.get_validation_dependencies`` on an engine holding the zero-row
    frame), for the expectations as GX will run them: with the suite ``parameters`` substituted, as its validator
    does.
    """
    engine = engine_class()()
    engine.load_batch_data("plan", metrics_source.frame())  # PandasExecutionEngine wraps a DataFrame itself
    missing: list[str] = []
    needed: list[MetricConfiguration] = []
    # A copy, as GX's validator takes one: GX fills in defaults in place, and the checkpoint must stay as saved.
    runtime = {"result_format": copy.deepcopy(getattr(result_format, "value", result_format))}
    for configuration in configurations:
        try:
            if parameters:
                configuration = copy.deepcopy(configuration)
                configuration.process_suite_parameters(parameters, True, None)
            expectation = configuration.to_domain_obj()
            dependencies = expectation.get_validation_dependencies(
                execution_engine=engine, runtime_configuration=copy.deepcopy(runtime)
            )
        except Exception:  # e.g. a column the frame does not have: GX reports it, on the pandas path
            missing.append(rule_label(configuration))
            continue
        metrics = [m for m in dependencies.get_metric_configurations() if m.metric_name not in SCHEMA_METRICS]
        if all(metrics_source.can_answer(m) for m in metrics):
            needed += metrics
        else:
            missing.append(rule_label(configuration))
    return list(dict.fromkeys(missing)), needed


def plan(
    metrics_source: SqlRowMetrics,
    configurations: Iterable[ExpectationConfiguration],
    result_format: Any,
    parameters: dict[str, Any] | None = None,
) -> list[str]:
    """The rules the suite has that the pushdown cannot compute exactly ([] = the whole audit can run on it).

    When that is nothing, it also computes every answer GX will ask for, before GX runs (``unanswered`` decides).
    """
    missing, needed = unanswered(metrics_source, configurations, result_format, parameters)
    if not missing:
        # Everything GX will ask for, computed now: counts in one pass, then samples of failing checks.
        metrics_source.prefetch(needed)
        for metric in needed:
            metrics_source.answer(metric)
    return missing


class _SchemaOnly(SqlRowMetrics):
    """A table known by its schema alone (no rows, no nulls): what ``wap suite check`` asks ``unanswered`` about."""

    def __init__(self, schema: pa.Schema) -> None:
        super().__init__(schema)
        self._null_counts = dict.fromkeys(schema.names, 0)

    def _relation(self) -> str:
        return "t"  # never run: only the decision is wanted


def rules_sent_to_pandas(
    configurations: Iterable[ExpectationConfiguration], schema: pa.Schema | None, result_format: Any
) -> list[str]:
    """The rules of a suite that would send its audit to the pandas path, decided as the audit decides
    (``unanswered``), for a table of ``schema``. Without a schema, a rule is named only if the pushdown could not
    answer it whatever the type of its columns (int64, float64 or string). Rules taking suite parameters
    (``$PARAMETER``) are decided at audit time, when their values are known, and are not named here.
    """
    rules = [c for c in configurations if "$PARAMETER" not in json.dumps(c.kwargs, default=str)]
    if schema is not None:
        return unanswered(_SchemaOnly(schema), rules, result_format)[0]
    kinds = (pa.int64(), pa.float64(), pa.string())
    named: list[str] = []
    for rule in rules:
        columns = _columns(rule)
        schemas = [pa.schema([(c, kind) for c in columns]) for kind in kinds]
        if all(unanswered(_SchemaOnly(s), [rule], result_format)[0] for s in schemas):
            named.append(rule_label(rule))
    return list(dict.fromkeys(named))


@contextlib.contextmanager
def answering(metrics_source: MetricsSource) -> Iterator[None]:
    """Within this block, pandas batches' row-dependent metrics come from ``metrics_source``."""
    token = _ACTIVE.set(metrics_source)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@functools.cache
def engine_class() -> type:
    """``PushdownPandasExecutionEngine``, built on first use: it subclasses GX's engine, and importing GX is slow."""
    from great_expectations.execution_engine import PandasExecutionEngine

    class PushdownPandasExecutionEngine(PandasExecutionEngine):
        """GX's pandas engine; inside ``answering(...)`` the row-dependent metrics come from its metrics source.

        Outside that block it is exactly ``PandasExecutionEngine``. GX finds metric implementations by
        walking the engine's class hierarchy, so every pandas metric still applies.
        """

        def resolve_metrics(self, metrics_to_resolve, metrics=None, runtime_configuration=None):
            source = _ACTIVE.get()
            if source is None:
                return super().resolve_metrics(metrics_to_resolve, metrics, runtime_configuration)
            answered: dict[Any, Any] = {}
            rest = []
            for metric in metrics_to_resolve:
                if source.can_answer(metric):
                    try:
                        answered[metric.id] = source.answer(metric)
                    except Exception as exc:
                        source.failures.append(f"{metric.metric_name}: {exc}")
                        raise
                else:
                    rest.append(metric)  # schema metrics and intermediates (conditions over zero rows)
            if rest:
                answered.update(super().resolve_metrics(rest, metrics, runtime_configuration))
            return answered

        def get_batch_data_and_markers(self, batch_spec):
            batch_data, markers = super().get_batch_data_and_markers(batch_spec)
            source = _ACTIVE.get()
            if source is not None:
                # The zero-row frame's hash would identify nothing; the source identifies the table version.
                markers.pop("pandas_data_fingerprint", None)
                markers[getattr(source, "fingerprint_marker", "parquet_files_fingerprint")] = source.fingerprint
            return batch_data, markers

    return PushdownPandasExecutionEngine


def install() -> None:
    """Make GX's pandas data sources use ``PushdownPandasExecutionEngine`` (a no-op outside ``answering``).

    ``execution_engine_override`` is GX's hook for injecting an engine. Call before any pandas data
    source builds its engine (``audit.get_context`` does).
    """
    from great_expectations.datasource.fluent import PandasDatasource

    # GX declares it `ClassVar[Optional[Type[_ExecutionEngineT]]]`, a generic ClassVar mypy cannot bind.
    PandasDatasource.execution_engine_override = engine_class()  # type: ignore[misc]
    _install_query_metric_providers()


@functools.cache
def _install_query_metric_providers() -> None:
    """Give GX's two ``UnexpectedRowsExpectation`` metrics a provider on its pandas engine, so GX plans them on a
    pandas batch; a group's cross-table rules answer them inside ``answering(CrossTableMetrics(...))`` before that
    provider is reached (``audit/cross_table.py``). Anywhere else the provider says where such a rule belongs."""
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics.metric_provider import metric_value
    from great_expectations.expectations.metrics.query_metrics.query_row_count import unexpected_rows_query_row_count
    from great_expectations.expectations.metrics.query_metrics.query_table import unexpected_rows_query_table

    def outside_group(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("unexpected_rows_expectation runs only as a group's cross-table rule (wap run --group)")

    # Defining a subclass registers its providers (GX's metric metaclass); the SQL ones stay GX's.
    for gx_metric in (
        unexpected_rows_query_row_count.UnexpectedRowsQueryRowCount,
        unexpected_rows_query_table.UnexpectedRowsQueryTable,
    ):
        type(gx_metric.__name__, (gx_metric,), {"_pandas": metric_value(engine=PandasExecutionEngine)(outside_group)})
