"""`wap validate`: a dataset's checkpoint on a file, against what `main` publishes, writing nothing.

The file is the batch. In replace mode it is also the table; in append mode the table is `main`'s rows plus
the file's, fitted to `main`'s table exactly as the write would fit them (a file that does not fit is refused
by the same schema check). The suite parameters are the facts of `main` (`baseline`); when `main` has no such
table, or no lakehouse is given, the file is its own baseline, as on a first run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from flows.audit.baseline import measure_frame, measure_table
from flows.audit.checkpoint import AuditResult, checkpoint_parameters, run_checkpoint, table_to_dataframe
from flows.datasets import DatasetError
from flows.lakehouse.names import MAIN
from flows.lakehouse.protocol import ReadsTableFiles

if TYPE_CHECKING:
    from pathlib import Path

    from flows.datasets import Dataset
    from flows.lakehouse.protocol import LakehouseClient


def validate_source(
    dataset: Dataset,
    source: str,
    client: LakehouseClient | None,
    *,
    gx_dir: Path | str | None = None,
    run_name: str | None = None,
) -> AuditResult:
    """Run ``dataset``'s checkpoint on the file ``source`` (see the module docstring); nothing is written."""
    import pyarrow as pa

    from flows.lakehouse.sources import read_source

    ns, table = dataset.namespace, dataset.table
    if client is None or not client.has_table(table, MAIN, namespace=ns):
        return run_checkpoint(
            table_to_dataframe(read_source(source)),
            dataset.checkpoint,
            gx_dir=gx_dir,
            run_name=run_name,
            key_columns=dataset.key,
        )
    main = f"{MAIN}@{client.get_branch(MAIN).hash}"  # one commit for every read below
    used = checkpoint_parameters(dataset.checkpoint, gx_dir)
    baseline = replace(
        measure_table(client, table, ref=main, namespace=ns, first_run=False, wanted=set(used)), used=used
    )
    if dataset.mode == "append":
        if not isinstance(client, ReadsTableFiles):
            raise DatasetError(
                f"dataset {dataset.name}: validating an append needs a backend that reads table files;"
                f" {client.backend} does not yet"
            )
        batch = client.fit_source(table, source, ref=main, namespace=ns)  # SchemaMismatchError if it does not fit
        published = client.scan(table, ref=main, namespace=ns)
        whole = pa.concat_tables([published, batch.cast(published.schema)])
        return run_checkpoint(
            table_to_dataframe(batch), dataset.checkpoint, table=table_to_dataframe(whole, consume=True),
            baseline=baseline, gx_dir=gx_dir, run_name=run_name, key_columns=dataset.key,
        )  # fmt: skip
    arrow = read_source(source)
    new_columns = [c for c in arrow.schema.names if c not in baseline.parameters["main_columns"]]
    if new_columns:  # a column main lacks: its facts are the file's, as on a first run
        own = measure_frame(arrow.select(new_columns), measured=source, wanted=set(used)).parameters
        baseline.parameters.update({k: v for k, v in own.items() if k not in baseline.parameters})
    return run_checkpoint(
        table_to_dataframe(arrow),
        dataset.checkpoint,
        baseline=baseline,
        gx_dir=gx_dir,
        run_name=run_name,
        key_columns=dataset.key,
    )
