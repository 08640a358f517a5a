"""`wap suite diff`: what changed in a suite since the last git commit, expectation by expectation."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .check import short
from .listing import _view, column_of, notes_text
from .project import GxProject, SuiteError, display_path, load_project, read_json, resolve_suite, resolve_suites


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


def diff_suites(dataset: str, project: GxProject | None = None) -> list[SuiteDiff]:
    """`diff_suite` for every suite of the dataset's checkpoint, the batch suite first."""
    project = project or load_project()
    names, _ = resolve_suites(dataset, project)
    return [diff_suite(dataset, project, suite=name) for name in names]


def diff_suite(dataset: str, project: GxProject | None = None, *, suite: str | None = None) -> SuiteDiff:
    """What changed in the dataset's suite JSON since the last commit: expectations added, removed, changed."""
    project = project or load_project()
    name = suite or resolve_suite(dataset, project)[0]
    path = project.suite_path(name)
    current: dict[str, Any] | None = None
    if path.exists():
        current, error = read_json(path)
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


def _kwargs(e: dict[str, Any]) -> dict[str, Any]:
    kwargs = e.get("kwargs")
    return kwargs if isinstance(kwargs, dict) else {}


def _match_key(e: dict[str, Any]) -> tuple[str, str | None]:
    return str(e.get("type")), column_of(_kwargs(e), e.get("type"))


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
    changes += [(j, ExpectationChange("added", *_match_key(new[j]), _as_written(new[j]))) for j in still_new]
    ordered = [c for _, c in sorted(changes, key=lambda pair: pair[0])]
    removed = [ExpectationChange("removed", *_match_key(old[i]), _as_written(old[i])) for i in sorted(free_old)]
    return ordered + removed


def _as_written(e: dict[str, Any]) -> list[str]:
    """An added or removed rule's arguments (its column is shown beside it), ``mostly`` and an explicit severity,
    written as a changed argument's are (``key: value``)."""
    view = _view(0, e)
    details = [f"{key}: {short(value)}" for key, value in view.arguments.items()]
    if view.mostly is not None:
        details.append(f"mostly: {short(view.mostly)}")
    if "severity" in e:
        details.append(f"severity: {short(e['severity'])}")
    return details


def _expectation_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    details = []
    if old.get("type") != new.get("type"):
        details.append(f"type: {old.get('type')} -> {new.get('type')}")
    old_kwargs, new_kwargs = _kwargs(old), _kwargs(new)
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
        parts = ([f"+{short(added)}"] if added else []) + ([f"-{short(removed)}"] if removed else [])
        return [f"{key}: {' '.join(parts) or 'reordered'}"]

    def show(value: Any) -> str:
        return "(unset)" if value is _UNSET else short(value)

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
