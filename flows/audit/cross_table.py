"""Cross-table rules: a group's GX suite whose expectations look across its tables, run on the audited commit.

A group's checkpoint (``gx/checkpoints/<group>.json``) validates one suite of GX's own
``UnexpectedRowsExpectation``: each holds a SQL query that returns the rows breaking the rule (an order item
whose order does not exist; a row only when items are fewer than orders), and passes when it returns none.
In a query, ``{batch}`` is GX's name for the data under test; here that is the group as it would be published,
a namespace of tables: ``{batch}.orders`` is the orders table on the audited commit. Tables may also be named
``namespace.table``; every table a rule names must be a member's.

GX runs these queries only through its SQL data sources, and its SQL data source over DuckDB fails in GX 1.24
(GX#10738). So the rules take the pushdown route: GX validates an empty frame, and the two metrics the
expectation asks for (``unexpected_rows_query.row_count`` and ``.table``) are answered by the lakehouse's own
SQL engine on the audited commit (``client.query``: DuckDB over the Parquet files here, Bauplan's engine on
Bauplan), so only the count and a sample of rows cross over. The results are GX's, with data docs.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.audit.checkpoint import (
    _GX_LOCK,
    AuditConfigError,
    AuditResult,
    _Input,
    _load_checkpoint,
    _run_stored,
    get_context,
)
from flows.audit.gx_project import GROUP, SQL_RULE

if TYPE_CHECKING:
    from flows.datasets import Dataset
    from flows.lakehouse.protocol import LakehouseClient

ROW_COUNT_METRIC, ROWS_METRIC = "unexpected_rows_query.row_count", "unexpected_rows_query.table"
SAMPLE_ROWS = 200  # GX's MAX_RESULT_RECORDS: as many offending rows as its SQL engines return


class CrossTableRuleError(AuditConfigError):
    """A cross-table rule that cannot run: not a SQL rule, a placeholder it cannot fill, a table outside the group."""


def group_namespace(members: list[Dataset]) -> str | None:
    """What `{batch}` names in the cross-table rules: the members' namespace, when they share one."""
    namespaces = {m.namespace for m in members}
    return namespaces.pop() if len(namespaces) == 1 else None


def expand_query(query: str, namespace: str | None) -> str:
    """The rule's SQL with ``{batch}`` filled in (the group's namespace), as GX's ``_format_query`` would."""
    fields = {name for _, name, _, _ in string.Formatter().parse(query) if name is not None}
    unknown = sorted(fields - {"batch"})
    if unknown:
        raise CrossTableRuleError(
            f"placeholder {{{unknown[0]}}} is not one a cross-table rule accepts (only {{batch}}; write a literal"
            " brace as {{ or }})"
        )
    if "batch" in fields and namespace is None:
        raise CrossTableRuleError(
            "{batch} names the group's namespace, but its members live in several: name each table as namespace.table"
        )
    return query.format(batch=namespace)


def referenced_tables(sql: str, default_namespace: str) -> set[str]:
    """Every table the query reads, as ``namespace.table`` (bare names in ``default_namespace``), from DuckDB's
    own parse of it (its common table expressions are not tables)."""
    import duckdb

    con = duckdb.connect()
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        parsed = json.loads(row[0]) if row else {"error": True}
    finally:
        con.close()
    if parsed.get("error"):
        raise CrossTableRuleError(f"cannot parse its SQL: {parsed.get('error_message', 'syntax error')}")
    tables: set[tuple[str, str]] = set()
    ctes: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                tables.add((node.get("schema_name") or "", node.get("table_name") or ""))
            for entry in (node.get("cte_map") or {}).get("map") or []:
                ctes.add(str(entry.get("key", "")).lower())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(parsed)
    return {f"{schema or default_namespace}.{name}" for schema, name in tables if schema or name.lower() not in ctes}


def check_cross_table_rules(
    configurations: Iterable[Any], members: dict[str, str], namespace: str | None, default_namespace: str
) -> list[str]:
    """What keeps each rule of a group's suite from running on its members (``members``: table -> dataset)."""
    problems = []
    for number, config in enumerate(configurations, 1):
        where = f"rule {number}"
        if config.type != SQL_RULE:
            problems.append(f"{where} is {config.type}; a group's cross-table rules are {SQL_RULE}s")
            continue
        query = config.kwargs.get("unexpected_rows_query")
        if not isinstance(query, str):
            problems.append(f"{where} has no unexpected_rows_query")
            continue
        try:
            outside = sorted(referenced_tables(expand_query(query, namespace), default_namespace) - set(members))
        except CrossTableRuleError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if outside:
            problems.append(
                f"{where} names {', '.join(outside)}, outside the group (its tables: {', '.join(sorted(members))})"
            )
    return problems


@dataclass
class CrossTableMetrics:
    """Answers the two metrics of ``UnexpectedRowsExpectation`` with the lakehouse's SQL on one pinned ref."""

    client: LakehouseClient
    ref: str
    namespace: str | None  # the group's namespace: {batch}, and where bare table names resolve
    default_namespace: str
    failures: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:  # the batch marker GX records: the commit the rules read
        return self.ref

    def can_answer(self, metric: Any) -> bool:
        return metric.metric_name in (ROW_COUNT_METRIC, ROWS_METRIC)

    def answer(self, metric: Any) -> Any:
        sql = expand_query(metric.metric_value_kwargs["unexpected_rows_query"], self.namespace)
        if metric.metric_name == ROW_COUNT_METRIC:
            counted = self.client.query(f"SELECT count(*) AS n FROM ({sql}) AS unexpected", **self._where())
            return int(counted.column(0)[0].as_py())
        rows = self.client.query(f"SELECT * FROM ({sql}) AS unexpected LIMIT {SAMPLE_ROWS}", **self._where())
        return rows.to_pylist()

    def _where(self) -> dict[str, Any]:
        return {"ref": self.ref, "namespace": self.namespace or self.default_namespace}


def check_group_checkpoints(
    member_checkpoints: list[str],
    checkpoint: str | None,
    *,
    members: dict[str, str],
    namespace: str | None,
    default_namespace: str,
    gx_dir: Path | str | None = None,
) -> None:
    """Before a group run writes anything: every member's checkpoint loads, and the group's cross-table rules
    (``checkpoint``, None: none) run on member tables only. Raises AuditConfigError naming the first problem."""
    with _GX_LOCK:
        context = get_context(gx_dir)
        for name in member_checkpoints:
            _load_checkpoint(context, name)
        if checkpoint is not None:
            _checked_rules(_load_checkpoint(context, checkpoint, group=True), members, namespace, default_namespace)


def _checked_rules(stored: Any, members: dict[str, str], namespace: str | None, default_namespace: str) -> None:
    suite = stored.validation_definitions[0].suite
    problems = check_cross_table_rules(suite.expectation_configurations, members, namespace, default_namespace)
    if problems:
        raise CrossTableRuleError(f"suite {suite.name!r} (checkpoint {stored.name!r}): {problems[0]}")


def audit_cross_table_rules(
    client: LakehouseClient,
    checkpoint: str,
    *,
    ref: str,
    members: dict[str, str],
    namespace: str | None,
    default_namespace: str,
    rows: int = 0,
    gx_dir: Path | str | None = None,
    run_name: str | None = None,
) -> AuditResult:
    """Run the group's checkpoint ``checkpoint`` on ``ref`` (a pinned ``branch@hash``): its rules' queries by the
    lakehouse's SQL engine, their verdicts by GX. ``members`` maps each member table to its dataset."""
    import pandas as pd

    with _GX_LOCK:
        context = get_context(gx_dir)
        stored = _load_checkpoint(context, checkpoint, group=True)
        _checked_rules(stored, members, namespace, default_namespace)  # edited since the run began, perhaps
        metrics = CrossTableMetrics(client, ref, namespace, default_namespace)
        inputs = {GROUP: _Input(pd.DataFrame(), rows, metrics)}
        return _run_stored(context, stored, inputs, {}, None, run_name)
