"""Facts about the published table, passed to the audit as GX suite parameters (drift rules against `main`).

Before the audit the gate measures the table as `main` publishes it, in one SQL aggregate through the
lakehouse's own `query` (DuckDB over the files on the embedded lakehouse), and every suite of the
checkpoint may use the figures as ``{"$PARAMETER": "main_row_count"}`` or an expression GX evaluates,
``{"$PARAMETER": "main_fare_max * 10"}``. The names (``<key>`` is the column name lower-cased, every run of
other characters than a-z and 0-9 turned into ``_``):

  main_has_table              1 if main has the table, else 0
  main_row_count              its rows
  main_column_count           its columns
  main_columns                the list of its column names (e.g. for expect_table_columns_to_match_set)
  main_<key>_null_count       per column: null values (NaN counts as null, as in pandas)
  main_<key>_null_fraction    per column: null_count / row_count (0.0 for an empty table)
  main_<key>_distinct_count   per column: distinct non-null values (not for nested columns)
  main_<key>_min, _max        per numeric column: the smallest and largest non-null value (if it has one)

The first run, when `main` has no such table yet: there is nothing published to compare with, so the facts
describe the table this run would publish (``main_has_table`` is 0). A drift rule then compares the new
table with itself and the suite's other rules decide. The same holds for a column `main` does not have yet
(added by ``schema: evolve``); a column without any value there gets 0 for its min and max, which bound
nothing since there is no value to judge. A rule using the min or max of a column `main` has no value in
cannot be evaluated: the audit is refused (one line naming the parameter). Two columns whose keys collide
(``Fare`` and ``fare``) get no per-column parameters; the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from flows.lakehouse.protocol import LakehouseClient

PARAMETER_PREFIX = "main_"
_PARAMETER_NAME = re.compile(r"\bmain_[0-9a-z_]+\b")


@dataclass(frozen=True)
class Baseline:
    """The suite parameters of one audit and where their values come from."""

    parameters: dict[str, Any]
    measured: str  # the ref measured, e.g. "main@3f2a…", or the audited ref on a first run
    first_run: bool  # main had no table: the facts are the new table's own
    unkeyed_columns: list[str] = field(default_factory=list)  # columns whose parameter keys collide

    used: list[str] = field(default_factory=list)  # the parameters the suites use, first appearance first

    def values_used(self) -> dict[str, Any]:
        """The parameters the suites use and their values (a name without a value is left out: GX says so)."""
        return {name: self.parameters[name] for name in self.used if name in self.parameters}


def column_key(column: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_")


def referenced_parameters(configurations: list[Any]) -> list[str]:
    """Every `main_*` name in the configurations' ``$PARAMETER`` expressions, first appearance first."""
    names: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            expression = value.get("$PARAMETER")
            if isinstance(expression, str):
                names.update(dict.fromkeys(_PARAMETER_NAME.findall(expression)))
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for configuration in configurations:
        walk(dict(configuration.kwargs))
    return list(names)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _relation(table: str, namespace: str | None) -> tuple[str, str]:
    from flows.lakehouse.names import resolve_table_name

    ns, name = resolve_table_name(table, namespace)
    return ns, f"{_quote(ns)}.{_quote(name)}"


def _schema(client: LakehouseClient, table: str, ref: str, namespace: str | None) -> pa.Schema:
    ns, relation = _relation(table, namespace)
    return client.query(f"SELECT * FROM {relation} LIMIT 0", ref=ref, namespace=ns).schema


def measure_table(
    client: LakehouseClient,
    table: str,
    *,
    ref: str,
    namespace: str | None,
    first_run: bool,
    columns: list[str] | None = None,
    wanted: set[str] | None = None,
) -> Baseline:
    """The facts of ``table`` on ``ref`` (a pinned ref: one commit), as suite parameters; per-column facts
    only for ``columns`` if given, and only the ``wanted`` ones if given (a distinct count over a large table
    costs a pass of its own, so only what the suites use is measured)."""
    ns, relation = _relation(table, namespace)
    schema = _schema(client, table, ref, namespace)

    def run(sql: str) -> pa.Table:
        return client.query(sql, ref=ref, namespace=ns)

    return _measure(schema, run, relation, ref, first_run, columns, wanted)


def measure_frame(data: Any, *, measured: str, wanted: set[str] | None = None) -> Baseline:
    """The facts of a dataframe or Arrow table that stands for a first run's table (``first_run`` is True)."""
    from flows.lakehouse.sql import BoundedDuckDB

    arrow = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    with BoundedDuckDB() as con:
        con.register("__wap_measured", arrow)

        def run(sql: str) -> pa.Table:
            relation = con.sql(sql)
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()

        return _measure(arrow.schema, run, "__wap_measured", measured, True, None, wanted)


def _measure(
    schema: pa.Schema,
    run: Callable[[str], pa.Table],
    relation: str,
    measured: str,
    first_run: bool,
    columns: list[str] | None,
    wanted: set[str] | None,
) -> Baseline:
    keys: dict[str, list[str]] = {}
    for column in schema.names:
        keys.setdefault(column_key(column), []).append(column)
    keyed = {names[0]: key for key, names in keys.items() if len(names) == 1 and key}
    selects = ["count(*)"]
    plan: list[tuple[str, str]] = []  # (parameter, aggregate) in select order
    for column in schema.names:
        if column not in keyed or (columns is not None and column not in columns):
            continue
        key, c, kind = keyed[column], _quote(column), schema.field(column).type
        floating = pa.types.is_floating(kind)
        not_nan = f" FILTER (WHERE NOT isnan({c}))" if floating else ""
        nulls = f"count(*) - count({c})" + (f" + count(*) FILTER (WHERE isnan({c}))" if floating else "")
        candidates = [(f"main_{key}_null_count", nulls)]
        if not pa.types.is_nested(kind):
            candidates.append((f"main_{key}_distinct_count", f"count(DISTINCT {c}){not_nan}"))
        if pa.types.is_integer(kind) or floating:
            candidates.append((f"main_{key}_min", f"min({c}){not_nan}"))
            candidates.append((f"main_{key}_max", f"max({c}){not_nan}"))
        plan += [(p, a) for p, a in candidates if wanted is None or p in wanted or _fraction(p) in wanted]
    selects += [aggregate for _, aggregate in plan]
    values = list(run(f"SELECT {', '.join(selects)} FROM {relation}").to_pylist()[0].values())
    rows = int(values[0])
    parameters: dict[str, Any] = {
        "main_has_table": 0 if first_run else 1,
        "main_row_count": rows,
        "main_column_count": len(schema.names),
        "main_columns": list(schema.names),
    }
    for (parameter, _), value in zip(plan, values[1:], strict=True):
        if value is None:
            continue  # min/max of a column without a value: nothing to compare with
        parameters[parameter] = int(value) if parameter.endswith("_count") else value
        if parameter.endswith("_null_count"):
            parameters[_fraction(parameter)] = (int(value) / rows) if rows else 0.0
    if first_run:
        # A first run's table is judged against itself: where it has no numeric value in a column (all null, or
        # text), a rule bounding that column by its own min/max has no number to judge either way, and GX needs
        # one to evaluate it; any number will do. On main such a parameter stays absent: the rule is refused.
        for key in keyed.values():
            for parameter in (f"main_{key}_min", f"main_{key}_max"):
                if (wanted is None or parameter in wanted) and parameter not in parameters:
                    parameters[parameter] = 0
    unkeyed = sorted(c for names in keys.values() if len(names) > 1 for c in names)
    return Baseline(parameters, measured, first_run, unkeyed)


def _fraction(null_count_parameter: str) -> str:
    return null_count_parameter.removesuffix("_null_count") + "_null_fraction"


def published_baseline(
    client: LakehouseClient,
    table: str,
    *,
    published: str,
    audited: str,
    namespace: str | None,
    wanted: list[str] | None = None,
    first_run: bool = False,
) -> Baseline:
    """The facts of the table on ``published`` (main as the run found it); on a first run (``published`` has no
    such table, or ``first_run``), of ``audited``.

    Columns ``audited`` has and ``published`` lacks (added by schema evolution) take their facts from
    ``audited`` too. ``wanted``: the parameters the suites use; only these per-column facts are measured (the
    table's always are)."""
    needed = None if wanted is None else set(wanted)
    if first_run or not client.has_table(table, published, namespace=namespace):
        first = measure_table(client, table, ref=audited, namespace=namespace, first_run=True, wanted=needed)
        return replace(first, used=list(wanted or []))
    baseline = measure_table(client, table, ref=published, namespace=namespace, first_run=False, wanted=needed)
    published_columns = baseline.parameters["main_columns"]
    new_columns = [c for c in _schema(client, table, audited, namespace).names if c not in published_columns]
    if new_columns:
        new = measure_table(
            client, table, ref=audited, namespace=namespace, first_run=False, columns=new_columns, wanted=needed
        )
        # `new` holds per-column facts of the new columns only, besides the table's facts.
        added = {k: v for k, v in new.parameters.items() if k not in _TABLE_FACTS and k not in baseline.parameters}
        baseline.parameters.update(added)
    return replace(baseline, used=list(wanted or []))


_TABLE_FACTS = frozenset({"main_has_table", "main_row_count", "main_column_count", "main_columns"})
