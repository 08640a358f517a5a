"""Dataset declarations: the one file users edit to tell the gate what to ingest (`gx/datasets.yml`)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from .lakehouse.errors import InvalidNameError
from .lakehouse.names import DEFAULT_NAMESPACE, validate_identifier

REPO_GX_DIR = Path(__file__).resolve().parent.parent / "gx"
T = TypeVar("T")
_DATASET_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class DatasetError(ValueError):
    """An unknown dataset or a malformed declaration file."""


# How a run writes its source: `replace` makes the table exactly the source (a full snapshot); `append` adds
# the source's rows to the table on main (a batch into a growing table; the first run creates the table).
MODES = ("replace", "append")
DEFAULT_MODE = "replace"


def validate_mode(mode: str, where: str = "") -> str:
    if mode not in MODES:
        raise DatasetError(f"{where}unknown mode {mode!r:.80}: use one of {', '.join(MODES)}")
    return mode


# What an append does with a batch whose columns differ from the table's: `strict` blocks it; `evolve` adds its
# new columns to the table (Iceberg schema evolution) and blocks only missing or retyped ones.
SCHEMA_POLICIES = ("strict", "evolve")
DEFAULT_SCHEMA_POLICY = "strict"


def validate_schema_policy(policy: str, where: str = "") -> str:
    if policy not in SCHEMA_POLICIES:
        raise DatasetError(f"{where}unknown schema policy {policy!r:.80}: use one of {', '.join(SCHEMA_POLICIES)}")
    return policy


# What the gate does once the audit has passed (`merge`: publish to main; `inspect`: keep the branch at the audited
# commit and record what publish would record, for `wap publish BRANCH`) and once it has failed (`delete` the
# branch; `inspect`: keep it). Bauplan's WAP options of the same names.
ON_SUCCESS = ("merge", "inspect")
ON_FAILURE = ("delete", "inspect")
DEFAULT_ON_SUCCESS, DEFAULT_ON_FAILURE = "merge", "delete"
WAP_OPTIONS = ("on_success", "on_failure")  # their keys in gx/datasets.yml, for a dataset and for a group


def validate_on_success(value: object, where: str = "") -> str:
    if value not in ON_SUCCESS:
        raise DatasetError(f"{where}unknown on_success {value!r:.80}: use one of {', '.join(ON_SUCCESS)}")
    return str(value)


def validate_on_failure(value: object, where: str = "") -> str:
    if value not in ON_FAILURE:
        raise DatasetError(f"{where}unknown on_failure {value!r:.80}: use one of {', '.join(ON_FAILURE)}")
    return str(value)


def validate_key(value: object, where: str = "") -> tuple[str, ...]:
    """A dataset's ``key``: one column name or a list of distinct ones (none: rows are named by position)."""
    if value is None:
        return ()
    columns = [value] if isinstance(value, str) else value
    if not isinstance(columns, list) or not all(isinstance(c, str) and c.strip() for c in columns):
        raise DatasetError(f"{where}key must be a column name or a list of column names, got {value!r:.80}")
    if len(set(columns)) != len(columns):
        raise DatasetError(f"{where}key names a column twice: {', '.join(columns)}")
    return tuple(columns)


def resolve_wap_options(
    declared: Dataset | Group, on_success: str | None, on_failure: str | None, keep_failed_branch: bool = False
) -> tuple[str, str]:
    """A run's (on_success, on_failure): what the run says, else what the dataset or group declares.
    ``keep_failed_branch`` is the older spelling of ``on_failure="inspect"``."""
    if keep_failed_branch and on_failure not in (None, "inspect"):
        raise DatasetError(f"--keep-failed-branch is --on-failure inspect: not with --on-failure {on_failure!r:.80}")
    success = declared.on_success if on_success is None else validate_on_success(on_success, "--on-success: ")
    if keep_failed_branch:
        return success, "inspect"
    return success, declared.on_failure if on_failure is None else validate_on_failure(on_failure, "--on-failure: ")


def check_source_for_backend(dataset: str, source: str, backend: str, *, group: str | None = None) -> None:
    """Refuse, before any branch exists, a source the backend cannot read: Bauplan imports from S3 only."""
    if backend != "bauplan" or source.startswith("s3://"):
        return
    override = f"--source {dataset}=s3://bucket/key" if group else "--source s3://bucket/key"
    who = f"group {group}: dataset {dataset}" if group else f"dataset {dataset}"
    raise DatasetError(
        f"{who}: source {source:.200} cannot be read by Bauplan, which imports from S3 only: upload it to S3 and"
        f" pass {override}, or declare an s3:// source"
    )


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str
    table: str
    namespace: str = DEFAULT_NAMESPACE
    checkpoint: str = ""
    schedule: str | None = None
    mode: str = DEFAULT_MODE
    schema: str = DEFAULT_SCHEMA_POLICY
    on_success: str = DEFAULT_ON_SUCCESS
    on_failure: str = DEFAULT_ON_FAILURE
    # The columns that identify a row (e.g. PassengerId): reports name failing rows by them, not by position.
    key: tuple[str, ...] = ()

    @property
    def fqn(self) -> str:
        return f"{self.namespace}.{self.table}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("name")
        if data["schema"] == DEFAULT_SCHEMA_POLICY:
            data.pop("schema")  # the default, and only meaningful for appends: not written unless chosen
        for key, default in (("on_success", DEFAULT_ON_SUCCESS), ("on_failure", DEFAULT_ON_FAILURE)):
            if data[key] == default:
                data.pop(key)
        if data["key"]:
            data["key"] = list(data["key"])
        else:
            data.pop("key")
        return data


def gx_dir() -> Path:
    return Path(os.environ.get("WAP_GX_DIR") or REPO_GX_DIR)


def datasets_file() -> Path:
    return Path(os.environ.get("WAP_DATASETS") or gx_dir() / "datasets.yml")


def validate_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not _DATASET_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid dataset name {name!r:.80}: use lowercase letters, digits and '_', starting with a letter"
        )
    return name


def _read_declarations(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DatasetError(f"dataset declarations not found: {path}") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a top-level 'datasets:' mapping")
    unknown = set(raw) - {"datasets", "groups"}
    if unknown:
        raise DatasetError(f"{path}: unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")
    return raw


def load_datasets(path: Path | None = None) -> dict[str, Dataset]:
    path = path or datasets_file()
    raw = _read_declarations(path)
    entries = raw.get("datasets")
    if not isinstance(entries, dict):
        raise DatasetError(f"{path}: expected a top-level 'datasets:' mapping")
    datasets = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not entry.get("source"):
            raise DatasetError(f"{path}: dataset {name!r} needs at least a 'source'")
        unknown = set(entry) - {
            "source",
            "table",
            "namespace",
            "checkpoint",
            "schedule",
            "mode",
            "schema",
            "key",
            *WAP_OPTIONS,
        }
        if unknown:
            raise DatasetError(f"{path}: dataset {name!r} has unknown keys: {', '.join(sorted(unknown))}")
        validate_dataset_name(str(name))
        where = f"{path}: dataset {name!r}: "
        dataset = Dataset(
            name=name,
            source=str(entry["source"]),
            table=validate_identifier(entry.get("table") or name, "table"),
            namespace=validate_identifier(entry.get("namespace") or DEFAULT_NAMESPACE, "namespace"),
            checkpoint=str(entry.get("checkpoint") or name),
            schedule=entry.get("schedule") or None,
            mode=validate_mode(entry.get("mode", DEFAULT_MODE), where),
            schema=validate_schema_policy(entry.get("schema", DEFAULT_SCHEMA_POLICY), where),
            on_success=validate_on_success(entry.get("on_success", DEFAULT_ON_SUCCESS), where),
            on_failure=validate_on_failure(entry.get("on_failure", DEFAULT_ON_FAILURE), where),
            key=validate_key(entry.get("key"), where),
        )
        datasets[name] = dataset
    return datasets


@dataclass(frozen=True)
class Group:
    """Related datasets written to one branch, each audited by its own checkpoint, then together by the group's
    cross-table rules (``checkpoint``, None: none), and published in one merge commit or not at all."""

    name: str
    members: tuple[str, ...]  # dataset names, in the order they are written
    checkpoint: str | None = None
    schedule: str | None = None
    on_success: str = DEFAULT_ON_SUCCESS  # the group's, not its members': a group publishes (or is kept) as one
    on_failure: str = DEFAULT_ON_FAILURE


def load_groups(path: Path | None = None) -> dict[str, Group]:
    """The declared groups, checked against the datasets: every member a declared dataset, in one group only,
    no two members writing the same table, no group named like a dataset, no group inside a group."""
    path = path or datasets_file()
    raw = _read_declarations(path)
    datasets = load_datasets(path)
    entries = raw.get("groups") or {}
    if not isinstance(entries, dict):
        raise DatasetError(f"{path}: 'groups:' must be a mapping of group names to their members")
    groups: dict[str, Group] = {}
    owner: dict[str, str] = {}
    for name, entry in entries.items():
        where = f"{path}: group {name!r}"
        validate_dataset_name(str(name))
        if name in datasets:
            raise DatasetError(f"{where} has the name of a dataset: give the group another name")
        if not isinstance(entry, dict) or not isinstance(entry.get("members"), list) or not entry["members"]:
            raise DatasetError(f"{where} needs 'members:', a list of the datasets it publishes together")
        unknown = set(entry) - {"members", "checkpoint", "schedule", *WAP_OPTIONS}
        if unknown:
            raise DatasetError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        members = tuple(str(m) for m in entry["members"])
        tables: dict[str, str] = {}
        for member in members:
            if member in entries:
                raise DatasetError(f"{where}: member {member!r} is a group; {_nesting(entries, str(name))}")
            if member not in datasets:
                known = ", ".join(sorted(datasets)) or "none"
                raise DatasetError(f"{where}: member {member!r} is not a declared dataset (declared: {known})")
            if member in owner:
                other = owner[member] if owner[member] != name else "this group twice"
                raise DatasetError(
                    f"{where}: dataset {member!r} is already a member of {other}; a dataset belongs"
                    " to one group at most"
                )
            owner[member] = str(name)
            fqn = datasets[member].fqn
            if fqn in tables:
                raise DatasetError(f"{where}: members {tables[fqn]!r} and {member!r} both write table {fqn}")
            tables[fqn] = member
        checkpoint = entry.get("checkpoint", name)  # null: no cross-table rules
        groups[str(name)] = Group(
            name=str(name),
            members=members,
            checkpoint=None if checkpoint is None else str(checkpoint),
            schedule=entry.get("schedule") or None,
            on_success=validate_on_success(entry.get("on_success", DEFAULT_ON_SUCCESS), f"{where}: "),
            on_failure=validate_on_failure(entry.get("on_failure", DEFAULT_ON_FAILURE), f"{where}: "),
        )
    return groups


def _nesting(entries: dict, start: str) -> str:
    """Why a group may not list a group: name the cycle if the listing forms one."""
    path, seen = [start], {start}
    while True:
        nested = [str(m) for m in (entries.get(path[-1]) or {}).get("members") or [] if str(m) in entries]
        if not nested:
            return "groups do not nest: list its datasets instead"
        if nested[0] in seen:
            return f"groups do not nest, and these form a cycle: {' -> '.join([*path, nested[0]])}"
        path.append(nested[0])
        seen.add(nested[0])


def get_group(name: str, path: Path | None = None) -> Group:
    return _declared("group", name, load_groups(path), path)


def group_of(dataset: str, path: Path | None = None) -> Group | None:
    """The group a dataset belongs to, if any."""
    return next((g for g in load_groups(path).values() if dataset in g.members), None)


def get_dataset(name: str, path: Path | None = None) -> Dataset:
    return _declared("dataset", name, load_datasets(path), path)


def _declared(kind: str, name: str, declared: dict[str, T], path: Path | None) -> T:
    if name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise DatasetError(f"unknown {kind} {name!r:.80} (declared: {known}; see {path or datasets_file()})")
    return declared[name]


def save_dataset(dataset: Dataset, path: Path | None = None) -> None:
    """Add or replace one declaration, keeping the others (used by `wap suite init`)."""
    path = path or datasets_file()
    text = path.read_text() if path.exists() else ""
    raw = yaml.safe_load(text) if text else None
    raw = raw if isinstance(raw, dict) else {}
    raw.setdefault("datasets", {})[dataset.name] = dataset.to_dict()
    if "groups" in raw:  # after the datasets, as the file documents them
        raw["groups"] = raw.pop("groups")
    # yaml.safe_dump drops comments: keep at least the leading comment block that documents the file.
    header = "".join(line + "\n" for line in _leading_comments(text))
    staged = path.with_suffix(".yml.tmp")
    staged.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    os.replace(staged, path)  # never a half-written declarations file


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines
