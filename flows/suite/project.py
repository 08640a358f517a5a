"""The GX project on disk: the file context in gx/, its suites, validation definitions, checkpoints and the
datasets declared in gx/datasets.yml, read as plain JSON (GX's own loader stops at the first problem)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flows.audit import AuditConfigError
from flows.audit.gx_project import BATCH, validates
from flows.datasets import Dataset, DatasetError, Group, datasets_file, gx_dir, load_datasets, load_groups

SUITES_DIR = "expectations"
VALIDATION_DEFINITIONS_DIR = "validation_definitions"
CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "great_expectations.yml"

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
    groups: dict[str, Group] = field(default_factory=dict)
    groups_error: str | None = None  # a group declaration that would be refused at run start

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

    def validates(self, validation_definition: str | None) -> str:
        """BATCH or TABLE, from the validation definition's batch definition (BATCH if it cannot be read)."""
        file = self.validation_definitions.get(validation_definition or "")
        data = (file.data or {}).get("data") if file else None
        batch_definition = _ref_name(data.get("batch_definition")) if isinstance(data, dict) else None
        return validates(batch_definition or "")

    def suites_of_checkpoint(self, checkpoint: str) -> list[str]:
        """The suites a checkpoint validates, the batch's first."""
        definitions = sorted(self.validation_definitions_of(checkpoint), key=lambda vd: self.validates(vd) != BATCH)
        names = (self.suite_of(vd) for vd in definitions)
        return list(dict.fromkeys(n for n in names if n))

    def checkpoints_using(self, suite: str) -> list[str]:
        return sorted(cp for cp in self.checkpoints if suite in self.suites_of_checkpoint(cp))

    def datasets_using(self, suite: str) -> list[str]:
        return sorted(d.name for d in self.datasets.values() if suite in self.suites_of_checkpoint(d.checkpoint))

    def groups_using(self, suite: str) -> list[str]:
        return sorted(
            g.name for g in self.groups.values() if g.checkpoint and suite in self.suites_of_checkpoint(g.checkpoint)
        )


def _ref_name(ref: Any) -> str | None:
    """The name in a ``{"id": ..., "name": ...}`` reference; GX's file stores look objects up by name."""
    name = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) and name else None


def read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
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
        data, error = read_json(path)
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
    groups: dict[str, Group] = {}
    datasets_error = groups_error = None
    if datasets_path.exists():
        try:
            datasets = load_datasets(datasets_path)
        except (DatasetError, ValueError) as exc:  # InvalidNameError is a ValueError too
            datasets_error = " ".join(str(exc).split())
        else:
            try:
                groups = load_groups(datasets_path)
            except (DatasetError, ValueError) as exc:
                groups_error = " ".join(str(exc).split())
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
        groups=groups,
        groups_error=groups_error,
    )


def display_path(path: Path) -> str:
    """A path as users would type it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_suite(dataset: str, project: GxProject) -> tuple[str, Dataset | None]:
    """The suite that audits ``dataset``'s batch: dataset -> checkpoint -> validation definition -> suite.

    A name that is not a declared dataset but is a suite name is accepted too (a suite being drafted, or a
    table suite named directly).
    """
    names, spec = resolve_suites(dataset, project)
    return names[0], spec


def resolve_suites(dataset: str, project: GxProject) -> tuple[list[str], Dataset | None]:
    """Every suite of ``dataset``'s checkpoint, the batch suite first (then the table suite, if any); or the one
    suite named ``dataset``."""
    spec = project.datasets.get(dataset)
    if spec is None:
        if dataset in project.suites:
            return [dataset], None
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
    return suites, spec


# ============================================================================================ list / show
