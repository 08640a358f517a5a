"""`wap suite check`: every problem that would break a run, with its file and expectation.

Types and arguments are validated by GX itself: its marshmallow schema for the file structure, its
expectation registry and the expectations' pydantic models for types and arguments."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from flows.audit.gx_project import BATCH, GROUP, GROUP_BATCH_DEFINITION_NAME, TABLE, TABLE_BATCH_DEFINITION_NAME
from flows.datasets import Dataset, Group
from flows.shorten import shorten

from .listing import column_of
from .project import (
    _COLUMN_ARGS,
    _COLUMN_LIST_ARGS,
    GxFile,
    GxProject,
    _ref_name,
    display_path,
    load_project,
    resolve_suite,
)


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
    arrow: Any = None  # its pyarrow schema where known (a source's): which rules the audit's pushdown can answer


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
    from flows.lakehouse.sources import open_source

    with open_source(uri) as source:
        return TableSchema(tuple(source.schema.names), f"source {uri}", source.schema)


def lakehouse_schema(spec: Dataset, backend: str, lakehouse: str) -> TableSchema | str:
    """Columns of the dataset's table on main, or why they are not available (a reason, not an error)."""
    from flows.lakehouse import MAIN, LakehouseError, connect

    if backend == "local" and not (Path(lakehouse).expanduser() / "catalog.db").is_file():
        return f"no lakehouse at {lakehouse}"  # connecting would create an empty one
    try:
        client = connect(backend, lakehouse)
        if not client.has_table(spec.table, MAIN, namespace=spec.namespace):
            return f"no table {spec.fqn} on {MAIN}"
        info = client.get_table(spec.table, MAIN, namespace=spec.namespace)
    except LakehouseError as exc:
        return f"cannot read table {spec.fqn} on {MAIN}: {' '.join(str(exc).split())[:200]}"
    try:  # the Arrow types the audit sees (one row: a limit of 0 may read as no limit to some backend)
        arrow = client.scan(spec.table, ref=MAIN, namespace=spec.namespace, limit=1).schema
    except LakehouseError:
        arrow = None  # only the pushdown advice is weaker (see _slow_path_rules)
    return TableSchema(tuple(f.name for f in info.fields), f"table {spec.fqn} on {MAIN}", arrow)


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
    from flows.lakehouse import BACKENDS, InvalidNameError

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
    elif dataset in project.groups:  # a group: its declaration, its cross-table rules, and each member's chain
        group = project.groups[dataset]
        datasets = [project.datasets[m] for m in group.members]
        checkpoints = [d.checkpoint for d in datasets] + ([group.checkpoint] if group.checkpoint else [])
        vds = [vd for cp in checkpoints for vd in project.validation_definitions_of(cp)]
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
    if project.groups_error:
        report.problems.append(Problem(project.datasets_path, project.groups_error))
    in_scope = [g for g in project.groups.values() if dataset is None or dataset == g.name]
    group_checkpoints = {g.checkpoint for g in project.groups.values() if g.checkpoint}
    for group in in_scope:
        report.problems += _check_group(project, group)
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
        report.problems += _check_checkpoint(project, name, report.files, group=name in group_checkpoints)
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
        known_schemas = [t for d in users if isinstance(t := schemas[d], TableSchema)]
        found = check_suite_file(file, known_schemas)
        report.problems += found
        if (users or project.datasets_using(name)) and not any(p.severity == "error" for p in found):
            report.problems += _slow_path_rules(project, name, file, known_schemas)
        for d in users:
            known = schemas[d]
            if isinstance(known, TableSchema):
                report.notes.append(f"columns of {d} checked against {known.origin} ({len(known.columns)} columns)")
            else:
                report.notes.append(f"columns of {d} not checked: {known}; pass --source URI to check them")
        if not users and project.groups_using(name):
            report.notes.append(f"suite {name}: cross-table rules of group {', '.join(project.groups_using(name))}")
        elif not users:
            hint = "; pass --source URI to check them" if dataset else ""
            report.notes.append(f"columns of suite {name} not checked: no declared dataset uses it{hint}")

    # ---- last: what GX itself makes of each checkpoint whose chain looked clean
    if load_with_gx:
        report.problems += _load_with_gx(project, checkpoints, report.problems)
    report.files = list(dict.fromkeys(report.files))
    return report


def _slow_path_rules(project: GxProject, suite: str, file: GxFile, schemas: list[TableSchema]) -> list[Problem]:
    """A warning naming the rules that send the suite's audit from the SQL pushdown to the slower pandas path
    (the whole table read into pandas), decided as the audit decides (``pushdown.rules_sent_to_pandas``)."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from flows.audit.pushdown import rules_sent_to_pandas

    assert file.data is not None  # a suite that did not parse has an error
    configurations = []
    for raw in file.expectations:
        try:
            configurations.append(ExpectationConfiguration(type=raw["type"], kwargs=raw.get("kwargs") or {}))
        except Exception:  # reported by check_suite_file
            return []
    result_format: Any = "SUMMARY"  # GX's default for a checkpoint
    for checkpoint in project.checkpoints_using(suite):
        stored = project.checkpoints.get(checkpoint)
        if stored is not None and stored.data is not None and stored.data.get("result_format") is not None:
            result_format = stored.data["result_format"]
            break
    arrow = next((s.arrow for s in schemas if s.arrow is not None), None)
    try:
        rules = rules_sent_to_pandas(configurations, arrow, result_format)
    except Exception:  # the decision is advice; never let it mask the check's own findings
        return []
    if not rules:
        return []
    return [
        Problem(
            file.path,
            f"these rules send the audit to the slower pandas path (the whole table read into pandas; the SQL"
            f" pushdown cannot answer them): {suite}: {', '.join(rules)}",
            severity="warning",
        )
    ]


def _check_group(project: GxProject, group: Group) -> list[Problem]:
    """A group's checkpoint exists, and each of its cross-table rules runs on member tables only."""
    from flows.audit.cross_table import check_cross_table_rules, group_namespace
    from flows.lakehouse import DEFAULT_NAMESPACE

    where = f"group {group.name!r}"
    if group.checkpoint is None:
        return []
    if group.checkpoint not in project.checkpoints:
        missing = display_path(project.checkpoint_path(group.checkpoint))
        return [Problem(project.datasets_path, f"checkpoint {group.checkpoint!r} does not exist ({missing})", where)]
    members = [project.datasets[m] for m in group.members]
    problems = []
    for vd in project.validation_definitions_of(group.checkpoint):
        suite = project.suite_of(vd)
        file = project.suites.get(suite or "")
        if file is None or file.data is None:
            continue  # reported on the validation definition, or as the suite's own parse error
        configurations = [_RawExpectation(e) for e in file.expectations if isinstance(e, dict)]
        for message in check_cross_table_rules(
            configurations, {m.fqn: m.name for m in members}, group_namespace(members), DEFAULT_NAMESPACE
        ):
            problems.append(Problem(file.path, message, where=f"cross-table rules of {where}"))
    return problems


@dataclass(frozen=True)
class _RawExpectation:
    """An expectation of a suite file as `check_cross_table_rules` reads it (type and kwargs)."""

    raw: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw.get("type"))

    @property
    def kwargs(self) -> dict[str, Any]:
        kwargs = self.raw.get("kwargs")
        return kwargs if isinstance(kwargs, dict) else {}


def _check_checkpoint(project: GxProject, name: str, files: list[Path], *, group: bool = False) -> list[Problem]:
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
    roles = [project.validates(_ref_name(ref)) for ref in refs]
    if group and roles != [GROUP]:
        problems.append(
            Problem(
                file.path,
                f"is a group's checkpoint: it must validate exactly one suite of cross-table rules (batch definition"
                f" {GROUP_BATCH_DEFINITION_NAME!r})",
            )
        )
    elif not group and GROUP in roles:
        problems.append(
            Problem(
                file.path,
                f"validates cross-table rules (batch definition {GROUP_BATCH_DEFINITION_NAME!r}) but no group names it"
                " as its checkpoint in datasets.yml",
            )
        )
    elif not group and (roles.count(BATCH) != 1 or roles.count(TABLE) > 1):
        problems.append(
            Problem(
                file.path,
                f"has {roles.count(BATCH)} validation definitions of the batch and {roles.count(TABLE)} of the"
                f" published table (batch definition {TABLE_BATCH_DEFINITION_NAME!r}); the gate runs checkpoints"
                " with exactly one of the batch and at most one of the table",
            )
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
        assets = project.datasources.get(cast(str, names["datasource"]))  # no name is None: checked above
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
    kwargs = raw.get("kwargs") if isinstance(raw, dict) else None
    if not isinstance(kwargs, dict):
        kwargs = {}
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
    from great_expectations.core import ExpectationSuiteSchema

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
                if key == "severity" and isinstance(raw, dict):  # say what the values mean to the gate
                    message = (
                        f"severity {raw.get('severity')!r} is not one of critical (blocks the publish, the default),"
                        " warning (reported, published anyway), info (report only)"
                    )
                else:
                    message = f"{key!r}: {_flatten_messages(value)}"
                problems.append(Problem(file.path, message, where))
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


def short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)  # JSON notation: what people see in the file they edit
    return shorten(text, limit)


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
                messages.append(f"invalid argument {name}={short(kwargs.get(name))}: {reasons}")
        if not messages:  # cross-argument rules (e.g. "min_value and max_value cannot both be None")
            messages += by_field.get("__root__", [])
        return messages
    except Exception as exc:  # a model validator that raised something else: still a broken expectation
        return [f"invalid arguments: {' '.join(str(exc).split())[:300]}"]
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    numbers = [v for v in (lo, hi) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == 2 and numbers[0] > numbers[1]:
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
    from flows.audit import get_context

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
