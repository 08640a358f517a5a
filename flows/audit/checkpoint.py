"""The "Audit" in Write-Audit-Publish: run a dataset's stored Great Expectations checkpoint.

A checkpoint validates the batch (the rows a run adds; in replace mode the whole new table) with the
dataset's suite and, if it has a second validation definition (``gx_project``), the table as it would be
published with the table suite; both get the facts of the published table as suite parameters
(``baseline``). ``audit_table`` reads both from the lakehouse (row metrics pushed down to SQL: DuckDB over
the files for large tables, the lakehouse's own engine where it hands out no files), ``run_checkpoint`` takes
dataframes; the gate merges only if ``AuditResult.success``: no critical rule failed and every rule ran. A failed
rule of GX severity ``warning`` or ``info`` does not block (GX's own validation success counts every rule, so
the verdict is computed here from each rule's severity).
GX is imported lazily (importing it costs seconds), so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.audit.baseline import Baseline, column_key, measure_frame, published_baseline, referenced_parameters
from flows.audit.gx_project import BATCH, BATCH_PARAMETER, GROUP, SQL_RULE, TABLE, validates
from flows.audit.proof import ReliedProof, TableProof, files_fingerprint, proves_unique, relied_proof
from flows.datasets import gx_dir as configured_gx_dir
from flows.lakehouse.protocol import ReadsTableFiles

if TYPE_CHECKING:
    from collections.abc import Sequence

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
# the titanic suite, pandas 0.59 s vs pushdown 0.77 s at 100k rows, 1.75 s vs 0.93 s at 1M. A backend
# without data files pushes down at any size in "auto" (see audit_table).
PUSHDOWN_MIN_ROWS = 250_000


CRITICAL, WARNING, INFO = "critical", "warning", "info"  # GX 1.x FailureSeverity values; critical is GX's default
SEVERITIES = (CRITICAL, WARNING, INFO)


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
    suite: str | None = None  # the suite it belongs to
    validates: str = BATCH  # what that suite validated: BATCH (the rows added) or TABLE (the table as published)
    severity: str = CRITICAL  # GX's severity of the rule: critical blocks, warning and info only report
    key_columns: tuple[str, ...] = ()  # the dataset's key: partial_unexpected_index_list holds them (with_row_keys)

    @property
    def failing_row_keys(self) -> list[dict[str, Any]]:
        """The sampled failing rows by their key (``[{"PassengerId": 5}, ...]``); [] without a key."""
        if not self.key_columns:
            return []
        rows = [r for r in self.partial_unexpected_index_list if isinstance(r, dict)]
        return [{k: row.get(k) for k in self.key_columns} for row in rows]

    @property
    def failed(self) -> bool:
        return not self.success

    @property
    def blocks(self) -> bool:
        """Whether this outcome blocks a publish: a critical rule failed, or a rule of any severity could not run
        (an unevaluated rule proves nothing either way)."""
        return self.failed and (self.severity == CRITICAL or self.exception_message is not None)

    @property
    def failed_as(self) -> str | None:
        """How it failed: CRITICAL (blocking), WARNING or INFO (reported only); None if it passed."""
        if not self.failed:
            return None
        return CRITICAL if self.blocks else self.severity


@dataclass(frozen=True)
class SuiteAudit:
    """One validation of the checkpoint: a suite run on the batch or on the table as it would be published."""

    validates: str  # BATCH or TABLE
    suite_name: str
    success: bool
    rows: int  # the rows it validated
    statistics: dict[str, Any]
    data_docs_url: str | None
    row_metrics: str  # "duckdb" (over the files), "query" (the lakehouse's SQL engine) or "pandas"
    validation_result: ExpectationSuiteValidationResult | None = field(default=None, repr=False, compare=False)
    seconds: float = 0.0  # reading its data and validating it (not data docs)
    # Why the row metrics were computed in pandas although the pushdown was tried (None: it ran, or was not tried).
    row_metrics_fallback: str | None = None


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
    # Where the batch's row-level metrics were computed: "duckdb" (pushdown over the files), "query" (pushdown to
    # the lakehouse's SQL engine) or "pandas".
    row_metrics: str = "pandas"
    # Every validation of the checkpoint, the batch first; the fields above describe the batch's, except
    # `success`, `statistics` and `expectations`, which cover them all.
    suites: tuple[SuiteAudit, ...] = ()
    baseline: Baseline | None = None  # the facts of the published table the suites were given
    proof: TableProof | None = None  # what it proved about the whole table (recorded by the publish commit)
    relied_proof: ReliedProof | None = None  # main's proven-distinct columns its table audit relied on (semi-join)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """Every failed rule, whatever its severity."""
        return [e for e in self.expectations if e.failed]

    @property
    def blocking(self) -> list[ExpectationOutcome]:
        """The failed rules that block the publish (critical ones, and any that could not run)."""
        return [e for e in self.expectations if e.blocks]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        """Failed rules of severity warning: reported, recorded on the published commit, not blocking."""
        return [e for e in self.expectations if e.failed_as == WARNING]

    @property
    def infos(self) -> list[ExpectationOutcome]:
        """Failed rules of severity info: in the report only."""
        return [e for e in self.expectations if e.failed_as == INFO]

    @property
    def suite_names(self) -> str:
        """e.g. "titanic + titanic_table"."""
        return " + ".join(s.suite_name for s in self.suites) or self.suite_name

    def suite_audit(self, validates: str) -> SuiteAudit | None:
        return next((s for s in self.suites if s.validates == validates), None)


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

            from flows.audit.gx_fixes import install_gx_fixes
            from flows.audit.pushdown import install

            install()  # before any data source builds its execution engine
            install_gx_fixes()
            context = gx.get_context(mode="file", context_root_dir=root)
            _CONTEXTS[root] = context
        return context


def run_checkpoint(
    df: pd.DataFrame,
    checkpoint: str,
    *,
    table: pd.DataFrame | None = None,
    parameters: dict[str, Any] | None = None,
    baseline: Baseline | None = None,
    gx_dir: Path | str | None = None,
    run_name: str | None = None,
    key_columns: Sequence[str] = (),
) -> AuditResult:
    """Run the stored checkpoint ``checkpoint``: its batch suite on ``df``, its table suite (if it has one) on
    ``table`` (default: ``df``, as in replace mode), both with the suite ``parameters`` (or ``baseline``'s;
    default: the facts of ``table`` itself, as on a first run with nothing published); return a flattened verdict.
    ``key_columns`` (a dataset's ``key``) name the failing rows in the results (see ``with_row_keys``).

    Thread-safe. Raises ``AuditConfigError`` if the project or checkpoint does not exist. The
    checkpoint's actions (data docs) run too; validation results land in ``gx/uncommitted/``.
    """
    import pandas as pd

    for frame in (df, table):
        # e.g. a pyarrow.Table: GX's own error would be far less clear
        if frame is not None and not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"run_checkpoint needs a pandas DataFrame (see table_to_dataframe), got {type(frame).__name__}"
            )
    with _GX_LOCK:
        context = get_context(gx_dir)
        stored = _load_checkpoint(context, checkpoint)
        whole = df if table is None else table
        inputs = {BATCH: _Input(df, len(df)), TABLE: _Input(whole, len(whole))}
        if baseline is not None:
            parameters = baseline.parameters
        if parameters is None:
            # No published table given: as on a first run, the table is its own baseline.
            used = _used_parameters(stored)
            baseline = replace(measure_frame(whole, measured="the audited data", wanted=set(used)), used=used)
            parameters = baseline.parameters
        return _run_stored(context, stored, inputs, parameters, baseline, run_name, key_columns)


def with_row_keys(result_format: Any, key_columns: Sequence[str]) -> Any:
    """The checkpoint's result format, asking GX to name each failing row by ``key_columns`` (GX's
    ``unexpected_index_column_names``: its row samples become ``{key: value, column: value}`` instead of
    positions); unchanged without key columns."""
    if not key_columns:
        return result_format
    value = getattr(result_format, "value", result_format)
    named = dict(value) if isinstance(value, dict) else {"result_format": value}
    named["unexpected_index_column_names"] = list(key_columns)
    return named


def _check_row_keys(key_columns: Sequence[str], inputs: dict[str, _Input]) -> None:
    """Every key column is a column of the data (GX would fail every row rule on it, one by one)."""
    for data in inputs.values():
        columns = [str(c) for c in data.frame.columns]
        missing = [c for c in key_columns if c not in columns]
        if missing:
            raise AuditConfigError(
                f"key column {missing[0]!r} (gx/datasets.yml key:) is not a column of the audited data"
                f" (columns: {', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''})"
            )


@dataclass
class _Input:
    """What one validation reads: a dataframe, or a zero-row frame whose row metrics come from DuckDB."""

    frame: pd.DataFrame
    rows: int
    metrics: Any = None  # a pushdown.MetricsSource answering the row metrics, or None: GX on the frame
    seconds: float = 0.0  # spent reading it (pushdown: computing its row metrics), before GX validates it
    fallback: str | None = None  # why GX runs on the frame although the pushdown was tried

    @property
    def row_metrics(self) -> str:
        return "pandas" if self.metrics is None else getattr(self.metrics, "row_metrics", "duckdb")


def _load_checkpoint(context: FileDataContext, checkpoint: str, *, group: bool = False) -> Checkpoint:
    """The stored checkpoint, checked: a dataset's (``group`` False) or a group's cross-table rules."""
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
    definitions = stored.validation_definitions
    roles = [validates(d.batch_definition.name) for d in definitions]
    if group and roles != [GROUP]:
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r} is not a group's: a group's checkpoint validates exactly one suite of"
            " cross-table rules (batch definition 'group_tables')"
        )
    if not group and GROUP in roles:
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r} holds cross-table rules: it is a group's checkpoint (gx/datasets.yml"
            " groups: ... checkpoint:), not a dataset's"
        )
    if not group and (roles.count(BATCH) != 1 or roles.count(TABLE) > 1):
        # One checkpoint audits one dataset: its batch, and optionally the table it makes.
        raise AuditConfigError(
            f"GX checkpoint {checkpoint!r} has {roles.count(BATCH)} validation definitions of the batch and"
            f" {roles.count(TABLE)} of the published table; the gate needs exactly one of the batch and at most"
            " one of the table (batch definition 'published_table')"
        )
    for definition in definitions:
        if not definition.suite.expectations:
            # Fail closed: an empty suite would pass any data, silently turning the gate off.
            raise AuditConfigError(
                f"GX checkpoint {checkpoint!r}: suite {definition.suite.name!r} has no expectations, so the audit"
                " would pass anything; add expectations before gating on it"
            )
    return stored


def checkpoint_parameters(checkpoint: str, gx_dir: Path | str | None = None) -> list[str]:
    """The `main_*` suite parameters the checkpoint's suites use."""
    with _GX_LOCK:
        stored = _load_checkpoint(get_context(gx_dir), checkpoint)
        return _used_parameters(stored)


def _used_parameters(stored: Checkpoint) -> list[str]:
    """The `main_*` suite parameters the checkpoint's suites use, first appearance first."""
    return referenced_parameters([c for _, d in _definitions(stored) for c in d.suite.expectation_configurations])


def _definitions(stored: Checkpoint) -> list[tuple[str, Any]]:
    """(BATCH or TABLE, validation definition), the batch first."""
    pairs = [(validates(d.batch_definition.name), d) for d in stored.validation_definitions]
    return sorted(pairs, key=lambda pair: pair[0] != BATCH)


def _run_stored(
    context: FileDataContext,
    stored: Checkpoint,
    inputs: dict[str, _Input],
    parameters: dict[str, Any],
    baseline: Baseline | None,
    run_name: str | None,
    key_columns: Sequence[str] = (),
) -> AuditResult:
    """Run a loaded checkpoint, each validation definition on its own input (the caller holds ``_GX_LOCK``).

    ``Checkpoint.run`` hands one ``batch_parameters`` to every validation definition, so the batch and the
    table could not get different data; this runs GX's public ``ValidationDefinition.run`` per definition with
    the checkpoint's result format and run id, builds GX's ``CheckpointResult`` from them and runs the
    checkpoint's actions (data docs) on it, as ``Checkpoint.run`` does.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.checkpoint.checkpoint import CheckpointResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.exceptions import SuiteParameterError

    from flows.audit.pushdown import answering

    freshness = stored.is_fresh()
    if not freshness.success:
        freshness.raise_for_error()
    _check_row_keys(key_columns, inputs)
    result_format = with_row_keys(stored.result_format, key_columns)
    # GX's file stores use the run name as a directory name and reject path separators in it.
    run_name = re.sub(r"[/\\]", "_", run_name)[:200] if run_name else f"{stored.name}-{uuid.uuid4().hex[:12]}"
    run_id = RunIdentifier(run_name=run_name)
    results: dict[Any, ExpectationSuiteValidationResult] = {}
    ran: list[tuple[str, Any, _Input]] = []
    for role, definition in _definitions(stored):
        data = inputs[role]
        started = time.perf_counter()
        try:
            with answering(data.metrics) if data.metrics is not None else contextlib.nullcontext():
                validation = definition.run(
                    checkpoint_id=stored.id,
                    batch_parameters={BATCH_PARAMETER: data.frame},
                    expectation_parameters=parameters,
                    result_format=result_format,
                    run_id=run_id,
                )
        except SuiteParameterError as exc:
            raise AuditConfigError(_parameter_error(definition.suite.name, str(exc), parameters)) from exc
        if data.metrics is not None and data.metrics.failures:
            # GX caught the error into an expectation result; that verdict must not be trusted.
            from flows.audit.pushdown import PushdownError

            raise PushdownError(f"row metrics failed during the audit: {'; '.join(data.metrics.failures)}")
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
            run_id=run_id,
            batch_identifier=validation.batch_id,
        )
        results[key] = validation
        ran.append((role, key, replace(data, seconds=data.seconds + time.perf_counter() - started)))
    checkpoint_result = CheckpointResult(run_id=run_id, run_results=results, checkpoint_config=stored)
    stored._run_actions(checkpoint_result=checkpoint_result)  # private; pinned in tests/test_upstream_contract.py

    # Checkpoint actions' results are discarded, so ask the context for the pages the UpdateDataDocsAction
    # just wrote; this is the same call the action makes for its result.
    docs_actions = [a for a in stored.actions if isinstance(a, UpdateDataDocsAction)]

    def docs_url(key: Any) -> str | None:
        if not docs_actions:
            return None
        urls = context.get_docs_sites_urls(resource_identifier=key, site_names=docs_actions[0].site_names or None)
        return next((u["site_url"] for u in urls if u.get("site_url")), None)

    suites = []
    outcomes: list[ExpectationOutcome] = []
    for role, key, data in ran:
        validation = results[key]
        own = [_outcome(r, suite=validation.suite_name, validates=role) for r in validation.results]
        outcomes += own
        suites.append(
            SuiteAudit(
                validates=role,
                suite_name=validation.suite_name,
                # GX's validation.success is False for any failed rule; the gate's verdict weighs severity.
                success=not any(e.blocks for e in own),
                rows=data.rows,
                seconds=data.seconds,
                statistics=_statistics(validation.statistics),
                data_docs_url=docs_url(key),
                row_metrics=data.row_metrics,
                validation_result=validation,
                row_metrics_fallback=data.fallback,
            )
        )
    batch = suites[0]
    run_time = run_id.run_time.isoformat()
    return AuditResult(
        success=all(s.success for s in suites),
        suite_name=batch.suite_name,
        checkpoint_name=stored.name,
        run_id=f"{run_name}@{run_time}",
        run_time=run_time,
        gx_version=gx.__version__,
        statistics=_combined_statistics([s.statistics for s in suites]),
        expectations=outcomes,
        data_docs_url=batch.data_docs_url,
        validation_result=batch.validation_result,
        row_metrics=batch.row_metrics,
        suites=tuple(suites),
        baseline=baseline,
    )


def _parameter_error(suite: str, message: str, parameters: dict[str, Any]) -> str:
    """GX's "Unknown string format: main_fare_maxx" as a line saying which parameter has no value, and why."""
    missing = [name for name in re.findall(r"\bmain_\w+", message) if name not in parameters]
    if not missing:
        return f"suite {suite!r}: {message.splitlines()[0]}"
    name = missing[0]
    columns = {f"main_{column_key(c)}" for c in parameters.get("main_columns", [])}
    if name.endswith(("_min", "_max")) and name.rsplit("_", 1)[0] in columns:
        why = "that column has no value on main to compare with"
    else:
        why = "no such fact of the published table (the main_* names are listed in the README)"
    return f"suite {suite!r} uses suite parameter {name}, which has no value: {why}"


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
    published: str | None = None,
    appended: bool = False,
    batch_ref: str | None = None,
    key_columns: Sequence[str] = (),
) -> AuditResult:
    """The audit task's work: run ``checkpoint`` on ``table`` as ``ref`` holds it.

    ``published`` (a pinned ref, e.g. ``main@<hash>``: main as the run found it) is the state the run would
    replace: its facts become the suite parameters (``baseline``). ``appended``: the run appended to that
    table, so the batch suite validates only the rows ``ref`` adds to it (its data files beyond
    ``published``'s, or on a backend without data-file access the same table on ``batch_ref``, where the
    batch was staged alone: ``gate/staging.py``), the table suite the whole table on ``ref``; otherwise both
    validate the whole table.

    The row-level metrics are pushed down to SQL when every expectation of a suite allows it
    (``flows.audit.pushdown``): same GX results, no pandas copy. On the embedded lakehouse DuckDB reads the
    Parquet files; on a backend that hands out no files (Bauplan) the same SQL runs through ``client.query`` on
    the audited ref (the batch of an append on ``batch_ref``), so the engine computes the counts and samples
    and the table never crosses the network. ``pushdown``: True always tries it, False never; None (default)
    follows ``WAP_AUDIT_PUSHDOWN`` (``auto``, ``always``, ``never``). ``auto`` tries it over the files from
    ``PUSHDOWN_MIN_ROWS`` rows on (below that, GX on pandas is quicker than planning SQL), and through
    ``query`` at any size: there pulling the table to the client is the expensive part, whatever its size.
    Otherwise the rows are converted to pandas (the Arrow table consumed by the conversion, so the audit holds
    one copy of them); ``SuiteAudit.row_metrics_fallback`` says why when the pushdown was tried.
    ``key_columns``: the dataset's key, naming the failing rows in the results (``with_row_keys``).
    """
    mode = {True: "always", False: "never", None: os.environ.get("WAP_AUDIT_PUSHDOWN", "auto")}[pushdown]
    if mode not in PUSHDOWN_MODES:
        raise AuditConfigError(f"WAP_AUDIT_PUSHDOWN must be one of {', '.join(PUSHDOWN_MODES)}, got {mode!r}")
    if appended and (published is None or (batch_ref is None and not isinstance(client, ReadsTableFiles))):
        raise AuditConfigError(
            "an append's batch audit needs the published ref, and the staged batch's ref on a backend that does not"
            " list data files"
        )
    with _GX_LOCK:
        context = get_context(gx_dir)
        stored = _load_checkpoint(context, checkpoint)
        suites = {role: d.suite for role, d in _definitions(stored)}
        used = _used_parameters(stored)
        # Without a published state to compare with, the table is its own baseline, as on a first run.
        baseline = published_baseline(
            client, table, published=published or ref, audited=ref, namespace=namespace, wanted=used,
            first_run=published is None,
        )  # fmt: skip
        reader = _TableReader(client, table, ref, namespace, published if appended else None, batch_ref)
        try:
            parameters = baseline.parameters
            result_format = with_row_keys(stored.result_format, key_columns)
            inputs = {}
            for role, suite in suites.items():
                started = time.perf_counter()
                data = reader.input(
                    role, suite.expectation_configurations, result_format, parameters, mode, suite=suite.name
                )
                inputs[role] = replace(data, seconds=time.perf_counter() - started)
            inputs.setdefault(TABLE, inputs[BATCH])  # unused without a table suite
            result = _run_stored(context, stored, inputs, parameters, baseline, run_name, key_columns)
        finally:
            reader.close()
    table_audit = result.suite_audit(TABLE)
    relied = reader.relied if table_audit is not None and table_audit.row_metrics == "duckdb" else None
    return replace(result, proof=reader.proof(result), relied_proof=relied)


class _TableReader:
    """The data of each validation, read once: the batch (the files ``ref`` adds beyond ``appended_to``,
    or the whole table) and the table."""

    def __init__(
        self,
        client: LakehouseClient,
        table: str,
        ref: str,
        namespace: str | None,
        appended_to: str | None,
        batch_ref: str | None = None,
    ) -> None:
        self.client, self.table, self.ref, self.namespace = client, table, ref, namespace
        self.batch_ref = batch_ref
        self.files: dict[str, tuple[pa.Schema, list[str]]] = {}
        self.relied: ReliedProof | None = None  # what an earlier publish proved about `appended_to`'s table
        if isinstance(client, ReadsTableFiles):
            schema, files = client.data_files(table, ref=ref, namespace=namespace)
            self.files[TABLE] = (schema, files)
            batch = files
            if appended_to is not None and client.has_table(table, appended_to, namespace=namespace):
                published = client.data_files(table, ref=appended_to, namespace=namespace)[1]
                if not set(published) <= set(files):
                    raise AuditConfigError(f"{table} on {ref} is not {appended_to}'s table plus appended rows")
                batch = [f for f in files if f not in set(published)]
                self.relied = relied_proof(client, appended_to, published)
                self._published = published
            self.files[BATCH] = (schema, batch)
        self.appended = appended_to is not None
        self._metrics: dict[str, Any] = {}
        self._frames: dict[str, _Input] = {}

    def proof(self, result: AuditResult) -> TableProof | None:
        """What the audit proved about the whole table on ``ref`` (None without its file list)."""
        if TABLE not in self.files:
            return None
        # Which validations saw the whole table: the table suite's, and in replace mode the batch suite's too.
        whole = {TABLE} if self.appended else {TABLE, BATCH}
        unique = {
            e.column
            for e in result.expectations
            if e.validates in whole and e.column and proves_unique(e.expectation_type, e.kwargs, e.success)
        }
        return TableProof(files_fingerprint(self.files[TABLE][1]), tuple(sorted(unique)))

    def _same(self, role: str) -> str:
        """Both validations read the same rows unless an append's batch is a part of the table."""
        return role if self.appended else TABLE

    def _ref(self, key: str) -> str:
        """Where the rows of ``key`` are on a backend without data files: an append's batch on its staging ref."""
        if key == BATCH:
            assert self.batch_ref is not None  # audit_table requires it for an append on such a backend
            return self.batch_ref
        return self.ref

    def input(
        self,
        role: str,
        configurations: list[Any],
        result_format: Any,
        parameters: dict[str, Any],
        mode: str,
        *,
        suite: str = "",
    ) -> _Input:
        key = self._same(role)
        fallback = None
        if mode != "never":
            pushed = self._pushdown(
                key, configurations, result_format, parameters, always=mode == "always", suite=suite or role
            )
            if isinstance(pushed, _Input):
                return pushed
            fallback = pushed
        if key not in self._frames:
            if key in self.files and key == BATCH:
                assert isinstance(self.client, ReadsTableFiles)
                files = self.files[BATCH][1]
                arrow = self.client.scan_data_files(self.table, files, ref=self.ref, namespace=self.namespace)
            else:  # the table, or an append's batch staged alone on its own branch
                arrow = self.client.scan(self.table, ref=self._ref(key), namespace=self.namespace)
            rows = arrow.num_rows
            self._frames[key] = _Input(table_to_dataframe(arrow, consume=True), rows)
        # Per suite: the two validations may share the rows but not the expectations that decided.
        return replace(self._frames[key], fallback=fallback) if fallback else self._frames[key]

    def _pushdown(
        self,
        key: str,
        configurations: list[Any],
        result_format: Any,
        parameters: dict[str, Any],
        *,
        always: bool,
        suite: str,
    ) -> _Input | str | None:
        """The input with pushed-down row metrics; else why not (None: not tried, a small table in auto mode)."""
        from flows.audit.pushdown import PushdownError, plan
        from flows.lakehouse.errors import QueryError

        metrics = self._metrics.get(key)
        if metrics is None:
            try:
                metrics = self._metrics[key] = self._metrics_source(key)
            except PushdownError as exc:
                _log.info("audit of %s: row metrics in pandas (%s)", self.table, exc)
                return str(exc)
            except QueryError as exc:  # the first aggregate (row and null counts) failed in the lakehouse's engine
                _log.warning("audit of %s: its SQL failed (%s); computing row metrics in pandas", self.table, exc)
                return f"the lakehouse's SQL engine failed: {exc}"
        if not always and metrics.row_metrics == "duckdb" and metrics.row_count < PUSHDOWN_MIN_ROWS:
            return None  # decided from the Parquet footers, before DuckDB is even imported
        import duckdb

        try:
            missing = plan(metrics, configurations, result_format, parameters)
        except (duckdb.Error, QueryError) as exc:  # unexpected: the plain path still gives the right verdict
            _log.warning("audit of %s: its SQL failed (%s); computing row metrics in pandas", self.table, exc)
            return f"the pushdown's SQL failed: {exc}"
        if missing:  # every rule, by suite: each is what to change for the fast path (wap suite check lists them too)
            _log.info("audit of %s: row metrics in pandas, because of %s: %s", self.table, suite, ", ".join(missing))
            return f"the pushdown cannot answer: {suite}: {', '.join(missing)}"
        return _Input(metrics.frame(), metrics.row_count, metrics)

    def _metrics_source(self, key: str) -> Any:
        """What answers ``key``'s row metrics: DuckDB over its files where the backend lists them, else the
        backend's own SQL engine (``client.query``) on the ref holding its rows."""
        from flows.audit.pushdown import ParquetTableMetrics, QueryTableMetrics

        if key in self.files:
            schema, files = self.files[key]
            distinct_in = None
            if key == TABLE and self.relied is not None:
                distinct_in = dict.fromkeys(self.relied.unique_columns, self._published)
            return ParquetTableMetrics(files, schema, distinct_in=distinct_in)
        ref = self._ref(key)
        # The zero-row frame takes its dtypes from the Arrow schema the pandas path would convert: the scan's (one
        # row of it: a limit of 0 may read as no limit to some backend).
        schema = self.client.scan(self.table, ref=ref, namespace=self.namespace, limit=1).schema
        return QueryTableMetrics(self.client, self.table, ref, self.namespace, schema)

    def close(self) -> None:
        for metrics in self._metrics.values():
            metrics.close()


def _checkpoint_names(context: FileDataContext) -> list[str]:
    # Store keys, not checkpoints.all(): that deserialises every checkpoint (and prints broken ones).
    try:
        return sorted(str(key.to_tuple()[0]) for key in context.checkpoint_store.list_keys())
    except Exception:  # listing is a courtesy in an error message; never mask the original error
        return []


def _combined_statistics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    evaluated = sum(p["evaluated"] for p in parts)
    successful = sum(p["successful"] for p in parts)
    return {
        "evaluated": evaluated,
        "successful": successful,
        "unsuccessful": sum(p["unsuccessful"] for p in parts),
        "success_percent": parts[0]["success_percent"]
        if len(parts) == 1
        else (100.0 * successful / evaluated if evaluated else None),
    }


def _statistics(gx_stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "evaluated": int(gx_stats.get("evaluated_expectations", 0)),
        "successful": int(gx_stats.get("successful_expectations", 0)),
        "unsuccessful": int(gx_stats.get("unsuccessful_expectations", 0)),
        "success_percent": gx_stats.get("success_percent"),
    }


_DESCRIPTIONS: dict[str, str | None] = {}  # rendered sentence by expectation configuration (JSON)
_DESCRIPTIONS_MAX = 4096
# The modules of GX's data docs renderers that log "An unexpected Exception occurred during data docs rendering"
# with a whole traceback at ERROR when one renderer of a result fails (e.g. GX 1.24's
# expect_column_distinct_values_to_be_in_set: its result has an unexpected_count but no unexpected_percent, which
# the diagnostic renderer reads): GX then leaves that part of the page out and renders the rest.
_GX_RENDER_LOGGERS = (
    "great_expectations.render.renderer.content_block.validation_results_table_content_block",
    "great_expectations.render.renderer.content_block.content_block",
    "great_expectations.render.renderer.column_section_renderer",
    "great_expectations.render.renderer.site_index_page_renderer",
    "great_expectations.render.renderer.site_builder",
)
_GX_RENDER_ERROR = re.compile(r'(\w+): "(.*?)"\.\s+Traceback: ', re.S)


class _RenderErrorFilter(logging.Filter):
    """GX's data docs render errors as one DEBUG line, without the traceback: GX's own bug in a cosmetic part of
    the page is no error of the audit, and a traceback in `wap validate`'s or a run's log reads as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Traceback" not in message or "data docs rendering" not in message:
            return True
        found = _GX_RENDER_ERROR.search(message)
        said = f"{found.group(1)}: {found.group(2)}" if found else message.split("Traceback", 1)[0].strip()
        record.msg, record.args, record.exc_info, record.exc_text = (
            f"GX data docs: a part of a result's page could not be rendered ({' '.join(said.split())[:200]});"
            " GX left it out",
            None,
            None,
            None,
        )
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


def _quiet_gx_render_errors() -> None:
    """Install the filter on GX's renderer loggers (by name: GX itself is not imported; idempotent)."""
    for name in _GX_RENDER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RenderErrorFilter) for f in logger.filters):
            logger.addFilter(_RenderErrorFilter())


_quiet_gx_render_errors()


def _describe_expectation(config: Any) -> str:
    """GX's own prescriptive summary (the sentence data docs show), with its $params filled in; where GX renders
    none (or only its generic ``type(**kwargs)``), a plain one from the type and the arguments.

    Rendering costs ~10 ms per expectation (a third of a small audit), and a suite's configurations
    rarely change between runs, so sentences are cached by the configuration's full JSON.
    """
    try:
        key = json.dumps(config.to_json_dict(), sort_keys=True, default=repr)
    except Exception:  # an unserialisable configuration: render it every time
        return _render_description(config) or _plain_description(config)
    if key not in _DESCRIPTIONS:
        if len(_DESCRIPTIONS) >= _DESCRIPTIONS_MAX:
            _DESCRIPTIONS.clear()
        _DESCRIPTIONS[key] = _render_description(config)
    return _DESCRIPTIONS[key] or _plain_description(config)


_PASS_THROUGH = re.compile(r"""^PassThrough\((['"])(.*)\1\)$""", re.S)  # GX 1.24's str() of a pandas row_condition


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
        template = value.template or ""
    except Exception:  # rendering is cosmetic; never let it break an audit
        return None
    if template.startswith("$expectation_type"):  # GX's generic "type(**kwargs)": no sentence for this type
        return None

    def fill(match: re.Match[str]) -> str:
        param = params.get(match.group(1))
        if not (isinstance(param, dict) and "value" in param):
            return match.group(0)
        text = str(param["value"])
        if text.startswith("<pre>") and text.endswith("</pre>"):  # a JSON schema, laid out for HTML
            text = " ".join(text[5:-6].split())
        passed = _PASS_THROUGH.match(text)
        return passed.group(2) if passed else text

    return re.sub(r"\$(\w+)", fill, template) or None


def _plain_description(config: Any) -> str:
    """The sentence for an expectation GX renders none for: its type in words, column and arguments."""
    kind = str(getattr(config, "type", None) or "expectation")
    kwargs = dict(getattr(config, "kwargs", None) or {})
    column = kwargs.pop("column", None)
    for noise in ("batch_id", "result_format", "catch_exceptions"):
        kwargs.pop(noise, None)
    words = kind.replace("_", " ")
    words = words[:1].upper() + words[1:]
    where = f" on column {column}" if column else ""
    args = ", ".join(f"{k}={json.dumps(_plain(v), default=str)}" for k, v in kwargs.items() if v is not None)
    said = f"{words}{where}" + (f" ({args})" if args else "")
    return said if len(said) <= 300 else said[:299] + "…"


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


def _outcome(r: Any, *, suite: str | None = None, validates: str = BATCH) -> ExpectationOutcome:
    config = r.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.pop("column", None)
    kwargs.pop("batch_id", None)
    result: dict[str, Any] = r.result or {}
    if config.type == SQL_RULE:
        # A SQL rule's offending rows are in GX's details (result format COMPLETE): quote them as its sample.
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        result = {**result, "unexpected_count": result.get("observed_value"), "partial_unexpected_list": rows[:20]}
    details = dict(result.get("details") or {})
    if result.get("partial_missing_list") or result.get("missing_count"):
        # GX 1.24's distinct-value set checks (..._to_contain_set, ..._to_equal_set): the set's values the column
        # lacks, beside the unexpected ones (its observed_value is None).
        details["missing_values"] = list(result.get("partial_missing_list") or [])
        details["missing_count"] = result.get("missing_count")
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
        details=_plain(details),
        notes=_notes_text(config.meta),
        description=_describe_expectation(config),
        suite=suite,
        validates=validates,
        severity=_severity(config),
        key_columns=tuple(str(c) for c in result.get("unexpected_index_column_names") or ()),
    )


def _severity(config: Any) -> str:
    """The configuration's GX severity as its string value (GX 1.24 holds a FailureSeverity enum, default
    critical; an older GX has none)."""
    value = getattr(config, "severity", None)
    value = getattr(value, "value", value)
    return value if value in SEVERITIES else CRITICAL
