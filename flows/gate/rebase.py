"""Concurrent appends: when main moved under an append, its batch is put on top of the new main and re-audited.

Two appends to one table conflict at the merge (both changed the table). When both only appended since the
commit the run branched from, nothing is lost by ordering them: the run's branch is made again from main's new
head and the batch's rows (read back from the audited commit, so exactly the rows audited) are appended to it in
one commit. The flow then audits that state (the table suite sees the table as it would now be published, with
the new main as its baseline) and publishes it if it passes. Anything else (a replace, a schema change, another
table changed by the run, a table made anew) stays a conflict: MergeConflictError, exit 3.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flows.datasets import Dataset
from flows.gate.outcome import WrittenBranch
from flows.gate.writing import snapshots_made
from flows.lakehouse import MAIN, LakehouseClient, MergeConflictError, ReadsTableFiles

MAX_REBASES = 20  # a run that keeps losing the race to other publishes gives up (exit 3) instead of looping


def pure_append_batch(
    client: LakehouseClient, dataset: Dataset, branch: str, written: WrittenBranch
) -> list[str] | None:
    """The data files the run appended, if both it and main since its base only appended to the table (same
    Iceberg table, same schema, every file of the base kept on both sides); None otherwise."""
    if dataset.mode != "append" or written.base is None or not isinstance(client, ReadsTableFiles):
        return None
    table, ns = dataset.table, dataset.namespace
    base, ours, theirs = (
        f"{MAIN}@{written.base}",
        f"{branch}@{written.commit}",
        f"{MAIN}@{client.get_branch(MAIN).hash}",
    )
    if not client.has_table(table, theirs, namespace=ns) or not client.has_table(table, base, namespace=ns):
        return None  # the run created the table, and main has one now too: two tables, not two batches
    our_schema, our_files = client.data_files(table, ref=ours, namespace=ns)
    their_schema, their_files = client.data_files(table, ref=theirs, namespace=ns)
    before = set(client.data_files(table, ref=base, namespace=ns)[1])
    if not (before <= set(our_files) and before <= set(their_files)):
        return None  # rows were removed on one side: a replace
    if not our_schema.equals(their_schema, check_metadata=True):
        return None  # a schema change on one side (field ids included)
    if _other_tables_changed(client, dataset, base, ours):
        return None
    return [f for f in our_files if f not in before]


def _other_tables_changed(client: LakehouseClient, dataset: Dataset, base: str, ours: str) -> bool:
    mine = (dataset.namespace, dataset.table)

    def others(ref: str) -> dict[tuple[str, str], int | None]:
        return {(t.namespace, t.name): t.snapshot_id for t in client.get_tables(ref) if (t.namespace, t.name) != mine}

    return others(base) != others(ours)


def rebase_batch(
    client: LakehouseClient, dataset: Dataset, branch: str, written: WrittenBranch, batch_files: list[str]
) -> WrittenBranch:
    """Make `branch` again from main's head and append the batch's rows to it in one commit; the new written state."""
    assert isinstance(client, ReadsTableFiles)
    import pyarrow.parquet as pq

    table, ns = dataset.table, dataset.namespace
    rows = client.scan_data_files(table, batch_files, ref=f"{branch}@{written.commit}", namespace=ns)
    with tempfile.TemporaryDirectory(prefix="wap-rebase-") as folder:
        path = Path(folder) / "batch.parquet"
        pq.write_table(rows, path)
        client.delete_branch(branch)
        base = client.create_branch(branch, from_ref=MAIN).hash
        imported = client.import_data(table, str(path), branch=branch, namespace=ns)
    commit = client.get_branch(branch).hash
    info = client.get_table(table, f"{branch}@{commit}", namespace=ns)
    if imported.rows != rows.num_rows:  # cannot happen: the rows read back are the rows written
        raise MergeConflictError(f"{branch}@{commit}", MAIN, [f"{ns}.{table}"])
    return WrittenBranch(
        rows=info.records or 0,
        commit=commit,
        added=written.added,
        snapshot_id=info.snapshot_id,
        snapshot_ids=snapshots_made(client, dataset, info, base),
        base=base,
        rebased_from=written.rebased_from or written.commit,
        rebases=written.rebases + 1,
    )
