"""Suite authoring (`wap suite ...`): list, show, check, init and diff the expectation suites in ``gx/``.

People who edit suites edit JSON, so everything here except ``init`` works on GX's JSON files directly:
GX's own loader stops at the first problem (or, for an unknown expectation type, silently drops the
expectation and audits with the rest), while ``check_suites`` reports every problem with its file and
expectation. Types and arguments are still validated by GX itself: its marshmallow schema for the file
structure, its expectation registry and the expectations' pydantic models for types and arguments.

GX, pyarrow and the lakehouse are imported inside the functions that need them: importing GX costs
seconds, and ``wap suite list/show/diff`` never need it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from .audit import AuditConfigError
from .datasets import Dataset, DatasetError, datasets_file, gx_dir, load_datasets, save_dataset, validate_dataset_name
from .lakehouse.names import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    import pyarrow as pa
    from great_expectations.core import ExpectationSuite

SUITES_DIR = "expectations"
VALIDATION_DEFINITIONS_DIR = "validation_definitions"
CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "great_expectations.yml"

# Profiling (`init`) knobs. Margins are deliberately generous: a starter suite that blocks the next
# normal load teaches people to ignore the gate; they tighten it once they know their data.
MAX_CATEGORIES = 20  # a text column with at most this many distinct values gets a value set
MAX_INT_CATEGORIES = 5  # integer codes (flags, classes) get a value set; wider integer domains get a range
# Numeric bounds are widened by half the observed span on each side: a sample's extremes understate the
# real ones (heavy tails), and the bounds are meant to catch sign, unit and scale errors (x10, x100).
RANGE_MARGIN = 0.5
ROW_COUNT_FACTOR = 10  # the row-count range allows 10x fewer or more rows than profiled
UNIQUE_SAMPLE_ROWS = 2_000_000  # uniqueness of id columns is judged on at most this many rows (memory bound)

# Column names that look like identifiers: `id`, `order_id`, `ORDER_ID`, `PassengerId`, `userUUID`.
_ID_NAME = re.compile(r"(?i:^(?:id|uuid|key)$|_(?:id|uuid|key)$)|[a-z0-9](?:Id|ID|Uuid|UUID|Key)$")
# Arguments that name columns, for the schema check and for display.
_COLUMN_ARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_ARGS = ("column_list", "column_set")


class SuiteError(ValueError):
    """A suite that cannot be found or read, or that `init` would overwrite (exit 2 in the CLI)."""


# ============================================================================ the JSON files of a project
@dataclass
class GxFile:
    """One GX JSON file: a suite, a validation definition or a checkpoint."""

    kind: str  # "suite", "validation definition", "checkpoint"
    name: str  # the store key GX looks it up by (derived from the path, as GX does)
    path: Path
    data: dict[str, Any] | None  # None when the file cannot be parsed
    error: str | None = None  # why it cannot be parsed

    @property
    def expectations(self) -> list[Any]:
        raw = (self.data or {}).get("expectations")
        return raw if isinstance(raw, list) else []


@dataclass
class GxProject:
    """The committed part of a GX file context (``gx/``) as plain JSON, plus the dataset declarations."""

    root: Path
    suites: dict[str, GxFile]
    validation_definitions: dict[str, GxFile]
    checkpoints: dict[str, GxFile]
    # datasource -> asset -> batch definition names, from great_expectations.yml (None: unreadable)
    datasources: dict[str, dict[str, set[str]]] | None
    config_error: str | None
    datasets_path: Path
    datasets: dict[str, Dataset]
    datasets_error: str | None

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    def suite_path(self, name: str) -> Path:
        # GX's suite keys split the name on dots into directories: "a.b" lives in expectations/a/b.json.
        return self.root.joinpath(SUITES_DIR, *name.split(".")).with_suffix(".json")

    def validation_definition_path(self, name: str) -> Path:
        return self.root / VALIDATION_DEFINITIONS_DIR / f"{name}.json"

    def checkpoint_path(self, name: str) -> Path:
        return self.root / CHECKPOINTS_DIR / f"{name}.json"

    def validation_definitions_of(self, checkpoint: str) -> list[str]:
        """Names of the validation definitions a checkpoint points to (whether they exist or not)."""
        file = self.checkpoints.get(checkpoint)
        refs = (file.data or {}).get("validation_definitions") if file else None
        return [n for n in (_ref_name(r) for r in refs or [] if isinstance(refs, list)) if n]

    def suite_of(self, validation_definition: str) -> str | None:
        file = self.validation_definitions.get(validation_definition)
        return _ref_name((file.data or {}).get("suite")) if file else None

    def suites_of_checkpoint(self, checkpoint: str) -> list[str]:
        names = (self.suite_of(vd) for vd in self.validation_definitions_of(checkpoint))
        return list(dict.fromkeys(n for n in names if n))

    def checkpoints_using(self, suite: str) -> list[str]:
        return sorted(cp for cp in self.checkpoints if suite in self.suites_of_checkpoint(cp))

    def datasets_using(self, suite: str) -> list[str]:
        return sorted(d.name for d in self.datasets.values() if suite in self.suites_of_checkpoint(d.checkpoint))


def _ref_name(ref: Any) -> str | None:
    """The name in a ``{"id": ..., "name": ...}`` reference; GX's file stores look objects up by name."""
    name = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) and name else None


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text: {exc.reason}"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if not isinstance(data, dict):
        return None, f"expected a JSON object at the top level, found {type(data).__name__}"
    return data, None


def _json_files(folder: Path, kind: str, *, nested: bool) -> dict[str, GxFile]:
    files: dict[str, GxFile] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*.json") if nested else folder.glob("*.json")):
        name = ".".join(path.relative_to(folder).with_suffix("").parts)
        data, error = _read_json(path)
        files[name] = GxFile(kind, name, path, data, error)
    return files


def _datasources(config_path: Path) -> tuple[dict[str, dict[str, set[str]]] | None, str | None]:
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return None, f"cannot parse: {' '.join(str(exc).split())[:300]}"
    if not isinstance(config, dict):
        return None, "expected a YAML mapping at the top level"
    sources: dict[str, dict[str, set[str]]] = {}
    for ds_name, ds in (config.get("fluent_datasources") or {}).items():
        assets = (ds or {}).get("assets") or {} if isinstance(ds, dict) else {}
        sources[str(ds_name)] = {
            str(asset_name): set(((asset or {}).get("batch_definitions") or {}) if isinstance(asset, dict) else ())
            for asset_name, asset in (assets.items() if isinstance(assets, dict) else ())
        }
    return sources, None


def load_project(root: Path | str | None = None, datasets_path: Path | None = None) -> GxProject:
    """Read every suite, validation definition and checkpoint under ``root`` (default: ``gx_dir()``).

    Never raises for a broken file (the file carries its error); raises AuditConfigError when ``root``
    is not a GX project at all.
    """
    root = Path(root if root is not None else gx_dir()).expanduser()
    if not (root / CONFIG_FILE).is_file():
        raise AuditConfigError(f"no Great Expectations project at {root} (missing {CONFIG_FILE})")
    datasources, config_error = _datasources(root / CONFIG_FILE)
    datasets_path = datasets_path or datasets_file()
    datasets: dict[str, Dataset] = {}
    datasets_error = None
    if datasets_path.exists():
        try:
            datasets = load_datasets(datasets_path)
        except (DatasetError, ValueError) as exc:  # InvalidNameError is a ValueError too
            datasets_error = " ".join(str(exc).split())
    return GxProject(
        root=root,
        suites=_json_files(root / SUITES_DIR, "suite", nested=True),
        validation_definitions=_json_files(root / VALIDATION_DEFINITIONS_DIR, "validation definition", nested=False),
        checkpoints=_json_files(root / CHECKPOINTS_DIR, "checkpoint", nested=False),
        datasources=datasources,
        config_error=config_error,
        datasets_path=datasets_path,
        datasets=datasets,
        datasets_error=datasets_error,
    )


def display_path(path: Path) -> str:
    """A path as users would type it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_suite(dataset: str, project: GxProject) -> tuple[str, Dataset | None]:
    """The suite that audits ``dataset``: dataset -> checkpoint -> validation definition -> suite.

    A name that is not a declared dataset but is a suite name is accepted too (a suite being drafted).
    """
    spec = project.datasets.get(dataset)
    if spec is None:
        if dataset in project.suites:
            return dataset, None
        if project.datasets_error:
            raise DatasetError(project.datasets_error)
        known = ", ".join(sorted(set(project.datasets) | set(project.suites))) or "none"
        raise DatasetError(f"unknown dataset {dataset!r:.80} (datasets and suites: {known})")
    if spec.checkpoint not in project.checkpoints:
        raise SuiteError(
            f"dataset {dataset!r} uses checkpoint {spec.checkpoint!r}, which does not exist "
            f"({display_path(project.checkpoint_path(spec.checkpoint))}); see `wap suite check`"
        )
    suites = project.suites_of_checkpoint(spec.checkpoint)
    if not suites:
        raise SuiteError(
            f"checkpoint {spec.checkpoint!r} of dataset {dataset!r} leads to no suite; see `wap suite check {dataset}`"
        )
    return suites[0], spec  # the gate allows exactly one validation definition per checkpoint


# ============================================================================================ list / show
@dataclass(frozen=True)
class SuiteSummary:
    name: str
    path: Path
    expectations: int | None  # None: the file cannot be parsed
    datasets: list[str]
    checkpoints: list[str]
    error: str | None = None


def list_suites(project: GxProject | None = None) -> list[SuiteSummary]:
    project = project or load_project()
    return [
        SuiteSummary(
            name=name,
            path=file.path,
            expectations=None if file.data is None else len(file.expectations),
            datasets=project.datasets_using(name),
            checkpoints=project.checkpoints_using(name),
            error=file.error,
        )
        for name, file in sorted(project.suites.items())
    ]


@dataclass(frozen=True)
class ExpectationView:
    """One expectation as people read it; ``arguments`` excludes the column(s) and ``mostly``."""

    index: int
    type: str
    column: str | None  # None: a table-level expectation
    arguments: dict[str, Any]
    mostly: float | None
    notes: str | None
    meta: dict[str, Any]  # meta other than notes
    id: str | None


@dataclass(frozen=True)
class SuiteView:
    name: str
    path: Path
    dataset: str | None
    checkpoints: list[str]
    notes: str | None
    expectations: list[ExpectationView]


def column_of(kwargs: dict[str, Any], kind: Any = None) -> str | None:
    """The column(s) an expectation is about, for display and matching; None for table expectations."""
    if isinstance(kind, str) and kind.startswith("expect_table_"):
        return None  # a table's column_list/column_set is the contract, not the expectation's subject
    if isinstance(kwargs.get("column"), str):
        return kwargs["column"]
    if "column_A" in kwargs or "column_B" in kwargs:
        return f"{kwargs.get('column_A')}, {kwargs.get('column_B')}"
    if isinstance(kwargs.get("column_list"), list) and not kwargs.get("column_index"):
        return ", ".join(map(str, kwargs["column_list"]))
    return None


def notes_text(meta: Any, notes: Any = None) -> str | None:
    """GX keeps notes in ``meta.notes`` ({"format", "content": [...]}) or, since 1.x, a top-level ``notes``."""
    for value in ((meta or {}).get("notes") if isinstance(meta, dict) else None, notes):
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, list):
            value = " ".join(map(str, value))
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _view(index: int, raw: Any) -> ExpectationView:
    raw = raw if isinstance(raw, dict) else {}
    kwargs = raw.get("kwargs") if isinstance(raw.get("kwargs"), dict) else {}
    column = column_of(kwargs, raw.get("type"))
    hidden = {"mostly", "batch_id"} | ({"column", "column_A", "column_B"} if column else set())
    if column and "column_list" in kwargs:
        hidden.add("column_list")
    meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
    mostly = kwargs.get("mostly")
    return ExpectationView(
        index=index,
        type=str(raw.get("type", "?")),
        column=column,
        arguments={k: v for k, v in kwargs.items() if k not in hidden},
        mostly=mostly if isinstance(mostly, int | float) and not isinstance(mostly, bool) else None,
        notes=notes_text(meta, raw.get("notes")),
        meta={k: v for k, v in meta.items() if k != "notes"},
        id=raw.get("id") if isinstance(raw.get("id"), str) else None,
    )


def show_suite(dataset: str, project: GxProject | None = None) -> SuiteView:
    project = project or load_project()
    name, spec = resolve_suite(dataset, project)
    file = project.suites.get(name)
    if file is None:
        raise SuiteError(f"suite {name!r} does not exist ({display_path(project.suite_path(name))})")
    if file.data is None:
        raise SuiteError(f"cannot read {display_path(file.path)}: {file.error}")
    return SuiteView(
        name=name,
        path=file.path,
        dataset=spec.name if spec else None,
        checkpoints=project.checkpoints_using(name),
        notes=notes_text(file.data.get("meta"), file.data.get("notes")),
        expectations=[_view(i, e) for i, e in enumerate(file.expectations)],
    )


# ================================================================================================= check
@dataclass(frozen=True)
class Problem:
    """Something in a file that would break (error) or weaken (warning) a run of the gate."""

    path: Path
    message: str
    where: str | None = None  # e.g. "expectations[3] expect_column_values_to_be_between (column 'Agee')"
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{display_path(self.path)}:{where} {self.message}"


@dataclass(frozen=True)
class TableSchema:
    """The columns a dataset's table has (or will have), and where that knowledge comes from."""

    columns: tuple[str, ...]
    origin: str  # e.g. "table bauplan.titanic on main" or "source data/titanic.csv"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. which schema the columns were checked against
    files: list[Path] = field(default_factory=list)  # every file that was checked

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def source_schema(uri: str) -> TableSchema:
    """Columns of a CSV/Parquet source, inferred the way `create_table` infers them (no full read)."""
    from .lakehouse.sources import open_source

    with open_source(uri) as source:
        return TableSchema(tuple(source.schema.names), f"source {uri}")


def lakehouse_schema(spec: Dataset, backend: str, lakehouse: str) -> TableSchema | str:
    """Columns of the dataset's table on main, or why they are not available (a reason, not an error)."""
    from .lakehouse import MAIN, LakehouseError, connect

    if backend == "local" and not (Path(lakehouse).expanduser() / "catalog.db").is_file():
        return f"no lakehouse at {lakehouse}"  # connecting would create an empty one
    try:
        client = connect(backend, lakehouse)
        if not client.has_table(spec.table, MAIN, namespace=spec.namespace):
            return f"no table {spec.fqn} on {MAIN}"
        info = client.get_table(spec.table, MAIN, namespace=spec.namespace)
    except LakehouseError as exc:
        return f"cannot read table {spec.fqn} on {MAIN}: {' '.join(str(exc).split())[:200]}"
    return TableSchema(tuple(f.name for f in info.fields), f"table {spec.fqn} on {MAIN}")


def check_suites(
    dataset: str | None = None,
    *,
    source: str | None = None,
    backend: str = "local",
    lakehouse: str = ".lakehouse",
    project: GxProject | None = None,
    load_with_gx: bool = True,
) -> CheckReport:
    """Report everything in ``gx/`` that would break a run, without running any validation.

    ``dataset``: only its chain (declaration, checkpoint, validation definitions, suites); default all.
    Columns are checked against ``source`` (with a dataset) or else the dataset's table on main; when
    neither is available the report says so. ``load_with_gx``: finally load each checkpoint whose chain
    looked clean through GX itself, so anything GX rejects that these checks do not model still shows.
    """
    from .lakehouse import BACKENDS, InvalidNameError

    if backend not in BACKENDS:
        raise InvalidNameError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if source and not dataset:
        raise ValueError("--source needs a DATASET: its suite's columns are checked against that source")
    project = project or load_project()
    report = CheckReport()

    # ---- scope: one dataset's chain, or everything
    datasets: list[Dataset]
    if dataset is None:
        checkpoints, vds, suites = list(project.checkpoints), list(project.validation_definitions), list(project.suites)
        datasets = list(project.datasets.values())
    elif dataset in project.datasets:
        datasets = [project.datasets[dataset]]
        checkpoints = [datasets[0].checkpoint]
        vds = project.validation_definitions_of(checkpoints[0])
        suites = list(dict.fromkeys(s for vd in vds if (s := project.suite_of(vd))))
    elif dataset in project.suites:  # a suite being drafted, before any dataset declares it
        datasets, suites = [], [dataset]
        checkpoints = project.checkpoints_using(dataset)
        vds = [vd for vd in project.validation_definitions if project.suite_of(vd) == dataset]
    else:
        resolve_suite(dataset, project)  # raises the "unknown dataset" error listing what exists
        raise AssertionError("unreachable")

    # ---- structure and references
    report.files += [project.config_path, project.datasets_path]
    if project.config_error:
        report.problems.append(Problem(project.config_path, project.config_error))
    if project.datasets_error:
        report.problems.append(Problem(project.datasets_path, project.datasets_error))
    for declared in datasets:
        if declared.checkpoint not in project.checkpoints:
            missing = display_path(project.checkpoint_path(declared.checkpoint))
            report.problems.append(
                Problem(
                    project.datasets_path,
                    f"checkpoint {declared.checkpoint!r} does not exist ({missing})",
                    where=f"dataset {declared.name!r}",
                )
            )
    for name in checkpoints:
        report.problems += _check_checkpoint(project, name, report.files)
    for name in vds:
        report.problems += _check_validation_definition(project, name, report.files)

    # ---- suites: GX's schema, registry and models; columns against the schema of each dataset using them
    schemas: dict[str, TableSchema | str] = {}  # dataset -> its columns, or why they are unknown
    for declared in datasets:
        schemas[declared.name] = source_schema(source) if source else lakehouse_schema(declared, backend, lakehouse)
    if dataset is not None and source and not datasets:
        schemas[dataset] = source_schema(source)
    for name in suites:
        file = project.suites.get(name)
        if file is None:
            continue  # reported on the validation definition that points to it
        report.files.append(file.path)
        users = [d for d in schemas if d in project.datasets_using(name)]
        if not datasets and name in schemas:  # a drafted suite, checked against --source
            users = [name]
        report.problems += check_suite_file(file, [s for d in users if isinstance(s := schemas[d], TableSchema)])
        for d in users:
            known = schemas[d]
            if isinstance(known, TableSchema):
                report.notes.append(f"columns of {d} checked against {known.origin} ({len(known.columns)} columns)")
            else:
                report.notes.append(f"columns of {d} not checked: {known}; pass --source URI to check them")
        if not users:
            hint = "; pass --source URI to check them" if dataset else ""
            report.notes.append(f"columns of suite {name} not checked: no declared dataset uses it{hint}")

    # ---- last: what GX itself makes of each checkpoint whose chain looked clean
    if load_with_gx:
        report.problems += _load_with_gx(project, checkpoints, report.problems)
    report.files = list(dict.fromkeys(report.files))
    return report


def _check_checkpoint(project: GxProject, name: str, files: list[Path]) -> list[Problem]:
    file = project.checkpoints.get(name)
    if file is None:
        return []  # reported on the dataset declaration that names it
    files.append(file.path)
    if file.data is None:
        return [Problem(file.path, str(file.error))]
    problems = []
    refs = file.data.get("validation_definitions")
    if not isinstance(refs, list) or not refs:
        return [Problem(file.path, "'validation_definitions' must be a non-empty list of {id, name} references")]
    if len(refs) != 1:
        problems.append(
            Problem(file.path, f"has {len(refs)} validation definitions; the gate runs checkpoints with exactly one")
        )
    for i, ref in enumerate(refs):
        vd = _ref_name(ref)
        if vd is None:
            problems.append(Problem(file.path, "a reference needs a 'name'", where=f"validation_definitions[{i}]"))
        elif vd not in project.validation_definitions:
            problems.append(
                Problem(
                    file.path,
                    f"points to validation definition {vd!r}, which does not exist "
                    f"({display_path(project.validation_definition_path(vd))})",
                    where=f"validation_definitions[{i}]",
                )
            )
    return problems


def _check_validation_definition(project: GxProject, name: str, files: list[Path]) -> list[Problem]:
    file = project.validation_definitions.get(name)
    if file is None:
        return []  # reported on the checkpoint that points to it
    files.append(file.path)
    if file.data is None:
        return [Problem(file.path, str(file.error))]
    problems = []
    users = [cp for cp in project.checkpoints if name in project.validation_definitions_of(cp)]
    used_by = f" (used by checkpoint {', '.join(map(repr, users))})" if users else ""
    suite = _ref_name(file.data.get("suite"))
    if suite is None:
        problems.append(Problem(file.path, "'suite' must be a reference with a 'name'"))
    elif suite not in project.suites:
        problems.append(
            Problem(
                file.path,
                f"points to suite {suite!r}, which does not exist ({display_path(project.suite_path(suite))}){used_by}",
                where="suite",
            )
        )
    data = file.data.get("data")
    names = (
        {part: _ref_name(data.get(part)) for part in ("datasource", "asset", "batch_definition")}
        if isinstance(data, dict)
        else {}
    )
    if not names or None in names.values():
        problems.append(Problem(file.path, "'data' must reference a datasource, asset and batch_definition by name"))
    elif project.datasources is not None:
        # Resolved like GX does: datasource, then asset, then batch definition, by name in great_expectations.yml.
        config = display_path(project.config_path)
        assets = project.datasources.get(names["datasource"])
        if assets is None:
            problems.append(Problem(file.path, f"datasource {names['datasource']!r} is not in {config}", "data"))
        elif names["asset"] not in assets:
            problems.append(
                Problem(file.path, f"asset {names['asset']!r} is not in datasource {names['datasource']!r}", "data")
            )
        elif names["batch_definition"] not in assets[names["asset"]]:
            problems.append(
                Problem(
                    file.path,
                    f"batch definition {names['batch_definition']!r} is not in asset {names['asset']!r}",
                    "data",
                )
            )
    return problems


def _registry() -> tuple[Any, list[str]]:
    import great_expectations.expectations  # noqa: F401  (registers the core expectations)
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    return get_expectation_impl, sorted(list_registered_expectation_implementations())


def _label(index: int, raw: Any) -> str:
    kind = raw.get("type") if isinstance(raw, dict) else None
    kwargs = raw.get("kwargs") if isinstance(raw, dict) and isinstance(raw.get("kwargs"), dict) else {}
    column = column_of(kwargs, kind)
    return (
        f"expectations[{index}]"
        + (f" {kind}" if isinstance(kind, str) else "")
        + (f" (column {column!r})" if column else "")
    )


def _suggest(word: str, options: Iterable[str]) -> str:
    options = list(options)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:  # case slips ("passengerid") are common and difflib weighs them heavily
        close = [o for o in options if o.lower() == word.lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_suite_file(file: GxFile, schemas: list[TableSchema] | None = None) -> list[Problem]:
    """Every problem in one suite file: structure (GX's marshmallow schema), expectation types (GX's
    registry), arguments (each expectation's pydantic model), and columns against ``schemas``."""
    from great_expectations.core.expectation_suite import ExpectationSuiteSchema

    if file.data is None:
        return [Problem(file.path, str(file.error))]
    problems: list[Problem] = []
    raw_expectations = file.data.get("expectations", [])
    structural: dict[int, dict[str, Any]] = {}
    try:
        ExpectationSuiteSchema().load(file.data)  # what GX's store runs when it reads the file
    except Exception as exc:  # marshmallow's ValidationError carries every message, keyed by field
        messages = getattr(exc, "messages", None)
        messages = messages if isinstance(messages, dict) else {"_schema": messages or str(exc)}
        for key, value in messages.items():
            if key == "expectations" and isinstance(value, dict) and all(isinstance(i, int) for i in value):
                structural = value
            else:
                problems.append(Problem(file.path, f"{key!r}: {_flatten_messages(value)}"))
    if not isinstance(file.data.get("name"), str) or not file.data["name"]:
        problems.append(Problem(file.path, "the suite needs a 'name'"))
    elif file.data["name"] != file.name:
        problems.append(
            Problem(
                file.path,
                f"the suite is named {file.data['name']!r} but GX finds it by its file name as {file.name!r}",
                severity="warning",
            )
        )
    if not isinstance(raw_expectations, list):
        return problems  # already reported by the schema
    if not raw_expectations:
        problems.append(Problem(file.path, "the suite has no expectations: the gate refuses to audit with it"))

    get_impl, registered = _registry()
    ids: dict[str, int] = {}
    for i, raw in enumerate(raw_expectations):
        where = _label(i, raw)
        if i in structural:
            for key, value in structural[i].items():
                problems.append(Problem(file.path, f"{key!r}: {_flatten_messages(value)}", where))
        if not isinstance(raw, dict):
            continue
        if isinstance(raw.get("id"), str):
            if raw["id"] in ids:
                problems.append(
                    Problem(file.path, f"same id as expectations[{ids[raw['id']]}]", where, severity="warning")
                )
            ids.setdefault(raw["id"], i)
        kind, kwargs = raw.get("type"), raw.get("kwargs") or {}
        if not isinstance(kind, str) or not isinstance(kwargs, dict):
            continue  # reported above
        try:
            impl = get_impl(kind)
        except Exception:  # ExpectationNotFoundError: GX would silently drop this expectation
            problems.append(Problem(file.path, f"unknown expectation type {kind!r}{_suggest(kind, registered)}", where))
            continue
        problems += [Problem(file.path, message, where) for message in _argument_errors(impl, kwargs)]
        for schema in schemas or []:
            problems += [Problem(file.path, message, where) for message in _column_errors(kind, kwargs, schema)]
    return problems


def _flatten_messages(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flatten_messages(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_flatten_messages(v) for v in value)
    return str(value)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)  # JSON notation: what people see in the file they edit
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _argument_errors(impl: Any, kwargs: dict[str, Any]) -> list[str]:
    """Validate the arguments with the expectation's own pydantic model, one message per argument."""
    from great_expectations.compatibility.pydantic import ValidationError

    try:
        impl(**kwargs)
    except ValidationError as exc:
        by_field: dict[str, list[str]] = {}
        for error in exc.errors():
            by_field.setdefault(str(error["loc"][0]) if error["loc"] else "__root__", []).append(error["msg"])
        allowed = [f for f in impl.__fields__ if f not in {"id", "meta", "notes", "rendered_content", "description"}]
        messages = []
        for name, msgs in by_field.items():
            if name == "__root__":
                continue
            if "extra fields not permitted" in msgs:
                messages.append(f"unknown argument {name!r}{_suggest(name, allowed)}")
            elif "field required" in msgs:
                messages.append(f"missing required argument {name!r}")
            else:
                # A union type gives one message per alternative; the dict one is the rarely meant
                # suite-parameter form ({"$PARAMETER": ...}), noise next to "not a valid float".
                reasons = " or ".join(
                    dict.fromkeys(m for m in msgs if m != "value is not a valid dict" or len(msgs) == 1)
                )
                messages.append(f"invalid argument {name}={_short(kwargs.get(name))}: {reasons}")
        if not messages:  # cross-argument rules (e.g. "min_value and max_value cannot both be None")
            messages += by_field.get("__root__", [])
        return messages
    except Exception as exc:  # a model validator that raised something else: still a broken expectation
        return [f"invalid arguments: {' '.join(str(exc).split())[:300]}"]
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi))
    if numbers and lo > hi:
        return [f"min_value {lo} is greater than max_value {hi}: no value can pass"]
    return []


def _column_errors(kind: str, kwargs: dict[str, Any], schema: TableSchema) -> list[str]:
    columns = set(schema.columns)
    named: list[str] = [v for a in _COLUMN_ARGS if isinstance(v := kwargs.get(a), str)]
    for arg in _COLUMN_LIST_ARGS:
        if isinstance(kwargs.get(arg), list):
            named += [c for c in kwargs[arg] if isinstance(c, str)]
    errors = [
        f"column {c!r} does not exist in {schema.origin}{_suggest(c, schema.columns)}"
        for c in dict.fromkeys(named)
        if c not in columns
    ]
    # Schema contracts also fail on columns the data has and the contract lacks.
    if kind == "expect_table_columns_to_match_set" and kwargs.get("exact_match", True) is not False:
        listed = set(kwargs.get("column_set") or [])
        extra = [c for c in schema.columns if c not in listed]
        if extra:
            errors.append(f"{schema.origin} has columns missing from column_set: {', '.join(extra)}")
    ordered = kwargs.get("column_list")
    if kind == "expect_table_columns_to_match_ordered_list" and not errors and list(schema.columns) != ordered:
        errors.append(f"column_list does not match the column order of {schema.origin}: {', '.join(schema.columns)}")
    return errors


def _load_with_gx(project: GxProject, checkpoints: list[str], problems: list[Problem]) -> list[Problem]:
    """Load each checkpoint whose files had no error through GX itself (no validation is run)."""
    from .audit import get_context

    broken = {p.path.resolve() for p in problems if p.severity == "error"}
    clean = []
    for name in checkpoints:
        if name not in project.checkpoints:
            continue
        vds = project.validation_definitions_of(name)
        suites = [project.suite_of(vd) for vd in vds]
        paths = [project.checkpoint_path(name)] + [project.validation_definition_path(v) for v in vds]
        paths += [project.suite_path(s) for s in suites if s]
        if not any(p.resolve() in broken for p in paths) and project.config_path.resolve() not in broken:
            clean.append(name)
    if not clean:
        return []
    context = get_context(project.root)
    found = []
    for name in clean:
        try:
            context.checkpoints.get(name)
        except Exception as exc:
            found.append(
                Problem(project.checkpoint_path(name), f"GX cannot load it: {' '.join(str(exc).split())[:300]}")
            )
    return found


# =========================================================================================== init: profile
ColumnKind = Literal["integer", "float", "string", "boolean", "date", "timestamp", "timestamptz", "decimal", "other"]


@dataclass
class ColumnProfile:
    name: str
    arrow_type: str
    kind: ColumnKind
    bit_width: int = 64  # numeric columns: int32/int64, float32/float64
    rows: int = 0
    nulls: int = 0
    min: float | int | None = None  # numeric columns only
    max: float | int | None = None
    values: list[Any] | None = None  # the distinct non-null values when there are few (else None)
    unique: bool | None = None  # id-like columns: every value distinct (None: not checked)
    unique_rows_checked: int = 0  # how many rows the uniqueness verdict is based on

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def id_like(self) -> bool:
        return bool(_ID_NAME.search(self.name)) and self.kind in ("integer", "string")


@dataclass
class Profile:
    source: str
    rows: int
    columns: list[ColumnProfile]


def _kind(t: pa.DataType) -> ColumnKind:
    import pyarrow as pa

    checks: list[tuple[Any, ColumnKind]] = [
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "integer"),
        (pa.types.is_floating, "float"),
        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x), "string"),
        (pa.types.is_date, "date"),
        (lambda x: pa.types.is_timestamp(x) and x.tz is None, "timestamp"),
        (pa.types.is_timestamp, "timestamptz"),
        (pa.types.is_decimal, "decimal"),
    ]
    return next((kind for check, kind in checks if check(t)), "other")


def profile_source(uri: str, *, max_categories: int = MAX_CATEGORIES) -> Profile:
    """Stream the source once (bounded memory, whatever its size) and collect what the starter suite needs.

    Types are those the gate will see: the source's normalized schema, which the lakehouse keeps
    through the Iceberg round trip (CSV read with pyarrow, empty strings as nulls).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from .lakehouse.sources import open_source

    with open_source(uri) as source:
        columns = []
        for f in source.schema:
            kind = _kind(f.type)
            column = ColumnProfile(f.name, str(f.type), kind, f.type.bit_width if kind in ("integer", "float") else 64)
            column.values = [] if kind in ("integer", "string", "boolean") else None  # [] = still counting
            columns.append(column)
        id_chunks: dict[str, list[pa.Array]] = {c.name: [] for c in columns if c.id_like}
        rows = 0
        for batch in source.batches():
            rows += batch.num_rows
            for i, column in enumerate(columns):
                _accumulate(column, batch.column(i), id_chunks, max_categories)
    for column in columns:
        column.rows = rows
        chunks = id_chunks.get(column.name)
        if chunks is not None and column.unique is None:
            checked = sum(len(c) for c in chunks)
            distinct = pc.count_distinct(pa.chunked_array(chunks, type=chunks[0].type)).as_py() if chunks else 0
            column.unique, column.unique_rows_checked = checked > 0 and distinct == checked, checked
    return Profile(uri, rows, columns)


def _accumulate(
    column: ColumnProfile, array: pa.Array, id_chunks: dict[str, list[pa.Array]], max_categories: int
) -> None:
    import pyarrow.compute as pc

    column.nulls += array.null_count
    if column.kind in ("integer", "float") and array.null_count < len(array):
        bounds = pc.min_max(array)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
            column.min = lo if column.min is None else min(column.min, lo)
            column.max = hi if column.max is None else max(column.max, hi)
    if column.values is not None:
        distinct = pc.unique(array.drop_null())
        merged = set(column.values) | set(distinct.to_pylist()) if len(distinct) <= max_categories else None
        column.values = sorted(merged) if merged is not None and len(merged) <= max_categories else None
    chunks = id_chunks.get(column.name)
    if chunks is not None and column.unique is None:
        if array.null_count:
            column.unique = False  # an id with gaps is not an id
            return
        kept = sum(len(c) for c in chunks)
        if kept < UNIQUE_SAMPLE_ROWS:
            chunks.append(array.slice(0, UNIQUE_SAMPLE_ROWS - kept))


# ============================================================================================ init: suite
def gate_dtypes(column: ColumnProfile) -> list[str] | None:
    """The pandas dtype(s) `audit.table_to_dataframe` gives this column, as GX type names.

    Plain ``to_pandas()``: ints stay intN but become float64 when they hold nulls, floats stay floatN,
    strings are pandas 3's ``str`` dtype, booleans ``bool`` (object of bools with nulls), dates and
    decimals object columns of ``date`` / ``Decimal``, timestamps ``datetime64`` (``Timestamp`` with a
    time zone). GX checks object columns value by value, so ``bool``/``date``/``Decimal`` work for them.
    """
    bits = column.bit_width
    match column.kind:
        case "integer":
            # A later load with nulls in this column arrives as float64; the completeness check
            # decides whether nulls are acceptable, so the type check allows it only if they were seen.
            return [f"int{bits}"] + (["float64"] if column.nulls else [])
        case "float":
            # CSV type inference reads a batch whose values happen to be whole numbers as int64.
            return [f"float{bits}", "int64"]
        case "string":
            return ["str"]
        case "boolean":
            return ["bool"]
        case "date":
            return ["date"]
        case "timestamp":
            return ["datetime64"]
        case "timestamptz":
            return ["Timestamp"]
        case "decimal":
            return ["Decimal"]
    return None


def _nice_step(span: float) -> float:
    """A rounding step one order of magnitude below ``span`` (span 79.6 -> 1, 512 -> 10)."""
    return 10.0 ** (math.floor(math.log10(span)) - 1) if span > 0 else 1.0


def numeric_bounds(column: ColumnProfile) -> tuple[float | int, float | int | None] | None:
    """(min_value, max_value) with a margin; id-like columns get no upper bound (new ids grow).

    None when the column cannot be bounded (no finite values, or infinities); ``unbounded_reason`` says why.
    """
    bounds, _ = _bounds(column)
    return bounds


def unbounded_reason(column: ColumnProfile) -> str | None:
    """Why a numeric column gets no range rule (None: it gets one, or it is not numeric)."""
    return _bounds(column)[1]


def _bounds(column: ColumnProfile) -> tuple[tuple[float | int, float | int | None] | None, str | None]:
    if column.min is None or column.max is None:
        only_nan = column.kind == "float" and column.nulls < column.rows
        return None, "it held no number other than NaN" if only_nan else None
    lo, hi = float(column.min), float(column.max)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None, (
            f"it held infinite values ({_fmt(column.min)} .. {_fmt(column.max)}), which a range rule would reject; "
            "if they are errors, add expect_column_values_to_be_between with the real valid range"
        )
    try:
        low, high = _float_bounds(column, lo, hi)
    except (OverflowError, ValueError, ZeroDivisionError):  # a span that overflows, or a step that underflows to 0
        low, high = _exact_bounds(column, lo, hi)
    else:
        if not (math.isfinite(low) and math.isfinite(high) and low <= lo and high >= hi):
            low, high = _exact_bounds(column, lo, hi)
    return (low, None if column.id_like else high), None


def _float_bounds(column: ColumnProfile, lo: float, hi: float) -> tuple[float | int, float | int]:
    """The bounds in float arithmetic: what init has always written for ordinary data (keep it stable)."""
    span = hi - lo
    margin = span * RANGE_MARGIN if span > 0 else max(abs(hi) * RANGE_MARGIN, 1.0)
    low, high = lo - margin, hi + margin
    if lo >= 0:
        low = max(low, 0.0)  # non-negative data stays non-negative: negative amounts/counts are classic defects
    step = _nice_step(span if span > 0 else max(abs(hi), 1.0))
    digits = max(0, -math.floor(math.log10(step)))
    low = round(math.floor(low / step) * step, digits)
    high = round(math.ceil(high / step) * step, digits)
    if column.kind == "integer":
        return math.floor(low), math.ceil(high)
    if low.is_integer() and high.is_integer():
        return int(low), int(high)  # 0 and 570 read better than 0.0 and 570.0 in the JSON
    return low, high


def _exact_bounds(column: ColumnProfile, lo: float, hi: float) -> tuple[float | int, float | int]:
    """The same rule in exact rational arithmetic, for spans floats cannot widen or round.

    Values near the float limits (a span of 2e308 overflows) and subnormal spans (a step of 1e-325
    underflows to 0) still get bounds: widened and rounded exactly, then rounded to the nearest float,
    which cannot cross the observed extremes. Bounds past the largest float are capped there: they still
    catch infinities.
    """
    from fractions import Fraction

    flo, fhi = Fraction(lo), Fraction(hi)
    span = fhi - flo
    margin = span * Fraction(RANGE_MARGIN) if span > 0 else max(abs(fhi) * Fraction(RANGE_MARGIN), Fraction(1))
    low, high = flo - margin, fhi + margin
    if lo >= 0:
        low = max(low, Fraction(0))
    basis = span if span > 0 else max(abs(fhi), Fraction(1))
    exponent = math.floor(math.log10(basis.numerator) - math.log10(basis.denominator))  # ints: no overflow
    while Fraction(10) ** exponent > basis:  # the float estimate can be off by one at exact powers of ten
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= basis:
        exponent += 1
    step = Fraction(10) ** (exponent - 1)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    if column.kind == "integer":
        return math.floor(low), math.ceil(high)
    biggest = Fraction(sys.float_info.max)
    low_f, high_f = float(max(low, -biggest)), float(min(high, biggest))
    if all(v.is_integer() and abs(v) < 2**53 for v in (low_f, high_f)):
        return int(low_f), int(high_f)
    return low_f, high_f


def _mostly(column: ColumnProfile) -> float | None:
    """``mostly`` for the completeness check: observed completeness minus a margin, rounded down.

    The margin is half the smaller of the null and non-null rates, at least one point: 19.9% nulls
    gives 0.70 (block above ~30% nulls), 0.2% nulls gives 0.98. None when nothing useful remains.
    """
    complete = 1.0 - column.null_rate
    margin = max(0.01, min(column.null_rate, complete) / 2)
    value = math.floor((complete - margin) * 100 + 1e-9) / 100  # 1e-9: 0.7 * 100 is 69.99999999999999
    return value if value >= 0.01 else None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _categorical(column: ColumnProfile) -> bool:
    if column.values is None or not column.values or column.id_like:
        return False
    distinct, present = len(column.values), column.rows - column.nulls
    limit = MAX_INT_CATEGORIES if column.kind == "integer" else MAX_CATEGORIES
    # Each value must recur (seen at least twice on average): a handful of rows is not a domain.
    return column.kind in ("integer", "string") and distinct <= limit and present >= 2 * distinct


def build_suite(dataset: str, profile: Profile) -> ExpectationSuite:
    """The starter suite for ``profile``: every expectation carries a note saying what it was derived from."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def notes(text: str) -> dict[str, Any]:
        return {"notes": {"format": "markdown", "content": [text]}}

    n = profile.rows
    low_rows, high_rows = max(1, n // ROW_COUNT_FACTOR), max(n * ROW_COUNT_FACTOR, 1000)
    exps: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[c.name for c in profile.columns],
            exact_match=True,
            meta=notes(
                f"Schema contract: exactly these {len(profile.columns)} columns (order not enforced). A missing, "
                "renamed or extra column fails the audit; edit the list when the schema changes on purpose."
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=low_rows,
            max_value=high_rows,
            meta=notes(
                f"Profiled {n:,} rows; the range allows {ROW_COUNT_FACTOR}x fewer or more. An empty or tiny "
                "load is usually a failed extract; set the bounds to what your loads really look like."
            ),
        ),
    ]
    skipped: list[str] = []
    unbounded: list[str] = []  # numeric columns without a range rule, and why
    for c in profile.columns:
        if c.nulls == c.rows:
            skipped.append(c.name)
            continue
        # --- completeness
        if c.nulls == 0:
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=c.name,
                    meta=notes(f"{c.name} was complete when profiled (0 nulls in {n:,} rows): any null is a defect."),
                )
            )
        elif (mostly := _mostly(c)) is not None:
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=c.name,
                    mostly=mostly,
                    meta=notes(
                        f"{c.name} had {c.nulls:,} nulls in {n:,} rows ({c.null_rate:.1%}). mostly={mostly} blocks "
                        f"a load where more than {1 - mostly:.0%} of the values are null."
                    ),
                )
            )
        # --- type, as the gate sees it after the lakehouse round trip
        dtypes = gate_dtypes(c)
        if dtypes:
            type_note = notes(
                f"{c.name} is Arrow {c.arrow_type} in the lakehouse, which the audit sees as pandas "
                f"{' or '.join(dtypes)}."
                + (" (float64 when the column holds nulls)." if c.kind == "integer" and c.nulls else "")
            )
            if len(dtypes) == 1:
                exps.append(gxe.ExpectColumnValuesToBeOfType(column=c.name, type_=dtypes[0], meta=type_note))
            else:
                exps.append(gxe.ExpectColumnValuesToBeInTypeList(column=c.name, type_list=dtypes, meta=type_note))
        # --- domain: a value set for a few categories, else a range for numbers
        if _categorical(c):
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=c.name,
                    value_set=list(c.values or []),
                    meta=notes(
                        f"{c.name} had {len(c.values or [])} distinct values when profiled; a new value fails the "
                        "audit. Add it here when it is legitimate."
                    ),
                )
            )
        elif c.kind in ("integer", "float"):
            bounds, reason = _bounds(c)
            if bounds is None:
                if reason:
                    unbounded.append(f"{c.name} ({reason})")
            else:
                low, high = bounds
                why = (
                    f"{c.name} ranged {_fmt(c.min)} .. {_fmt(c.max)} when profiled; the bounds add a margin of "
                    f"{RANGE_MARGIN:.0%} of that span" + (" and stay non-negative" if (c.min or 0) >= 0 else "") + ". "
                    "They catch sign, unit and scale errors; set them to the real valid range."
                )
                if high is None:
                    why += " No upper bound: new ids grow."
                exps.append(
                    gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=low, max_value=high, meta=notes(why))
                )
        # --- identity
        if c.id_like and c.unique:
            sampled = "" if c.unique_rows_checked >= n else f" (checked on the first {c.unique_rows_checked:,} rows)"
            exps.append(
                gxe.ExpectColumnValuesToBeUnique(
                    column=c.name,
                    meta=notes(
                        f"{c.name} looks like an id and was unique when profiled{sampled}: duplicates mean a "
                        "double load or a bad join."
                    ),
                )
            )
    summary = (
        f"Starter suite generated by `wap suite init` from {profile.source} ({n:,} rows). Review it: tighten "
        "ranges and sets to what is valid (not just what was seen), and explain each rule in its notes."
    )
    if skipped:
        summary += f" Entirely null when profiled, so only the schema contract covers: {', '.join(skipped)}."
    if unbounded:
        summary += f" No range rule for: {'; '.join(unbounded)}."
    # Expectations go to the constructor: add_expectation() would write through to a stored suite.
    return gx.ExpectationSuite(name=dataset, expectations=exps, meta=notes(summary))


@dataclass(frozen=True)
class InitResult:
    dataset: Dataset
    suite_path: Path
    expectations: int
    profile: Profile
    declaration: Literal["added", "updated", "unchanged"]  # what happened to the dataset's declaration
    overwritten: list[Path]  # existing files replaced (only with force, or leftovers of an interrupted init)
    written: list[Path] = field(default_factory=list)  # every file written; empty: all were up to date


# Where init stages its files, keeps its commit journals and its lock: under gx/uncommitted/, which GX's
# .gitignore keeps out of git and no GX store reads.
INIT_STATE_DIR = ("uncommitted", "wap-init")
# Temporary files sit next to the file they replace (os.replace is atomic only within a file system) under
# names no GX store lists (stores list only *.json) and `_json_files` skips.
_TMP_MARK = ".wap-init-"


def init_suite(
    dataset: str,
    source: str,
    *,
    force: bool = False,
    gx_root: Path | str | None = None,
    datasets_path: Path | None = None,
) -> InitResult:
    """Profile ``source``, write a starter suite for ``dataset`` and everything `wap run DATASET` needs.

    Writes the dataframe asset (great_expectations.yml), the suite, validation definition and checkpoint,
    and declares the dataset (table = dataset name, namespace bauplan) unless it is declared already.
    All or nothing, even when the process is killed: every file is staged next to its target and fsynced,
    a journal naming them is committed with one rename, then the files are renamed into place. A journal
    left by a killed init is completed by the next init; staged files without a journal are deleted.

    Refuses to replace an existing suite or checkpoint unless ``force``, or unless what is there is exactly
    what this init generates (a rerun on the same source succeeds and writes nothing).
    """
    validate_dataset_name(dataset)
    project_root = Path(gx_root if gx_root is not None else gx_dir()).expanduser()
    datasets_path = datasets_path or datasets_file()
    project = load_project(project_root, datasets_path)  # raises when there is no GX project
    if project.datasets_error:
        raise DatasetError(project.datasets_error)  # before anything is written
    profile = profile_source(source)
    if profile.rows == 0:
        raise SuiteError(f"source {source} has no rows: there is nothing to profile")
    suite = build_suite(dataset, profile)

    with _init_lock(project_root):
        resumed = recover_init(project_root, datasets_path)
        project = load_project(project_root, datasets_path)  # again: another init may have committed meanwhile
        if project.datasets_error:
            raise DatasetError(project.datasets_error)
        existing = [p for p in (project.suite_path(dataset), project.checkpoint_path(dataset)) if p.exists()]
        declared = project.datasets.get(dataset)
        if declared is None:
            spec = Dataset(dataset, source=source, table=dataset, namespace=DEFAULT_NAMESPACE, checkpoint=dataset)
            action: Literal["added", "updated", "unchanged"] = "added"
        elif declared.checkpoint != dataset:
            spec, action = dataclasses.replace(declared, checkpoint=dataset), "updated"  # audit with the new suite
        else:
            spec, action = declared, "unchanged"

        token = f"{os.getpid()}-{os.urandom(4).hex()}"
        staging = project_root.joinpath(*INIT_STATE_DIR, f"{dataset}.{token}")
        try:
            files = _stage_gx_files(project, dataset, suite, staging)
            if action != "unchanged":
                files[datasets_path] = _render_declaration(spec, datasets_path, staging)
            changed = {t: data for t, data in files.items() if not _same_content(t, data)}
            if existing and changed and not force and dataset not in resumed:
                raise SuiteError(
                    f"suite {dataset!r} already exists ({', '.join(map(display_path, existing))}); "
                    "pass --force to overwrite it with a newly generated one"
                )
            # great_expectations.yml first (the validation definition names its asset), the declaration last.
            order = [project.config_path, *(t for t in changed if t not in (project.config_path, datasets_path))]
            _commit(project_root, dataset, [(t, changed[t]) for t in [*order, datasets_path] if t in changed], token)
        finally:
            _remove_tree(staging)
    _forget_cached_context(project_root)
    overwritten = [p for p in existing if p in changed]
    return InitResult(
        spec, project.suite_path(dataset), len(suite.expectations), profile, action, overwritten, list(changed)
    )


def _same_content(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _stage_gx_files(project: GxProject, dataset: str, suite: ExpectationSuite, staging: Path) -> dict[Path, bytes]:
    """The new content of great_expectations.yml and of the dataset's suite, validation definition and checkpoint.

    GX writes them, into a scratch copy of the project (``staging``), so the bytes are exactly what GX's own
    stores write. GX's factories are not used: ``suites.add_or_update`` matches every new expectation against
    every stored one (``list.index`` with a pydantic ``__eq__``), and the validation definition and checkpoint
    factories call it again, which made init quadratic in the number of columns (1000 columns: 5 minutes).
    Instead each file is written once through its store, and the suite, the one large file, is serialised
    once. The validation definition and checkpoint only reference the suite by name and id, and GX checks
    a referenced suite against its stored copy when serialising them, so they are written while the stored
    suite is still a placeholder with the final id: that check then compares two empty suites.
    """
    import shutil

    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context import set_context
    from great_expectations.data_context.data_context.context_factory import project_manager

    from .gx_setup import BATCH_DEFINITION_NAME, DATA_DOCS_ACTION_NAME, DATASOURCE_NAME, RESULT_FORMAT

    staging.mkdir(parents=True)
    shutil.copyfile(project.config_path, staging / CONFIG_FILE)
    stored = project.suites.get(dataset)
    suite_rel = project.suite_path(dataset).relative_to(project.root)
    if stored is not None and stored.data is not None:
        (staging / suite_rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored.path, staging / suite_rel)  # read back through GX, to keep the ids of unchanged rules

    try:  # gx.get_context makes the scratch context GX's "current" one; give the caller's back afterwards
        previous = project_manager.get_current_project()
    except Exception:  # DataContextRequiredError: there was none
        previous = None
    try:
        context = gx.get_context(mode="file", context_root_dir=staging)
        try:
            datasource = context.data_sources.get(DATASOURCE_NAME)
        except (KeyError, ValueError):
            datasource = context.data_sources.add_pandas(name=DATASOURCE_NAME)
        asset = (
            datasource.get_asset(dataset)
            if dataset in datasource.get_asset_names()
            else datasource.add_dataframe_asset(name=dataset)
        )
        try:
            batch_definition = asset.get_batch_definition(BATCH_DEFINITION_NAME)
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)

        suites = context.expectations_store
        key = suites.get_key(name=dataset, id=None)
        suite.name = dataset
        placeholder = gx.ExpectationSuite(name=dataset)
        previous_suite = _stored_suite(context, dataset) if suites.has_key(key) else None
        if previous_suite is not None:
            from .gx_setup import _reuse_expectation_ids

            _reuse_expectation_ids(previous_suite, suite)  # unchanged rules keep their ids: git stays clean
            placeholder.id = previous_suite.id
            suites.update(key=key, value=placeholder)
        else:
            if suites.has_key(key):  # unreadable: it is being replaced anyway
                suites.remove_key(key)
            suites.add(key=key, value=placeholder)  # assigns the suite's id

        definitions = context.validation_definition_store
        definition = gx.ValidationDefinition(name=dataset, data=batch_definition, suite=placeholder)
        _store_keeping_id(definitions, definitions.get_key(name=dataset, id=None), definition,
                          _stored_id(project.validation_definitions.get(dataset)))  # fmt: skip
        checkpoints = context.checkpoint_store
        checkpoint = gx.Checkpoint(
            name=dataset,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name=DATA_DOCS_ACTION_NAME, site_names=[])],
            result_format=RESULT_FORMAT,
        )
        _store_keeping_id(checkpoints, checkpoints.get_key(name=dataset, id=None), checkpoint,
                          _stored_id(project.checkpoints.get(dataset)))  # fmt: skip

        suite.id = placeholder.id
        suites.update(key=key, value=suite)  # the one save of the suite; new rules get their ids here
    finally:
        set_context(previous)

    files: dict[Path, bytes] = {}
    config = (staging / CONFIG_FILE).read_bytes()
    if config != project.config_path.read_bytes():
        files[project.config_path] = config
    for target in (
        project.suite_path(dataset),
        project.validation_definition_path(dataset),
        project.checkpoint_path(dataset),
    ):
        files[target] = (staging / target.relative_to(project.root)).read_bytes()
    return files


def _stored_suite(context: Any, dataset: str) -> ExpectationSuite | None:
    try:
        return context.suites.get(dataset)
    except Exception:  # a suite GX cannot read: nothing to reuse, and it is replaced
        return None


def _stored_id(file: GxFile | None) -> str | None:
    value = (file.data or {}).get("id") if file is not None else None
    return value if isinstance(value, str) and value else None


def _store_keeping_id(store: Any, key: Any, value: Any, stored_id: str | None) -> None:
    """Write ``value`` once; it keeps the stored file's id (a regenerated checkpoint is the same checkpoint)."""
    if stored_id is None:
        store.add(key=key, value=value)  # assigns a new id
    else:
        value.id = stored_id
        store.add_or_update(key=key, value=value)  # no id logic on this path: the id is kept


def _render_declaration(spec: Dataset, datasets_path: Path, staging: Path) -> bytes:
    """datasets.yml with ``spec`` added or replaced, as ``save_dataset`` writes it (header comments kept)."""
    import shutil

    draft = staging / "datasets.yml"
    if datasets_path.exists():
        shutil.copyfile(datasets_path, draft)
    save_dataset(spec, draft)
    return draft.read_bytes()


# ------------------------------------------------------------------------------------ init: atomic install
def _state_dir(project_root: Path) -> Path:
    return project_root.joinpath(*INIT_STATE_DIR)


@contextlib.contextmanager
def _init_lock(project_root: Path) -> Iterator[None]:
    """One init at a time per project: each rewrites great_expectations.yml and datasets.yml whole."""
    state = _state_dir(project_root)
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent inits are then the user's problem
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_dir(folder: Path) -> None:
    """Make renames and unlinks in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _temp_path(target: Path, token: str) -> Path:
    return target.with_name(f".{target.name}{_TMP_MARK}{token}.tmp")


def _commit(project_root: Path, dataset: str, files: list[tuple[Path, bytes]], token: str) -> None:
    """Install ``files`` all or nothing: stage + fsync, commit a journal with one rename, then rename each."""
    if not files:
        return
    moves: list[tuple[Path, Path]] = []
    try:
        for target, data in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = _temp_path(target, token)
            moves.append((temp, target))
            _write_durable(temp, data)
    except BaseException:
        for temp, _ in moves:
            temp.unlink(missing_ok=True)
        raise
    for folder in {t.parent for t, _ in moves}:
        _fsync_dir(folder)
    state = _state_dir(project_root)
    journal = state / f"{dataset}.journal"
    journal_temp = state / f".{dataset}.journal{_TMP_MARK}{token}.tmp"
    record = {"dataset": dataset, "moves": [[str(t.resolve()), str(p.resolve())] for t, p in moves]}
    _write_durable(journal_temp, json.dumps(record, indent=1).encode())
    os.replace(journal_temp, journal)  # the commit point: from here on the init completes, now or on recovery
    _fsync_dir(state)
    _finish(journal, moves)


def _finish(journal: Path, moves: list[tuple[Path, Path]]) -> None:
    """Rename every staged file still waiting, then drop the journal (idempotent: recovery runs it again)."""
    for temp, target in moves:
        if temp.exists():
            os.replace(temp, target)
    for folder in {target.parent for _, target in moves}:
        _fsync_dir(folder)
    journal.unlink(missing_ok=True)
    _fsync_dir(journal.parent)


def recover_init(project_root: Path | str, datasets_path: Path | None = None) -> set[str]:
    """Complete the inits a killed process had committed; delete what uncommitted ones had staged.

    Returns the datasets whose init was completed here. Call with the init lock held (``init_suite`` does).
    """
    project_root = Path(project_root)
    state = _state_dir(project_root)
    resumed: set[str] = set()
    for journal in sorted(state.glob("*.journal")) if state.is_dir() else []:
        try:
            record = json.loads(journal.read_text(encoding="utf-8"))
            moves = [(Path(t), Path(p)) for t, p in record["moves"]]
            dataset = str(record["dataset"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours to judge; never reached through init (the journal is renamed in whole)
        _finish(journal, moves)
        resumed.add(dataset)
    # Nothing else is in flight while the lock is held: whatever is staged now belongs to a dead process.
    folders = [project_root, project_root / VALIDATION_DEFINITIONS_DIR, project_root / CHECKPOINTS_DIR, state]
    if datasets_path is not None:
        folders.append(Path(datasets_path).parent)
    stale = [p for folder in folders if folder.is_dir() for p in folder.glob(f".*{_TMP_MARK}*.tmp")]
    suites = project_root / SUITES_DIR
    stale += list(suites.rglob(f".*{_TMP_MARK}*.tmp")) if suites.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    for folder in state.iterdir() if state.is_dir() else []:
        if folder.is_dir():
            _remove_tree(folder)
    return resumed


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _forget_cached_context(project_root: Path) -> None:
    """Drop flows.audit's cached GX context of this project: it holds the old great_expectations.yml."""
    from . import audit

    with audit._GX_LOCK:
        audit._CONTEXTS.pop(project_root.expanduser().resolve(), None)


# ================================================================================================== diff
@dataclass(frozen=True)
class ExpectationChange:
    kind: Literal["added", "removed", "changed"]
    type: str
    column: str | None
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SuiteDiff:
    suite: str
    path: Path
    status: Literal["changed", "unchanged", "new", "deleted", "no_git"]
    message: str  # one line saying what was compared
    changes: list[ExpectationChange] = field(default_factory=list)
    suite_changes: list[str] = field(default_factory=list)  # suite-level notes/meta


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:  # no git binary, or it hung
        return subprocess.CompletedProcess(["git", *args], 127, "", str(exc))


def committed_text(path: Path) -> tuple[Literal["committed", "new", "no_git"], str | None, str]:
    """(status, the file's content at HEAD or None, one line saying what is compared or why not)."""
    folder = path.parent if path.parent.is_dir() else Path.cwd()
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        reason = (top.stderr.strip().splitlines() or ["not a git repository"])[-1]
        return "no_git", None, f"{display_path(folder)} is not in a git repository ({reason})"
    repo = Path(top.stdout.strip())
    rel = path.resolve().relative_to(repo.resolve()).as_posix()
    head = _git(repo, "rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "new", None, f"{rel} is new: the repository at {display_path(repo)} has no commits yet"
    shown = _git(repo, "show", f"HEAD:{rel}")
    if shown.returncode != 0:
        return "new", None, f"{rel} is new: it is not in the last commit ({head.stdout.strip()})"
    return "committed", shown.stdout, f"{rel} against HEAD ({head.stdout.strip()})"


def diff_suite(dataset: str, project: GxProject | None = None) -> SuiteDiff:
    """What changed in the dataset's suite JSON since the last commit: expectations added, removed, changed."""
    project = project or load_project()
    name, _ = resolve_suite(dataset, project)
    path = project.suite_path(name)
    current: dict[str, Any] | None = None
    if path.exists():
        current, error = _read_json(path)
        if current is None:
            raise SuiteError(f"cannot read {display_path(path)}: {error}")
    status, old_text, message = committed_text(path)
    if status == "no_git":
        return SuiteDiff(name, path, "no_git", message)
    if current is None and old_text is None:
        raise SuiteError(f"suite {name!r} does not exist ({display_path(path)}) and was never committed")
    old: dict[str, Any] = {}
    if old_text is not None:
        try:
            parsed = json.loads(old_text)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"the committed {display_path(path)} is not valid JSON: {exc.msg}") from exc
        old = parsed if isinstance(parsed, dict) else {}
    new = current or {}
    changes = diff_expectations(_expectation_list(old), _expectation_list(new))
    if status == "new":
        return SuiteDiff(name, path, "new", message, changes)
    if current is None:
        return SuiteDiff(name, path, "deleted", f"{message}: the file was deleted", changes)
    suite_changes = _meta_changes(old.get("meta"), new.get("meta"), prefix="suite ")
    changed: Literal["changed", "unchanged"] = "changed" if changes or suite_changes else "unchanged"
    return SuiteDiff(name, path, changed, message, changes, suite_changes)


def _expectation_list(suite: dict[str, Any]) -> list[dict[str, Any]]:
    raw = suite.get("expectations")
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


def _match_key(e: dict[str, Any]) -> tuple[str, str | None]:
    kwargs = e.get("kwargs") if isinstance(e.get("kwargs"), dict) else {}
    return str(e.get("type")), column_of(kwargs, e.get("type"))


def diff_expectations(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[ExpectationChange]:
    """Pair expectations by id when both have one, else by (type, column) in order; report the rest."""
    pairs: list[tuple[int, int]] = []
    free_old = set(range(len(old)))
    old_by_id = {e["id"]: i for i, e in enumerate(old) if isinstance(e.get("id"), str)}
    unpaired_new = []
    for j, e in enumerate(new):
        i = old_by_id.get(e.get("id")) if isinstance(e.get("id"), str) else None
        if i is not None and i in free_old:
            pairs.append((i, j))
            free_old.discard(i)
        else:
            unpaired_new.append(j)
    still_new = []
    for j in unpaired_new:
        i = next((i for i in sorted(free_old) if _match_key(old[i]) == _match_key(new[j])), None)
        if i is None:
            still_new.append(j)
        else:
            pairs.append((i, j))
            free_old.discard(i)

    changes: list[tuple[int, ExpectationChange]] = []
    for i, j in pairs:
        details = _expectation_changes(old[i], new[j])
        if details:
            changes.append((j, ExpectationChange("changed", *_match_key(new[j]), details)))
    changes += [(j, ExpectationChange("added", *_match_key(new[j]))) for j in still_new]
    ordered = [c for _, c in sorted(changes, key=lambda pair: pair[0])]
    return ordered + [ExpectationChange("removed", *_match_key(old[i])) for i in sorted(free_old)]


def _expectation_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    details = []
    if old.get("type") != new.get("type"):
        details.append(f"type: {old.get('type')} -> {new.get('type')}")
    old_kwargs = old.get("kwargs") if isinstance(old.get("kwargs"), dict) else {}
    new_kwargs = new.get("kwargs") if isinstance(new.get("kwargs"), dict) else {}
    for key in dict.fromkeys([*old_kwargs, *new_kwargs]):
        details += _value_change(key, old_kwargs.get(key, _UNSET), new_kwargs.get(key, _UNSET))
    if old.get("severity") != new.get("severity"):
        details += _value_change("severity", old.get("severity", _UNSET), new.get("severity", _UNSET))
    details += _meta_changes(old.get("meta"), new.get("meta"))
    if notes_text(None, old.get("notes")) != notes_text(None, new.get("notes")):
        details.append("notes changed")
    return details


class _Unset:
    """An argument absent on one side of a diff (distinct from an explicit null)."""


_UNSET: Any = _Unset()


def _value_change(key: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    if isinstance(old, list) and isinstance(new, list):
        # A value set or column list: the members that came and went say more than two long lists.
        added = [v for v in new if v not in old]
        removed = [v for v in old if v not in new]
        parts = ([f"+{_short(added)}"] if added else []) + ([f"-{_short(removed)}"] if removed else [])
        return [f"{key}: {' '.join(parts) or 'reordered'}"]

    def show(value: Any) -> str:
        return "(unset)" if value is _UNSET else _short(value)

    return [f"{key}: {show(old)} -> {show(new)}"]


def _meta_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    details = [f"{prefix}notes changed"] if notes_text(old) != notes_text(new) else []
    for key in dict.fromkeys([*old, *new]):
        if key in ("notes", "great_expectations_version"):
            continue  # notes: summarised above; the version: GX rewrites it on every save
        details += _value_change(f"{prefix}meta.{key}", old.get(key, _UNSET), new.get(key, _UNSET))
    return details
