"""An append's batch on a backend that cannot list a table's data files (Bauplan): staged on a branch of its own.

The embedded lakehouse tells the batch from the table by the data files the run's commit added. Bauplan's SDK
has no such call, so the write task also imports the source into the same table on a staging branch
(``<branch>_batch``, made from the same main commit, the table emptied first with ``create_table(replace=True)``):
there the table holds exactly the batch, and the batch suite reads it. The gate branch gets ``import_data``
alone, Bauplan's own recipe for safe ingestion, and it is that branch's commit the table suite audits and
publish merges; the staging branch is never merged and is deleted after the audit (by the rollback hook on
failure; ``wap gc`` knows its name). A group's appended members share their gate branch's one staging branch:
each member's table there holds its own batch, at the staged commit of that member, and the branch is deleted
after the last member's audit.

The source is read twice, so the two imports are checked to hold the same rows before anything is audited:
the table on the gate branch must be main's table plus the staged batch, by its row count and per column by
the non-null count, the minimum and maximum, the sum of an integer column, of a float column (up to rounding)
and of a string column's lengths (``check_staged_batch``: one standard SQL aggregate per ref, run by the
lakehouse's engine, so only one row per ref crosses the network). A source changed between the imports is
refused (exit 3).
"""

from __future__ import annotations

import math
from typing import Any

from flows.datasets import Dataset
from flows.gate.guards import delete_quietly
from flows.gate.naming import STAGING_SUFFIX
from flows.lakehouse import MAIN, ConcurrentUpdateError, LakehouseClient, ReadsTableFiles
from flows.lakehouse.names import resolve_table_name

_INTEGERS = ("int", "long")
_FLOATS = ("float", "double")
_ORDERED = ("int", "long", "float", "double", "date", "timestamp", "timestamptz", "string")


def staging_branch(branch: str) -> str:
    return f"{branch}{STAGING_SUFFIX}"


def stages_batch(client: LakehouseClient, dataset: Dataset) -> bool:
    """Whether a run of ``dataset`` on this backend stages its batch (and so has a staging branch to clean up)."""
    return dataset.mode == "append" and not isinstance(client, ReadsTableFiles)


def isolate_batch(
    client: LakehouseClient, dataset: Dataset, source: str, branch: str, *, base: str, commit: str
) -> str | None:
    """For an append on a backend without data-file access: the batch staged and checked against the rows appended
    at ``commit`` (``stage_batch``, ``check_staged_batch``); its pinned ref. None where the audit needs no staging."""
    if not stages_batch(client, dataset):
        return None
    staged = stage_batch(client, dataset, source, branch, base)
    check_staged_batch(client, dataset, published=f"{MAIN}@{base}", written=f"{branch}@{commit}", staged=staged)
    return staged


def stage_batch(client: LakehouseClient, dataset: Dataset, source: str, branch: str, base: str) -> str:
    """Import the source alone into the dataset's table on the staging branch of ``branch`` (made from main at
    ``base``, or already made by an earlier member of a group); return the staged commit as a pinned ref."""
    staging = staging_branch(branch)
    # Only this run names it (it follows the gate branch); a table there is emptied before its batch goes in.
    client.create_branch(staging, from_ref=f"{MAIN}@{base}", if_not_exists=True)
    client.create_table(dataset.table, source, branch=staging, namespace=dataset.namespace, replace=True)
    client.import_data(dataset.table, source, branch=staging, namespace=dataset.namespace)
    return f"{staging}@{client.get_branch(staging).hash}"


def delete_staging_branch(client: LakehouseClient, branch: str) -> bool:
    """Delete the staging branch of ``branch`` if there is one; return whether this call deleted it."""
    return delete_quietly(client, staging_branch(branch))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _figures(client: LakehouseClient, dataset: Dataset, ref: str, fields: list[Any]) -> dict[str, Any]:
    """Row count and per-column aggregates of the table on ``ref`` (zeros and nulls if it has no such table)."""
    ns, name = resolve_table_name(dataset.table, dataset.namespace)
    selects = ["count(*) AS rows"]
    kinds: dict[str, str] = {"rows": "sum"}
    for i, field in enumerate(fields):
        column, kind = _quote(field.name), field.type.split("(")[0]
        selects.append(f"count({column}) AS n{i}")
        kinds[f"n{i}"] = "sum"
        if kind in _FLOATS:  # NaN compares unequal to itself: bounds over the numbers, NaNs counted apart
            number = f"FILTER (WHERE NOT isnan({column}))"
            selects += [f"min({column}) {number} AS lo{i}", f"max({column}) {number} AS hi{i}"]
            selects.append(f"count(*) FILTER (WHERE isnan({column})) AS z{i}")
            kinds |= {f"lo{i}": "min", f"hi{i}": "max", f"z{i}": "sum"}
        elif kind in _ORDERED:
            selects += [f"min({column}) AS lo{i}", f"max({column}) AS hi{i}"]
            kinds |= {f"lo{i}": "min", f"hi{i}": "max"}
        if kind in _INTEGERS:
            selects.append(f"sum({column}) AS s{i}")
            kinds[f"s{i}"] = "sum"
        elif kind in _FLOATS:
            # Summed in another order on each ref: equal up to rounding (NaN excluded: it equals nothing).
            selects.append(f"sum(CASE WHEN isnan({column}) THEN 0 ELSE {column} END) AS f{i}")
            kinds[f"f{i}"] = "fsum"
        elif kind == "string":
            selects.append(f"sum(length({column})) AS l{i}")
            kinds[f"l{i}"] = "sum"
    if not client.has_table(dataset.table, ref, namespace=ns):
        return {key: (0 if kind in ("sum", "fsum") else None) for key, kind in kinds.items()} | {"__kinds": kinds}
    sql = f"SELECT {', '.join(selects)} FROM {_quote(ns)}.{_quote(name)}"
    row = client.query(sql, ref=ref, namespace=ns).to_pylist()[0]
    return {key: row[key] for key in kinds} | {"__kinds": kinds}


def _matches(before: Any, batch: Any, after: Any, kind: str) -> bool:
    if kind == "fsum":
        return math.isclose((before or 0.0) + (batch or 0.0), after or 0.0, rel_tol=1e-9, abs_tol=1e-9)
    return _combined(before, batch, kind) == after


def _combined(a: Any, b: Any, kind: str) -> Any:
    if kind == "sum":
        return (a or 0) + (b or 0)
    present = [v for v in (a, b) if v is not None]
    if not present:
        return None
    return min(present) if kind == "min" else max(present)


def check_staged_batch(client: LakehouseClient, dataset: Dataset, *, published: str, written: str, staged: str) -> None:
    """Raise ConcurrentUpdateError unless the table on ``written`` is the table on ``published`` plus the one on
    ``staged`` (all pinned refs), by the figures of the module docstring."""
    fields = client.get_table(dataset.table, written, namespace=dataset.namespace).fields
    before = _figures(client, dataset, published, fields)
    batch = _figures(client, dataset, staged, fields)
    after = _figures(client, dataset, written, fields)
    kinds = after.pop("__kinds")
    names = {f"{p}{i}": f.name for i, f in enumerate(fields) for p in ("n", "lo", "hi", "s", "f", "z", "l")}
    differ = [key for key, kind in kinds.items() if not _matches(before.get(key), batch.get(key), after.get(key), kind)]
    if differ:
        columns = sorted({names.get(key, "row count") for key in differ})
        raise ConcurrentUpdateError(
            f"the source of {dataset.fqn} changed while it was imported (the staged batch and the rows appended on"
            f" the branch differ in {', '.join(columns)}): nothing was audited or published; run again"
        )
