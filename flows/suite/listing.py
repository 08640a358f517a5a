"""`wap suite list` and `wap suite show`: every suite at a glance, and one suite as rows (no GX import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .project import GxProject, SuiteError, display_path, load_project, resolve_suite, resolve_suites


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
    severity: str = "critical"  # GX's severity: critical blocks a publish, warning and info only report


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
        # As GX reads it: absent means critical; an invalid value is shown as written (`wap suite check` reports it).
        severity=str(raw.get("severity") or "critical"),
    )


def show_suites(dataset: str, project: GxProject | None = None) -> list[SuiteView]:
    """Every suite of the dataset's checkpoint (the batch suite, then the table suite), or the suite so named."""
    project = project or load_project()
    names, _ = resolve_suites(dataset, project)
    return [show_suite(dataset, project, suite=name) for name in names]


def show_suite(dataset: str, project: GxProject | None = None, *, suite: str | None = None) -> SuiteView:
    """The dataset's batch suite (or ``suite``, one of its checkpoint's)."""
    project = project or load_project()
    name, spec = resolve_suite(dataset, project)
    name = suite or name
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
