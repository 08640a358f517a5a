"""How the write task shapes the branch table before it imports a source: by the dataset's mode and schema
policy. Kept out of the flow module, which reads as the process."""

from __future__ import annotations

from flows.datasets import Dataset, DatasetError
from flows.gate.outcome import WrittenBranch
from flows.lakehouse import MAIN, EvolvesTableSchema, LakehouseClient, TableInfo


def check_schema_policy(client: LakehouseClient, dataset: Dataset, backend: str) -> None:
    """Before any branch exists: `schema: evolve` needs a backend that can add columns."""
    if dataset.mode == "append" and dataset.schema == "evolve" and not isinstance(client, EvolvesTableSchema):
        raise DatasetError(
            f"dataset {dataset.name}: 'schema: evolve' needs a backend that evolves table schemas;"
            f" {backend} does not (use schema: strict)"
        )


def prepare_table(client: LakehouseClient, dataset: Dataset, source: str, branch: str) -> None:
    """replace: the table made exactly the source (`create_table(replace=True)`: the embedded lakehouse empties
    the same Iceberg table when the source fits it, else creates a new one). append: keep the table the branch
    has from main (create it if there is none); with `schema: evolve`, first add the source's new columns to it."""
    ns = dataset.namespace
    # The branch was just made from main: what it holds is what main held when the run began.
    if dataset.mode == "replace" or not client.has_table(dataset.table, branch, namespace=ns):
        client.create_table(dataset.table, source, branch=branch, namespace=ns, replace=dataset.mode == "replace")
    elif dataset.schema == "evolve" and isinstance(client, EvolvesTableSchema):
        added = client.add_new_columns(dataset.table, source, branch=branch, namespace=ns)
        if added:
            print(f"added columns {', '.join(added)} to {dataset.fqn} on branch {branch} (schema: evolve)")


def snapshots_made(client: LakehouseClient, dataset: Dataset, written: TableInfo, base: str) -> tuple[int, ...]:
    """The Iceberg snapshots in the table's history at the written commit that main's table at ``base`` lacks."""
    published = f"{MAIN}@{base}"
    before = set()
    if client.has_table(dataset.table, published, namespace=dataset.namespace):
        before = set(client.get_table(dataset.table, published, namespace=dataset.namespace).snapshot_ids)
    return tuple(i for i in written.snapshot_ids if i not in before)


def rows_written(dataset: Dataset, written: WrittenBranch) -> str:
    """For the published commit's message."""
    if dataset.mode == "append":
        return f"{written.added} rows appended, {written.rows} in all"
    return f"{written.rows} rows"
