"""`wap validate`: a dataset's checkpoint on a file, against what `main` publishes, writing nothing.

The file is the batch. In replace mode it is also the table; in append mode the table is `main`'s rows plus
the file's, fitted to `main`'s table exactly as the write would fit them (a file that does not fit is refused
by the same schema check). The suite parameters are the facts of `main` (`baseline`); when `main` has no such
table, or no lakehouse is given, the file is its own baseline, as on a first run.

In replace mode a local Parquet source's row metrics come from DuckDB over the file (``file_metrics.py``), GX
validating a zero-row frame of the same dtypes, by the audit's rule: ``WAP_AUDIT_PUSHDOWN`` (``auto``: from
``PUSHDOWN_MIN_ROWS`` rows on), on pandas for a suite whose rules the pushdown cannot answer (``pushdown.plan``).
CSV sources and appends are validated on pandas.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from flows.audit.baseline import measure_frame, measure_table
from flows.audit.checkpoint import AuditResult, checkpoint_parameters, run_checkpoint, table_to_dataframe
from flows.datasets import DatasetError
from flows.lakehouse.names import MAIN
from flows.lakehouse.protocol import ReadsTableFiles

_log = logging.getLogger("wap.audit")

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
    has_main = client is not None and client.has_table(table, MAIN, namespace=ns)
    if dataset.mode != "append" or not has_main:
        pushed = _validate_on_duckdb(dataset, source, client if has_main else None, gx_dir=gx_dir, run_name=run_name)
        if pushed is not None:
            return pushed
    if client is None or not has_main:
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


def _validate_on_duckdb(
    dataset: Dataset, source: str, client: LakehouseClient | None, *, gx_dir: Path | str | None, run_name: str | None
) -> AuditResult | None:
    """Replace mode (or a first run) with the row metrics from DuckDB over the file; None where the audit's rule
    would not try the pushdown (``never``; ``auto`` below ``PUSHDOWN_MIN_ROWS`` rows) or it cannot read the file."""
    import time
    import urllib.parse

    import duckdb
    import pyarrow as pa

    from flows.audit.checkpoint import (
        _GX_LOCK,
        BATCH,
        PUSHDOWN_MIN_ROWS,
        PUSHDOWN_MODES,
        TABLE,
        AuditConfigError,
        _definitions,
        _Input,
        _load_checkpoint,
        _run_stored,
        get_context,
        with_row_keys,
    )
    from flows.audit.file_metrics import SourceFileMetrics
    from flows.audit.pushdown import PushdownError, plan
    from flows.lakehouse.sources import CSV_SUFFIXES, open_source

    mode = os.environ.get("WAP_AUDIT_PUSHDOWN", "auto")
    if mode not in PUSHDOWN_MODES:
        raise AuditConfigError(f"WAP_AUDIT_PUSHDOWN must be one of {', '.join(PUSHDOWN_MODES)}, got {mode!r}")
    scheme = urllib.parse.urlparse(source).scheme.lower()
    if mode == "never" or scheme not in ("", "file") or source.lower().endswith(CSV_SUFFIXES):
        return None  # not opened at all: a remote source would be downloaded twice, a CSV inferred twice
    with open_source(source) as opened:
        try:
            metrics = SourceFileMetrics(opened)
        except PushdownError as exc:
            _log.info("validate %s: row metrics in pandas (%s)", source, exc)
            return None
        try:
            if mode == "auto" and metrics.row_count < PUSHDOWN_MIN_ROWS:
                return None  # decided from the footers, as the audit decides
            used = checkpoint_parameters(dataset.checkpoint, gx_dir)
            if client is None:  # a first run: the file's own facts, as run_checkpoint measures its frame
                baseline = metrics.measure(measured="the audited data", wanted=set(used), as_frame=True)
            else:
                main = f"{MAIN}@{client.get_branch(MAIN).hash}"
                baseline = measure_table(
                    client, dataset.table, ref=main, namespace=dataset.namespace, first_run=False, wanted=set(used)
                )
                new_columns = [c for c in opened.schema.names if c not in baseline.parameters["main_columns"]]
                if new_columns:  # a column main lacks: its facts are the file's, as on a first run
                    own = metrics.measure(measured=source, wanted=set(used), columns=new_columns).parameters
                    baseline.parameters.update({k: v for k, v in own.items() if k not in baseline.parameters})
            baseline = replace(baseline, used=used)
            with _GX_LOCK:
                context = get_context(gx_dir)
                stored = _load_checkpoint(context, dataset.checkpoint)
                result_format = with_row_keys(stored.result_format, dataset.key)
                inputs: dict[str, _Input] = {}
                frame: _Input | None = None
                for role, definition in _definitions(stored):
                    started = time.perf_counter()
                    suite = definition.suite
                    try:
                        missing = plan(metrics, suite.expectation_configurations, result_format, baseline.parameters)
                        why = f"the pushdown cannot answer: {suite.name}: {', '.join(missing)}" if missing else None
                    except duckdb.Error as exc:  # unexpected: the pandas path still gives the right verdict
                        why = f"the pushdown's SQL failed: {exc}"
                    if why is None:
                        data = _Input(metrics.frame(), metrics.row_count, metrics)
                    else:
                        _log.info("validate %s: row metrics in pandas, because %s", source, why)
                        if frame is None:  # read_source's table, read once for both suites
                            arrow = pa.Table.from_batches(list(opened.batches()), schema=opened.schema)
                            frame = _Input(table_to_dataframe(arrow, consume=True), arrow.num_rows)
                        data = replace(frame, fallback=why)
                    inputs[role] = replace(data, seconds=time.perf_counter() - started)
                inputs.setdefault(TABLE, inputs[BATCH])
                return _run_stored(context, stored, inputs, baseline.parameters, baseline, run_name, dataset.key)
        finally:
            metrics.close()


def row_metrics_line(result: AuditResult) -> str:
    """Where each suite's row metrics were computed, for ``wap validate``'s output."""
    said = {
        "duckdb": "computed by DuckDB over the file, GX on a zero-row frame of the same dtypes",
        "pandas": "computed by GX on the file read into pandas",
    }
    parts = []
    for suite in result.suites:
        text = said.get(suite.row_metrics, suite.row_metrics)
        if suite.row_metrics_fallback and suite.row_metrics == "pandas":
            text += f", because {suite.row_metrics_fallback}"
        parts.append(f"{suite.suite_name}: {text}")
    return "row metrics: " + "; ".join(parts)
