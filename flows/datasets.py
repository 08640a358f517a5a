"""Dataset declarations: the one file users edit to tell the gate what to ingest (`gx/datasets.yml`)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .lakehouse.errors import InvalidNameError
from .lakehouse.names import DEFAULT_NAMESPACE, validate_identifier

REPO_GX_DIR = Path(__file__).resolve().parent.parent / "gx"
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

    @property
    def fqn(self) -> str:
        return f"{self.namespace}.{self.table}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("name")
        if data["schema"] == DEFAULT_SCHEMA_POLICY:
            data.pop("schema")  # the default, and only meaningful for appends: not written unless chosen
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


def load_datasets(path: Path | None = None) -> dict[str, Dataset]:
    path = path or datasets_file()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DatasetError(f"dataset declarations not found: {path}") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from exc
    entries = raw.get("datasets") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise DatasetError(f"{path}: expected a top-level 'datasets:' mapping")
    datasets = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not entry.get("source"):
            raise DatasetError(f"{path}: dataset {name!r} needs at least a 'source'")
        unknown = set(entry) - {"source", "table", "namespace", "checkpoint", "schedule", "mode", "schema"}
        if unknown:
            raise DatasetError(f"{path}: dataset {name!r} has unknown keys: {', '.join(sorted(unknown))}")
        validate_dataset_name(str(name))
        dataset = Dataset(
            name=name,
            source=str(entry["source"]),
            table=validate_identifier(entry.get("table") or name, "table"),
            namespace=validate_identifier(entry.get("namespace") or DEFAULT_NAMESPACE, "namespace"),
            checkpoint=str(entry.get("checkpoint") or name),
            schedule=entry.get("schedule") or None,
            mode=validate_mode(entry.get("mode", DEFAULT_MODE), f"{path}: dataset {name!r}: "),
            schema=validate_schema_policy(entry.get("schema", DEFAULT_SCHEMA_POLICY), f"{path}: dataset {name!r}: "),
        )
        datasets[name] = dataset
    return datasets


def get_dataset(name: str, path: Path | None = None) -> Dataset:
    datasets = load_datasets(path)
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "none"
        raise DatasetError(f"unknown dataset {name!r:.80} (declared: {known}; see {path or datasets_file()})")
    return datasets[name]


def save_dataset(dataset: Dataset, path: Path | None = None) -> None:
    """Add or replace one declaration, keeping the others (used by `wap suite init`)."""
    path = path or datasets_file()
    text = path.read_text() if path.exists() else ""
    raw = yaml.safe_load(text) if text else None
    raw = raw if isinstance(raw, dict) else {}
    raw.setdefault("datasets", {})[dataset.name] = dataset.to_dict()
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
