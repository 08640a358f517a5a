"""The private or internal Prefect, Great Expectations and pyiceberg symbols flows/ still relies on, one case each.

Everything else goes through public APIs. Each case here has no public replacement (or one that costs too much,
see P3), so an upgrade that moves, renames or reshapes it must fail here, with a message naming the symbol, what our
code relies on, where, and the version range it was tested with: not somewhere deep in a gate run, or silently (a
pydantic message text that no longer matches just changes the CLI's wording).

A check returns None when the installed package still has the shape we rely on, else a description of what it
found. Add a case when you reach for an underscore name or a non-exported module of these packages; delete it when
the code stops using the symbol.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    """Distribution name -> its version range, as pyproject.toml pins it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*(.*)", requirement)
        assert match, requirement
        pins[match.group(1).lower().replace("_", "-")] = match.group(3).split(";")[0].strip()
    return pins


PINS = _pins()


def resolve(dotted: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then attributes (static lookup, so a
    staticmethod stays a staticmethod)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = inspect.getattr_static(obj, name)
        return obj
    raise ImportError(f"no module in {dotted}")


def params(obj: Any) -> list[str]:
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    return list(inspect.signature(obj).parameters)


def expect_params(dotted: str, expected: list[str], *, exact: bool = True) -> Callable[[], str | None]:
    def check() -> str | None:
        found = params(resolve(dotted))
        ok = found == expected if exact else set(expected) <= set(found)
        return None if ok else f"parameters {found}"

    return check


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class Contract:
    symbol: str  # the dotted path
    package: str  # its distribution, for the pinned range
    relies_on: str  # what our code needs of it, in words
    used_by: str  # where
    check: Callable[[], str | None]  # None, or what the installed version has instead

    def failure(self, found: str) -> str:
        return (
            f"{self.symbol} changed: {found}; {self.relies_on} expected "
            f"(used by {self.used_by}; tested with {self.package}{PINS[self.package]}, "
            f"installed {version(self.package)})"
        )


# ------------------------------------------------------------------------------------------------------ Prefect
def _settings_context_fields() -> str | None:
    from prefect.context import SettingsContext, get_settings_context

    found = params(SettingsContext)
    if not {"profile", "settings"} <= set(found):
        return f"constructor parameters {found}"
    current = get_settings_context()
    if not (isinstance(current, SettingsContext) and hasattr(current, "profile") and hasattr(current, "settings")):
        return f"get_settings_context() returned {current!r}"
    return None


def _fields_set_tracks_env() -> str | None:
    """gate_settings applies its defaults only where `model_fields_set` says the user set nothing."""
    from prefect.settings import Settings

    for env, group, name in [
        ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "flows", "heartbeat_frequency"),
    ]:
        fields = Settings.model_fields[group].annotation.model_fields  # type: ignore[union-attr]
        if name not in fields:
            return f"Settings.{group} has no field {name!r} (fields {sorted(fields)})"
        with environ(**{env: "45"}):  # the heartbeat needs >= 30
            set_by_user = name in getattr(Settings(), group).model_fields_set
        with environ(**{env: None}):
            unset = name not in getattr(Settings(), group).model_fields_set
        if not (set_by_user and unset):
            return f"Settings().{group}.model_fields_set does not tell whether {env} was set"
    return None


def _drain_all_covers_every_service() -> str | None:
    from prefect._internal.concurrency.services import QueueService
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    if EventsWorker.drain_all.__func__ is not QueueService.drain_all.__func__:  # type: ignore[attr-defined]
        return "EventsWorker overrides drain_all"
    if not (APILogWorker._instances is EventsWorker._instances is QueueService._instances):
        return "the log and events workers no longer share one instance registry"
    if "timeout" not in params(EventsWorker.drain_all):
        return f"drain_all parameters {params(EventsWorker.drain_all)}"
    return None


# ------------------------------------------------------------------------------------------- Great Expectations
def _gx_engine_resolve_metrics() -> str | None:
    from great_expectations.execution_engine import PandasExecutionEngine

    found = params(PandasExecutionEngine.resolve_metrics)
    return (
        None if found == ["self", "metrics_to_resolve", "metrics", "runtime_configuration"] else f"parameters {found}"
    )


def _gx_fingerprint_marker() -> str | None:
    from great_expectations.execution_engine import PandasExecutionEngine

    method = PandasExecutionEngine.get_batch_data_and_markers
    if params(method) != ["self", "batch_spec"]:
        return f"parameters {params(method)}"
    if '"pandas_data_fingerprint"' not in inspect.getsource(method):
        return "no 'pandas_data_fingerprint' batch marker"
    return None


def _gx_load_batch_data_frame() -> str | None:
    import pandas as pd
    from great_expectations.execution_engine import PandasExecutionEngine

    engine = PandasExecutionEngine()
    engine.load_batch_data("plan", pd.DataFrame({"a": pd.Series([], dtype="int64")}))
    data = engine.batch_manager.active_batch_data
    return None if list(data.dataframe.columns) == ["a"] else f"the active batch holds {data!r}"


def _gx_override_hook() -> str | None:
    from great_expectations.datasource.fluent import PandasDatasource

    class_vars = getattr(PandasDatasource, "__class_vars__", set())
    return None if "execution_engine_override" in class_vars else f"class vars {sorted(class_vars)}"


def _gx_validation_dependencies() -> str | None:
    import great_expectations.expectations as gxe
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.validator.metric_configuration import MetricConfiguration

    method = gxe.ExpectColumnValuesToNotBeNull.get_validation_dependencies
    if not {"execution_engine", "runtime_configuration"} <= set(params(method)):
        return f"parameters {params(method)}"
    configuration = gxe.ExpectColumnValuesToNotBeNull(column="a").configuration
    expectation = configuration.to_domain_obj()
    dependencies = expectation.get_validation_dependencies(
        execution_engine=PandasExecutionEngine(), runtime_configuration={"result_format": "SUMMARY"}
    )
    metrics = list(dependencies.get_metric_configurations())
    if not metrics or not all(isinstance(m, MetricConfiguration) for m in metrics):
        return f"get_metric_configurations() gave {metrics!r}"
    return None


def _gx_metric_configuration() -> str | None:
    from great_expectations.validator.metric_configuration import MetricConfiguration

    metric = MetricConfiguration("column_values.nonnull.unexpected_count", {"column": "a"}, {"result_format": {}})
    missing = [
        a for a in ("metric_name", "metric_domain_kwargs", "metric_value_kwargs", "id") if not hasattr(metric, a)
    ]
    if missing:
        return f"no attribute(s) {missing}"
    if metric.metric_domain_kwargs.get("column") != "a" or not isinstance(metric.id, tuple):
        return f"domain {metric.metric_domain_kwargs!r}, id {metric.id!r}"
    return None


def _gx_checkpoint_keys() -> str | None:
    """On a copy of the repo's gx/ project: the checkpoint names, without loading the checkpoints."""
    import shutil
    import tempfile

    import great_expectations as gx
    from great_expectations.data_context import project_manager, set_context

    try:
        previous = project_manager.get_current_project()
    except Exception:  # there was none
        previous = None
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(ROOT / "gx", Path(scratch) / "gx")
        try:
            context = gx.get_context(mode="file", context_root_dir=Path(scratch) / "gx")
            names = sorted(str(key.to_tuple()[0]) for key in context.checkpoint_store.list_keys())
        finally:
            set_context(previous)  # get_context made the scratch project GX's current one
    return None if "titanic" in names else f"checkpoint names {names}"


def _gx_exception_info_shape() -> str | None:
    """audit's failure text reads `exception_message` from exception_info, top level or keyed by metric id."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("contract")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": pd.DataFrame({"a": [1]})})
    )
    info = batch.validate(gxe.ExpectColumnValuesToNotBeNull(column="missing")).exception_info or {}
    if "raised_exception" not in info:
        info = next(iter(info.values()), {}) if info else {}
    return None if isinstance(info, dict) and info.get("exception_message") else f"exception_info {info!r}"


def _gx_suite_schema() -> str | None:
    import marshmallow
    from great_expectations.core import ExpectationSuiteSchema
    from great_expectations.core.expectation_suite import ExpectationSuiteSchema as defined

    if ExpectationSuiteSchema is not defined:
        return "great_expectations.core.ExpectationSuiteSchema is another class"
    try:
        ExpectationSuiteSchema().load({"name": 1, "expectations": "x"})
    except marshmallow.ValidationError as exc:
        return None if set(exc.messages) == {"name", "expectations"} else f"messages {exc.messages!r}"
    return "load() accepted a malformed suite"


def _gx_registry() -> str | None:
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    if "expect_column_values_to_not_be_null" not in list_registered_expectation_implementations():
        return "list_registered_expectation_implementations() lacks expect_column_values_to_not_be_null"
    if not inspect.isclass(get_expectation_impl("expect_column_values_to_not_be_null")):
        return "get_expectation_impl() does not return the class"
    try:
        get_expectation_impl("expect_no_such_thing")
    except ExpectationNotFoundError:
        return None
    return "an unknown expectation type does not raise ExpectationNotFoundError"


def _pydantic_v1_messages() -> str | None:
    import great_expectations.expectations as gxe
    from great_expectations.compatibility.pydantic import ValidationError

    found: dict[str, set[str]] = {}
    for make in (
        lambda: gxe.ExpectColumnValuesToNotBeNull(colum="x"),  # type: ignore[call-arg]
        lambda: gxe.ExpectColumnValuesToBeBetween(column="a", min_value="x"),
    ):
        try:
            make()
        except ValidationError as exc:
            for error in exc.errors():
                found.setdefault(str(error["loc"][0]), set()).add(error["msg"])
    wanted = {
        "colum": "extra fields not permitted",
        "column": "field required",
        "min_value": "value is not a valid dict",
    }
    wrong = {k: sorted(found.get(k, ())) for k, msg in wanted.items() if msg not in found.get(k, ())}
    return None if not wrong else f"messages by field {wrong}"


def _pydantic_v1_fields() -> str | None:
    import great_expectations.expectations as gxe

    fields = getattr(gxe.ExpectColumnValuesToNotBeNull, "__fields__", {})
    if "column" not in fields or "mostly" not in fields:
        return f"__fields__ {sorted(fields)}"
    body = gxe.ExpectColumnValuesToNotBeNull(column="a").dict(exclude={"id", "rendered_content"})
    return None if body.get("column") == "a" and "id" not in body else f".dict(exclude=...) gave {body!r}"


def _gx_project_manager() -> str | None:
    from great_expectations.data_context import project_manager, set_context
    from great_expectations.data_context.data_context.context_factory import project_manager as defined

    if project_manager is not defined or not callable(getattr(project_manager, "get_current_project", None)):
        return "great_expectations.data_context.project_manager has no get_current_project()"
    return None if params(set_context) == ["project"] else f"set_context parameters {params(set_context)}"


def _gx_stores() -> str | None:
    from great_expectations.data_context.data_context.abstract_data_context import AbstractDataContext
    from great_expectations.data_context.store import (
        CheckpointStore,
        ExpectationsStore,
        Store,
        ValidationDefinitionStore,
    )

    for name in ("expectations_store", "validation_definition_store", "checkpoint_store"):
        if not hasattr(AbstractDataContext, name):
            return f"AbstractDataContext has no {name}"
    for store in (ExpectationsStore, ValidationDefinitionStore, CheckpointStore):
        if not {"name", "id"} <= set(params(store.get_key)):
            return f"{store.__name__}.get_key parameters {params(store.get_key)}"
    for method in ("add", "update", "add_or_update"):
        if not {"key", "value"} <= set(params(getattr(Store, method))):
            return f"Store.{method} parameters {params(getattr(Store, method))}"
    for method in ("has_key", "remove_key"):
        if not callable(getattr(Store, method, None)):
            return f"Store has no {method}()"
    return None


# ---------------------------------------------------------------------------------------------------- pyiceberg
def _convert_schema() -> str | None:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.schema import Schema

    method = inspect.getattr_static(Catalog, "_convert_schema_if_needed")
    if not isinstance(method, staticmethod):
        return f"not a staticmethod: {method!r}"
    signature = inspect.signature(method.__func__)
    if list(signature.parameters)[0] != "schema":
        return f"parameters {list(signature.parameters)}"
    converted = Catalog._convert_schema_if_needed(pa.schema([("a", pa.int64())]))
    return None if isinstance(converted, Schema) else f"returned {converted!r}"


def _staged_io_from_properties() -> str | None:
    from pyiceberg.catalog import MetastoreCatalog

    if "_load_file_io" not in inspect.getsource(MetastoreCatalog._update_and_stage_table):
        return "_update_and_stage_table no longer builds the staged IO with _load_file_io"
    if "self.properties" not in inspect.getsource(MetastoreCatalog._load_file_io):
        return "_load_file_io no longer reads the catalog's self.properties"
    return None


def _staged_table() -> str | None:
    from pyiceberg.table import StagedTable, Table

    if not issubclass(StagedTable, Table):
        return "StagedTable is not a Table"
    found = params(Table.__init__)[:6]
    expected = ["self", "identifier", "metadata", "metadata_location", "io", "catalog"]
    return None if found == expected else f"Table.__init__ parameters {found}"


def _upstream_projection_list() -> str | None:
    from flows.lakehouse import pyiceberg_fixes

    found = params(pyiceberg_fixes._upstream_list)
    return None if found == ["self", "list_type", "list_array", "value_array"] else f"parameters {found}"


def _upstream_projection_map() -> str | None:
    from flows.lakehouse import pyiceberg_fixes

    found = params(pyiceberg_fixes._upstream_map)
    expected = ["self", "map_type", "map_array", "key_result", "value_result"]
    return None if found == expected else f"parameters {found}"


def _pyiceberg_fix_still_needed() -> str | None:
    import pyiceberg

    return None if pyiceberg.__version__.startswith("0.12.") else f"version {pyiceberg.__version__}"


def _parse_location() -> str | None:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    method = inspect.getattr_static(PyArrowFileIO, "parse_location")
    if not isinstance(method, staticmethod):
        return f"not a staticmethod: {method!r}"
    found = params(method)
    return None if found[:2] == ["location", "properties"] else f"parameters {found}"


def _fs_by_scheme() -> str | None:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    fs_by_scheme = getattr(PyArrowFileIO(), "fs_by_scheme", None)
    if not callable(fs_by_scheme):
        return "PyArrowFileIO() has no fs_by_scheme"
    return None if params(fs_by_scheme)[:2] == ["scheme", "netloc"] else f"parameters {params(fs_by_scheme)}"


def _ref_catalog_abstracts() -> str | None:
    from pyiceberg.catalog import MetastoreCatalog

    from flows.lakehouse.catalog import RefCatalog

    missing = sorted(MetastoreCatalog.__abstractmethods__ - set(vars(RefCatalog)))
    return None if not missing else f"abstract methods {missing} that RefCatalog does not define"


PREFECT, GX, ICEBERG = "prefect", "great-expectations", "pyiceberg"
CONTRACTS = [
    # Prefect. P3: temporary_settings(set_defaults=...) does the same job, but copies Prefect's settings on every
    # gate run (47-178 ms measured, 10-35% of a warm 0.5 s gate run); gate_settings caches the copy instead.
    Contract(
        "prefect.context.SettingsContext",
        PREFECT,
        "SettingsContext(profile=, settings=) entered as a context manager, and get_settings_context()",
        "flows/gate/runtime.py (gate_settings)",
        _settings_context_fields,
    ),
    Contract(
        "prefect.settings.Settings.copy_with_update",
        PREFECT,
        "a method taking updates=",
        "flows/gate/runtime.py (gate_settings)",
        expect_params("prefect.settings.Settings.copy_with_update", ["self", "updates"], exact=False),
    ),
    Contract(
        "prefect.settings.Settings.flows.heartbeat_frequency (model_fields_set)",
        PREFECT,
        "the fields exist and model_fields_set names them only when the user set them",
        "flows/gate/runtime.py (gate_settings)",
        _fields_set_tracks_env,
    ),
    Contract(
        "prefect._internal.concurrency.services.QueueService.drain_all (via EventsWorker.drain_all)",
        PREFECT,
        "EventsWorker.drain_all(timeout=) drains every queue service, the API log worker too",
        "flows/cli/common.py (_drain_prefect_services)",
        _drain_all_covers_every_service,
    ),
    # Great Expectations: the pushdown's engine hooks (flows/audit/pushdown.py).
    Contract(
        "great_expectations.execution_engine.ExecutionEngine.resolve_metrics",
        GX,
        "parameters ['self', 'metrics_to_resolve', 'metrics', 'runtime_configuration'] (overridden)",
        "flows/audit/pushdown.py (PushdownPandasExecutionEngine)",
        _gx_engine_resolve_metrics,
    ),
    Contract(
        "great_expectations.execution_engine.PandasExecutionEngine.get_batch_data_and_markers",
        GX,
        "parameters ['self', 'batch_spec'] (overridden) and a 'pandas_data_fingerprint' marker",
        "flows/audit/pushdown.py (PushdownPandasExecutionEngine)",
        _gx_fingerprint_marker,
    ),
    Contract(
        "great_expectations.execution_engine.PandasExecutionEngine.load_batch_data",
        GX,
        "load_batch_data(batch_id, a DataFrame) wraps the frame itself",
        "flows/audit/pushdown.py (plan)",
        _gx_load_batch_data_frame,
    ),
    Contract(
        "great_expectations.datasource.fluent.PandasDatasource.execution_engine_override",
        GX,
        "a class variable that GX reads to build the datasource's engine",
        "flows/audit/pushdown.py (install)",
        _gx_override_hook,
    ),
    Contract(
        "great_expectations.expectations.expectation.Expectation.get_validation_dependencies",
        GX,
        "to_domain_obj().get_validation_dependencies(execution_engine=, runtime_configuration=)"
        ".get_metric_configurations() lists MetricConfiguration objects",
        "flows/audit/pushdown.py (plan)",
        _gx_validation_dependencies,
    ),
    Contract(
        "great_expectations.validator.metric_configuration.MetricConfiguration",
        GX,
        "attributes metric_name, metric_domain_kwargs, metric_value_kwargs and a tuple id",
        "flows/audit/pushdown.py",
        _gx_metric_configuration,
    ),
    # Great Expectations: audit and suite tooling.
    Contract(
        "great_expectations.data_context.AbstractDataContext.checkpoint_store.list_keys",
        GX,
        "checkpoint_store.list_keys() whose keys' to_tuple()[0] is the checkpoint name",
        "flows/audit/checkpoint.py (checkpoint names in an error)",
        _gx_checkpoint_keys,
    ),
    Contract(
        "great_expectations.core.expectation_validation_result.ExpectationValidationResult.exception_info",
        GX,
        "exception_message at the top level or under a metric id, for a missing column",
        "flows/audit/checkpoint.py (_outcome)",
        _gx_exception_info_shape,
    ),
    Contract(
        "great_expectations.core.ExpectationSuiteSchema",
        GX,
        "the marshmallow schema GX's store loads suites with, raising ValidationError with messages by field",
        "flows/suite/check.py (check_suite_file)",
        _gx_suite_schema,
    ),
    Contract(
        "great_expectations.expectations.registry.get_expectation_impl / list_registered_expectation_implementations",
        GX,
        "the class by type name, ExpectationNotFoundError for an unknown one, and the list of names",
        "flows/suite/check.py (type check with 'did you mean')",
        _gx_registry,
    ),
    Contract(
        "great_expectations.compatibility.pydantic.ValidationError (pydantic v1 message texts)",
        GX,
        "msg texts 'extra fields not permitted', 'field required', 'value is not a valid dict' by field",
        "flows/suite/check.py (_argument_errors)",
        _pydantic_v1_messages,
    ),
    Contract(
        "great_expectations.expectations.Expectation.__fields__ / .dict(exclude=)",
        GX,
        "pydantic v1 model fields, and dict(exclude=) without the excluded keys",
        "flows/suite/check.py (allowed arguments), flows/audit/gx_project.py (reuse_expectation_ids)",
        _pydantic_v1_fields,
    ),
    Contract(
        "great_expectations.data_context.project_manager.get_current_project / set_context",
        GX,
        "project_manager.get_current_project() and set_context(project)",
        "flows/suite/init.py (_stage_gx_files restores GX's current project)",
        _gx_project_manager,
    ),
    Contract(
        "great_expectations.data_context.store.Store (expectations/validation definition/checkpoint stores)",
        GX,
        "get_key(name=, id=), has_key, remove_key, add/update/add_or_update(key=, value=)",
        "flows/suite/init.py (writes each GX file once)",
        _gx_stores,
    ),
    Contract(
        "great_expectations.checkpoint.checkpoint.Checkpoint._run_actions",
        GX,
        "parameters ['self', 'checkpoint_result']: runs the checkpoint's actions on a CheckpointResult",
        "flows/audit/checkpoint.py (_run_stored runs each validation definition on its own data)",
        expect_params(
            "great_expectations.checkpoint.checkpoint.Checkpoint._run_actions", ["self", "checkpoint_result"]
        ),
    ),
    Contract(
        "great_expectations.expectations.core.expect_column_quantile_values_to_be_between."
        "ExpectColumnQuantileValuesToBeBetween._validate",
        GX,
        "parameters ['self', 'metrics', 'runtime_configuration', 'execution_engine'], answering a dict with 'success'",
        "flows/audit/gx_fixes.py (its np.bool_ success made a plain bool)",
        expect_params(
            "great_expectations.expectations.core.expect_column_quantile_values_to_be_between."
            "ExpectColumnQuantileValuesToBeBetween._validate",
            ["self", "metrics", "runtime_configuration", "execution_engine"],
        ),
    ),
    # pyiceberg: the embedded catalog (flows/lakehouse/catalog.py) and the projection fix.
    Contract(
        "pyiceberg.catalog.Catalog._convert_schema_if_needed",
        ICEBERG,
        "a staticmethod taking schema first that turns an Arrow schema into an Iceberg Schema",
        "flows/lakehouse/catalog.py (create_table), flows/lakehouse/sources.py, flows/lakehouse/conform.py",
        _convert_schema,
    ),
    Contract(
        "pyiceberg.catalog.MetastoreCatalog._update_and_stage_table",
        ICEBERG,
        "parameters ['self', 'current_table', 'table_identifier', 'requirements', 'updates']",
        "flows/lakehouse/catalog.py (commit_table)",
        expect_params(
            "pyiceberg.catalog.MetastoreCatalog._update_and_stage_table",
            ["self", "current_table", "table_identifier", "requirements", "updates"],
        ),
    ),
    Contract(
        "pyiceberg.catalog.MetastoreCatalog._load_file_io",
        ICEBERG,
        "the staged table's IO is built from the catalog's self.properties (where the recorded roots are)",
        "flows/lakehouse/catalog.py (commit_table through _update_and_stage_table)",
        _staged_io_from_properties,
    ),
    Contract(
        "pyiceberg.table.StagedTable",
        ICEBERG,
        "a Table built as Table(identifier, metadata, metadata_location, io, catalog)",
        "flows/lakehouse/catalog.py (load_table, commit_table)",
        _staged_table,
    ),
    Contract(
        "pyiceberg.catalog.MetastoreCatalog.__abstractmethods__",
        ICEBERG,
        "every abstract method defined by RefCatalog",
        "flows/lakehouse/catalog.py (RefCatalog)",
        _ref_catalog_abstracts,
    ),
    Contract(
        "pyiceberg.io.pyarrow.PyArrowFileIO.parse_location",
        ICEBERG,
        "a staticmethod taking (location, properties)",
        "flows/lakehouse/catalog.py (RelocatingFileIO)",
        _parse_location,
    ),
    Contract(
        "pyiceberg.io.pyarrow.PyArrowFileIO.fs_by_scheme",
        ICEBERG,
        "an instance attribute callable as fs_by_scheme(scheme, netloc)",
        "flows/lakehouse/catalog.py (RelocatingFileIO)",
        _fs_by_scheme,
    ),
    Contract(
        "pyiceberg.io.pyarrow.PyArrowFile.__init__",
        ICEBERG,
        "keyword parameters location, path, fs, buffer_size",
        "flows/lakehouse/catalog.py (RelocatingFileIO)",
        expect_params(
            "pyiceberg.io.pyarrow.PyArrowFile.__init__", ["location", "path", "fs", "buffer_size"], exact=False
        ),
    ),
    Contract(
        "pyiceberg.io.pyarrow.ArrowProjectionVisitor.list",
        ICEBERG,
        "parameters ['self', 'list_type', 'list_array', 'value_array'] (monkeypatched)",
        "flows/lakehouse/pyiceberg_fixes.py",
        _upstream_projection_list,
    ),
    Contract(
        "pyiceberg.io.pyarrow.ArrowProjectionVisitor.map",
        ICEBERG,
        "parameters ['self', 'map_type', 'map_array', 'key_result', 'value_result'] (monkeypatched)",
        "flows/lakehouse/pyiceberg_fixes.py",
        _upstream_projection_map,
    ),
    Contract(
        "pyiceberg.io.pyarrow.ArrowProjectionVisitor._cast_if_needed",
        ICEBERG,
        "parameters ['self', 'field', 'values']",
        "flows/lakehouse/pyiceberg_fixes.py",
        expect_params("pyiceberg.io.pyarrow.ArrowProjectionVisitor._cast_if_needed", ["self", "field", "values"]),
    ),
    Contract(
        "pyiceberg.io.pyarrow.ArrowProjectionVisitor._construct_field",
        ICEBERG,
        "parameters ['self', 'field', 'arrow_type']",
        "flows/lakehouse/pyiceberg_fixes.py",
        expect_params("pyiceberg.io.pyarrow.ArrowProjectionVisitor._construct_field", ["self", "field", "arrow_type"]),
    ),
    Contract(
        "pyiceberg.__version__ (apache/iceberg-python#3833 workaround)",
        ICEBERG,
        "pyiceberg 0.12.x, the version whose list/map projection drops null masks; on another version, check "
        "whether #3833 is fixed and drop flows/lakehouse/pyiceberg_fixes.py if it is",
        "flows/lakehouse/pyiceberg_fixes.py",
        _pyiceberg_fix_still_needed,
    ),
]


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.symbol.split(" ")[0] for c in CONTRACTS])
def test_upstream_symbol_has_the_shape_we_rely_on(contract: Contract) -> None:
    try:
        found = contract.check()
    except Exception as exc:  # moved or removed: ImportError, AttributeError, a TypeError from a new signature
        found = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    assert found is None, contract.failure(found)


def test_every_contract_names_a_pinned_package() -> None:
    assert {c.package for c in CONTRACTS} <= set(PINS), sorted({c.package for c in CONTRACTS} - set(PINS))
