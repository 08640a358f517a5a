"""The "Audit" in Write-Audit-Publish: run a stored Great Expectations checkpoint on a dataframe.

The gate pulls the written branch back as a ``pyarrow.Table``, converts it with
``table_to_dataframe`` and calls ``run_checkpoint``; it merges only if ``AuditResult.success``.
GX is imported lazily (importing it costs seconds), so importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.audit.gx_project import BATCH_PARAMETER
from flows.datasets import gx_dir as configured_gx_dir
from flows.lakehouse.protocol import ReadsTableFiles

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.data_context import FileDataContext

    from flows.lakehouse.protocol import LakehouseClient


# One lock for all GX work in the process: GX's contexts, stores, metric caches and data-docs builds
# are not thread-safe, and 1.x still keeps some process-global state (the "current" project), so two
# contexts in different directories are not independent either. Audits are CPU-bound under the GIL
# anyway, so serialising them costs little.
_GX_LOCK = threading.RLock()
_CONTEXTS: dict[Path, FileDataContext] = {}
_log = logging.getLogger("wap.audit")
PUSHDOWN_MODES = ("auto", "always", "never")
# From this many rows on, "auto" computes row metrics with DuckDB. Its fixed cost is higher (planning
# from GX's metric dependencies, DuckDB start-up): measured with tests/benchmarks/bench_audit.py on
# the titanic suite, pandas 0.59 s vs pushdown 0.77 s at 100k rows, 1.75 s vs 0.93 s at 1M.
PUSHDOWN_MIN_ROWS = 250_000


class AuditConfigError(Exception):
    """The GX project or a checkpoint named by the caller does not exist or cannot be loaded."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict, flattened from GX's ExpectationValidationResult."""

    expectation_type: str
    column: str | None
    kwargs: dict[str, Any]  # the expectation's arguments, without column/batch_id
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    partial_unexpected_list: list[Any] = field(default_factory=list)  # sample of offending values
    partial_unexpected_index_list: list[Any] = field(default_factory=list)  # their row positions
    exception_message: str | None = None  # set when the expectation could not run (e.g. missing column)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. {"mismatched": {"missing": [...]}}
    notes: str | None = None  # the expectation's meta.notes: why it exists
    description: str | None = None  # GX's prescriptive sentence, e.g. "Age values must never be null."

    @property
    def failed(self) -> bool:
        return not self.success


@dataclass(frozen=True)
class AuditResult:
    success: bool
    suite_name: str
    checkpoint_name: str
    run_id: str  # "<run_name>@<run_time>"; unique per run
    run_time: str  # ISO 8601, UTC
    gx_version: str
    statistics: dict[str, Any]  # evaluated, successful, unsuccessful (counts), success_percent (0-100)
    expectations: list[ExpectationOutcome]
    data_docs_url: str | None  # file:// URL of this validation's data docs page
    # The GX ExpectationSuiteValidationResult, for renderers (Markdown, Prefect artifacts...).
    validation_result: ExpectationSuiteValidationResult | None = field(default=None, repr=False, compare=False)
    row_metrics: str = "pandas"  # where row-level metrics were computed: "duckdb" (pushdown) or "pandas"

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.failed]


def table_to_dataframe(table: pa.Table, *, consume: bool = False) -> pd.DataFrame:
    """The one Arrow -> pandas conversion the gate audits (so the suite is calibrated on exactly this).

    ``Table.to_pandas()``: int64 stays int64 (float64 if it has nulls), double -> float64, and
    strings -> pandas 3's Arrow-backed ``str`` dtype (no per-value Python objects, so it is cheap).

    Each Arrow-backed column is then made one contiguous Arrow array. GX filters the whole frame with
    a boolean mask several times per column expectation, and Arrow's ``take`` over a column of many
    chunks (one per Parquet row group) is ~20x slower than over one array: at 10M rows this alone
    was most of the validation time. Values and dtypes are unchanged.

    ``consume=True`` lets Arrow free the table's buffers while converting (``self_destruct``), so the
    table and the frame are not both held in full: the caller must not use ``table`` afterwards.
    """
    df = table.to_pandas(self_destruct=True, split_blocks=True) if consume else table.to_pandas()
    _combine_arrow_chunks(df)
    return df


def _combine_arrow_chunks(df: pd.DataFrame) -> None:
    """Replace, column by column, every Arrow-backed column of many chunks by a one-chunk copy.

    Column by column, so the old chunks of one column are released before the next is copied.
    """
    import pandas as pd
    import pyarrow as pa

    for position, (name, series) in enumerate(df.items()):
        values = series.array
        if not hasattr(values, "__arrow_array__"):
            continue  # numpy-backed: already contiguous
        chunked = pa.array(values)  # zero-copy: the ChunkedArray behind the column
        if not isinstance(chunked, pa.ChunkedArray) or chunked.num_chunks <= 1:
            continue
        combined = pd.array(chunked.combine_chunks(), dtype=series.dtype)
        del values, chunked
        df.isetitem(position, pd.Series(combined, index=df.index, name=name, copy=False))


def get_context(gx_dir: Path | str | None = None) -> FileDataContext:
    """The file data context rooted at ``gx_dir`` (default: env ``WAP_GX_DIR`` or the repo's ``gx/``).

    Cached per directory. Raises ``AuditConfigError`` if there is no GX project there (GX would
    otherwise silently scaffold an empty one).
    """
    root = Path(gx_dir if gx_dir is not None else configured_gx_dir()).expanduser().resolve()
    with _GX_LOCK:
        context = _CONTEXTS.get(root)
        if context is None:
            if not (root / "great_expectations.yml").is_file():
                raise AuditConfigError(f"no Great Expectations project at {root} (missing great_expectations.yml)")
            import great_expectations as gx

            from flows.audit.pushdown import install

            install()  # before any data source builds its execution engine
            context = gx.get_context(mode="file", context_root_dir=root)
            _CONTEXTS[root] = context
        return context


def run_checkpoint(
    df: pd.DataFrame,
    checkpoint: str,
    *,
    gx_dir: Path | str | None = None,
    run_name: str | None = None,
) -> AuditResult:
    """Run the stored checkpoint ``checkpoint`` on ``df`` and return a flattened verdict.

    Thread-safe. Raises ``AuditConfigError`` if the project or checkpoint does not exist. The
    checkpoint's actions (data docs) run too; validation results land in ``gx/uncommitted/``.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):  # e.g. a pyarrow.Table: GX's error would be far less clear
        raise TypeError(f"run_checkpoint needs a pandas DataFrame (see table_to_dataframe), got {type(df).__name__}")
    with _GX_LOCK:
        context = get_context(gx_dir)
        return _run_stored(context, _load_checkpoint(context, checkpoint), df, run_name, row_metrics="pandas")


def _load_checkpoint(context: FileDataContext, checkpoint: str) -> Checkpoint:
    from great_expectations.exceptions import DataContextError

    try:
        # Loaded on every run (a small JSON read) so edits to the suite take effect immediately.
        stored = context.checkpoints.get(checkpoint)
    except DataContextError as exc:
        available = _checkpoint_names(context)
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r} not found in {context.root_directory} "
            f"(available: {', '.join(available) or 'none'})"
        ) from exc
    except Exception as exc:  # e.g. it references a suite or validation definition that was deleted
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r} in {context.root_directory} cannot be loaded: {exc}"
        ) from exc
    if len(stored.validation_definitions) != 1:
        # One checkpoint audits one dataset; AuditResult describes exactly one validation.
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r} has {len(stored.validation_definitions)} validation definitions;"
            " the gate needs exactly one"
        )
    suite = stored.validation_definitions[0].suite
    if not suite.expectations:
        # Fail closed: an empty suite would pass any data, silently turning the gate off.
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r}: suite {suite.name!r} has no expectations, so the audit would pass"
            " anything; add expectations before gating on it"
        )
    return stored


def _run_stored(
    context: FileDataContext, stored: Checkpoint, df: pd.DataFrame, run_name: str | None, *, row_metrics: str
) -> AuditResult:
    """Run a loaded checkpoint on ``df`` (the caller holds ``_GX_LOCK``)."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    # GX's file stores use the run name as a directory name and reject path separators in it.
    run_name = re.sub(r"[/\\]", "_", run_name)[:200] if run_name else f"{stored.name}-{uuid.uuid4().hex[:12]}"
    checkpoint_result = stored.run(batch_parameters={BATCH_PARAMETER: df}, run_id=RunIdentifier(run_name=run_name))
    result_key, validation_result = next(iter(checkpoint_result.run_results.items()))

    # Checkpoint.run() discards action results, so ask the context for the page the
    # UpdateDataDocsAction just wrote; this is the same call the action makes for its result.
    data_docs_url = None
    docs_actions = [a for a in stored.actions if isinstance(a, UpdateDataDocsAction)]
    if docs_actions:
        site_names = docs_actions[0].site_names or None
        urls = context.get_docs_sites_urls(resource_identifier=result_key, site_names=site_names)
        data_docs_url = next((u["site_url"] for u in urls if u.get("site_url")), None)

    run_time = checkpoint_result.run_id.run_time.isoformat()
    return AuditResult(
        success=bool(checkpoint_result.success),
        suite_name=validation_result.suite_name,
        checkpoint_name=stored.name,
        run_id=f"{run_name}@{run_time}",
        run_time=run_time,
        gx_version=gx.__version__,
        statistics=_statistics(validation_result.statistics),
        expectations=[_outcome(r) for r in validation_result.results],
        data_docs_url=data_docs_url,
        validation_result=validation_result,
        row_metrics=row_metrics,
    )


def audit_table(
    client: LakehouseClient,
    table: str,
    *,
    ref: str,
    checkpoint: str,
    namespace: str | None = None,
    gx_dir: Path | str | None = None,
    run_name: str | None = None,
    pushdown: bool | None = None,
) -> AuditResult:
    """The audit task's work: read ``table`` on ``ref`` from a lakehouse client and run ``checkpoint`` on it.

    On the embedded lakehouse the row-level metrics are computed by DuckDB over the table's Parquet
    files when every expectation of the suite allows it (``flows.pushdown``): same GX results, no
    pandas copy of the table. ``pushdown``: True always tries it, False never; None (default) follows
    ``WAP_AUDIT_PUSHDOWN`` (``auto``, ``always``, ``never``), where ``auto`` tries it from
    ``PUSHDOWN_MIN_ROWS`` rows on (below that, GX on pandas is quicker than planning SQL).

    Otherwise the table is converted to pandas and GX computes everything; the Arrow table is consumed
    by that conversion (its buffers freed as they are converted), so the audit holds one copy of the data.
    """
    mode = {True: "always", False: "never", None: os.environ.get("WAP_AUDIT_PUSHDOWN", "auto")}[pushdown]
    if mode not in PUSHDOWN_MODES:
        raise AuditConfigError(f"WAP_AUDIT_PUSHDOWN must be one of {', '.join(PUSHDOWN_MODES)}, got {mode!r}")
    if mode != "never" and isinstance(client, ReadsTableFiles):
        always = mode == "always"
        result = _audit_with_pushdown(client, table, ref, namespace, checkpoint, gx_dir, run_name, always=always)
        if result is not None:
            return result
    df = table_to_dataframe(client.scan(table, ref=ref, namespace=namespace), consume=True)
    return run_checkpoint(df, checkpoint, gx_dir=gx_dir, run_name=run_name)


def _audit_with_pushdown(
    client: ReadsTableFiles,
    table: str,
    ref: str,
    namespace: str | None,
    checkpoint: str,
    gx_dir: Path | str | None,
    run_name: str | None,
    *,
    always: bool,
) -> AuditResult | None:
    """The audit with DuckDB-computed row metrics, or None if the suite needs something it cannot compute."""
    from flows.audit.pushdown import ParquetTableMetrics, PushdownError, answering, plan

    schema, files = client.data_files(table, ref=ref, namespace=namespace)
    try:
        metrics = ParquetTableMetrics(files, schema)
    except PushdownError as exc:
        _log.info("audit of %s: row metrics in pandas (%s)", table, exc)
        return None
    if not always and metrics.row_count < PUSHDOWN_MIN_ROWS:
        return None  # decided from the Parquet footers, before DuckDB is even imported
    import duckdb

    try:
        with _GX_LOCK:
            context = get_context(gx_dir)
            stored = _load_checkpoint(context, checkpoint)
            suite = stored.validation_definitions[0].suite
            try:
                missing = plan(metrics, suite.expectation_configurations, stored.result_format)
            except duckdb.Error as exc:  # unexpected: the plain path still gives the right verdict
                _log.warning("audit of %s: DuckDB failed (%s); computing row metrics in pandas", table, exc)
                return None
            if missing:
                _log.info("audit of %s: row metrics in pandas, because of %s", table, "; ".join(missing[:3]))
                return None
            with answering(metrics):
                result = _run_stored(context, stored, metrics.frame(), run_name, row_metrics="duckdb")
            if metrics.failures:
                # GX caught the error into an expectation result; that verdict must not be trusted.
                raise PushdownError(f"row metrics failed during the audit: {'; '.join(metrics.failures)}")
            return result
    finally:
        metrics.close()


def _checkpoint_names(context: FileDataContext) -> list[str]:
    # Store keys, not checkpoints.all(): that deserialises every checkpoint (and prints broken ones).
    try:
        return sorted(str(key.to_tuple()[0]) for key in context.checkpoint_store.list_keys())
    except Exception:  # listing is a courtesy in an error message; never mask the original error
        return []


def _statistics(gx_stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "evaluated": int(gx_stats.get("evaluated_expectations", 0)),
        "successful": int(gx_stats.get("successful_expectations", 0)),
        "unsuccessful": int(gx_stats.get("unsuccessful_expectations", 0)),
        "success_percent": gx_stats.get("success_percent"),
    }


_DESCRIPTIONS: dict[str, str | None] = {}  # rendered sentence by expectation configuration (JSON)
_DESCRIPTIONS_MAX = 4096


def _describe_expectation(config: Any) -> str | None:
    """GX's own prescriptive summary (the sentence data docs show), with its $params filled in.

    Rendering costs ~10 ms per expectation (a third of a small audit), and a suite's configurations
    rarely change between runs, so sentences are cached by the configuration's full JSON.
    """
    try:
        key = json.dumps(config.to_json_dict(), sort_keys=True, default=repr)
    except Exception:  # an unserialisable configuration: render it every time
        return _render_description(config)
    if key not in _DESCRIPTIONS:
        if len(_DESCRIPTIONS) >= _DESCRIPTIONS_MAX:
            _DESCRIPTIONS.clear()
        _DESCRIPTIONS[key] = _render_description(config)
    return _DESCRIPTIONS[key]


def _render_description(config: Any) -> str | None:
    from great_expectations.render import AtomicPrescriptiveRendererType

    try:
        # GX's public rendering: ``render()`` fills ``rendered_content`` with the expectation's atomic prescriptive
        # renderings; the SUMMARY one is the sentence ("Age values must ..."), as data docs show it.
        expectation = config.to_domain_obj()
        expectation.render()
        summary = next(
            (c for c in expectation.rendered_content or [] if c.name == AtomicPrescriptiveRendererType.SUMMARY), None
        )
        if summary is None:  # no summary renderer for this type
            return None
        value = summary.value
        params = value.params or {}
    except Exception:  # rendering is cosmetic; never let it break an audit
        return None

    def fill(match: re.Match[str]) -> str:
        param = params.get(match.group(1))
        return str(param["value"]) if isinstance(param, dict) and "value" in param else match.group(0)

    return re.sub(r"\$(\w+)", fill, value.template or "") or None


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, recursively, so outcomes are JSON/repr friendly."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _notes_text(meta: dict[str, Any] | None) -> str | None:
    notes = (meta or {}).get("notes")
    if isinstance(notes, dict):
        content = notes.get("content")
        return " ".join(content) if isinstance(content, list) else content
    return notes if isinstance(notes, str) else None


def _outcome(r: Any) -> ExpectationOutcome:
    config = r.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.pop("column", None)
    kwargs.pop("batch_id", None)
    result: dict[str, Any] = r.result or {}
    exception = r.exception_info or {}
    # exception_info is usually {"raised_exception", "exception_message", ...}; when several
    # metrics fail it is keyed by metric id instead.
    if "raised_exception" not in exception:
        exception = next(iter(exception.values()), {}) if exception else {}
    return ExpectationOutcome(
        expectation_type=config.type,
        column=column,
        kwargs=_plain(kwargs),
        success=bool(r.success),
        observed_value=_plain(result.get("observed_value")),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=result.get("unexpected_percent"),
        partial_unexpected_list=_plain(list(result.get("partial_unexpected_list") or [])),
        partial_unexpected_index_list=_plain(list(result.get("partial_unexpected_index_list") or [])),
        exception_message=exception.get("exception_message") if exception.get("raised_exception") else None,
        details=_plain(result.get("details") or {}),
        notes=_notes_text(config.meta),
        description=_describe_expectation(config),
    )
