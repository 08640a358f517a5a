"""What the doctor reads: the catalog (read-only) and the journal, and the reports it writes."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..names import MAIN
from ..refs import JOURNAL_DIR, TAG_OP, UNTAG_OP, commit_hash_of
from ..storage import on_read_only_fs, readonly_uri

CATALOG_FILE = "catalog.db"
DAMAGED_PREFIX = f"{CATALOG_FILE}.damaged-"
REBUILD_PREFIX = f"{CATALOG_FILE}.rebuild-"
INIT_PREFIX = f"{CATALOG_FILE}.init-"
REBUILD_OP = "rebuild"
_JOURNAL_NAME = re.compile(r"(\d{12})\.(\d{20})\.([cr])\.([0-9a-f]+)\.json")

Severity = Literal["error", "warning", "info"]


# ------------------------------------------------------------------------------------------ reports
@dataclass(frozen=True)
class Finding:
    severity: Severity  # error: something a command will refuse or lose; warning: worth knowing; info
    message: str  # one line, naming the path, ref or table


@dataclass
class DoctorReport:
    root: Path
    findings: list[Finding] = field(default_factory=list)
    branches: int = 0
    commits: int = 0
    orphan_files: int = 0
    orphan_bytes: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def healthy(self) -> bool:
        return not self.errors

    def add(self, severity: Severity, message: str) -> None:
        self.findings.append(Finding(severity, " ".join(message.split())))


@dataclass(frozen=True)
class BranchOutcome:
    branch: str
    status: Literal["kept", "rolled back", "dropped", "reset"]
    old: str | None  # the head it had (catalog, else journal)
    new: str | None  # the head it has now (None: dropped)
    reason: str = ""  # why it was rolled back, dropped or reset


@dataclass
class RebuildReport:
    root: Path
    commits: int
    branches: list[BranchOutcome]
    damaged_copy: Path | None  # where the old catalog was kept
    sources: list[str]  # what the commits came from: "journal", "old catalog"
    tags: list[BranchOutcome] = field(default_factory=list)  # each tag kept or dropped (a tag is never rolled back)


@dataclass
class ReclaimReport:
    files: int = 0
    bytes: int = 0
    young: int = 0  # orphans kept because they are younger than the grace period
    skipped: list[str] = field(default_factory=list)  # table directories left alone, with why
    busy: bool = False  # a writer held writers.lock: nothing was reclaimed
    dry_run: bool = False


# ------------------------------------------------------------------------------ catalog and journal
@dataclass(frozen=True)
class CommitRecord:
    seq: int
    hash: str
    parent: str | None
    merge_parent: str | None
    message: str
    author: str
    at: float
    properties: dict[str, str]
    tree: dict[str, str]


@dataclass
class CatalogState:
    commits: dict[str, CommitRecord]
    refs: dict[str, tuple[str, float]]  # branch -> (head, created_at)
    tags: dict[str, tuple[str, float]] = field(default_factory=dict)  # tag -> (commit, created_at)


@dataclass(frozen=True)
class _Event:
    seq: int
    kind: str  # "c" commit entry, "r" branch change
    time_ns: int
    op: str
    branch: str
    hash: str


@dataclass
class Journal:
    commits: dict[str, CommitRecord] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)  # in the order they happened
    bad: list[str] = field(default_factory=list)  # entries that could not be used, with why
    temp_files: list[Path] = field(default_factory=list)  # unfinished entries of killed writers

    def replay(self) -> tuple[dict[str, tuple[str, float]], dict[str, list[str]]]:
        """Branch heads after every entry, and each branch's heads oldest first (since its last creation)."""
        heads: dict[str, tuple[str, float]] = {}
        history: dict[str, list[str]] = {}
        for event in self.events:
            if event.kind == "c" and event.op == REBUILD_OP:
                continue  # a commit journaled by a rebuild: it moved no branch
            if event.op in (TAG_OP, UNTAG_OP):
                continue  # a tag's entry: see tags()
            if event.op == "delete":
                heads.pop(event.branch, None)
                history.pop(event.branch, None)
                continue
            created = heads[event.branch][1] if event.branch in heads else event.time_ns / 1e9
            heads[event.branch] = (event.hash, created)
            history.setdefault(event.branch, []).append(event.hash)
        return heads, history

    def tags(self) -> dict[str, tuple[str, float]]:
        """Each tag after every entry: (commit, created_at). Tags never move: an entry makes or deletes one."""
        found: dict[str, tuple[str, float]] = {}
        for event in self.events:
            if event.op == TAG_OP:
                found[event.branch] = (event.hash, event.time_ns / 1e9)
            elif event.op == UNTAG_OP:
                found.pop(event.branch, None)
        return found


def read_journal(root: Path) -> Journal:
    """Every entry of `root/journal`, ordered as the transactions they describe were committed.

    A ref entry records the newest commit seq at its time, so a commit entry with the same seq was committed
    before it: the order is (seq, commit entries first, write time).
    """
    journal = Journal()
    directory = root / JOURNAL_DIR
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return journal
    except OSError as exc:
        journal.bad.append(f"{directory}: cannot be listed: {exc.strerror or exc}")
        return journal
    for name in names:
        path = directory / name
        if name.startswith(".tmp-"):
            journal.temp_files.append(path)
            continue
        match = _JOURNAL_NAME.fullmatch(name)
        if match is None:
            journal.bad.append(f"{path}: not a journal entry name")
            continue
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            event = _Event(
                int(entry["seq"]), match.group(3), int(match.group(2)), str(entry["op"]), str(entry["branch"]),
                str(entry["hash"]),
            )  # fmt: skip
            if event.kind == "c":
                body = entry["body"]
                if commit_hash_of(body) != event.hash:
                    raise ValueError("its body does not hash to its commit")
                data = json.loads(body)
                parents = list(data["parents"]) + [None, None]
                journal.commits[event.hash] = CommitRecord(
                    seq=event.seq,
                    hash=event.hash,
                    parent=parents[0],
                    merge_parent=parents[1],
                    message=str(data["message"]),
                    author=str(data["author"]),
                    at=float(data["at"]),
                    properties={str(k): str(v) for k, v in data["properties"].items()},
                    tree={str(k): str(v) for k, v in data["tree"].items()},
                )
            journal.events.append(event)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            journal.bad.append(f"{path}: unreadable ({type(exc).__name__}: {exc})")
    journal.events.sort(key=lambda e: (e.seq, e.kind != "c", e.time_ns))
    return journal


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write (query_only); on a read-only file system, SQLite's read-only mode.

    Not `mode=ro` by default: that leaves an empty -wal and a -shm behind, which a normal connection removes
    when it closes (after checkpointing a WAL, which only moves committed pages into the file).
    """
    if on_read_only_fs(path.parent):
        return sqlite3.connect(readonly_uri(path), uri=True, timeout=30)
    try:
        con = sqlite3.connect(path, timeout=30)
        con.execute("PRAGMA query_only=1")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            raise
        return sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=30)


def read_catalog(path: Path) -> tuple[CatalogState | None, list[str]]:
    """The catalog's commits and refs, or None and what is wrong with it (one line each).

    Never opens the file other than through SQLite: closing a plain descriptor of it would drop the POSIX
    locks this process's SQLite connections hold (see storage.check_header).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, [f"lakehouse catalog {path} does not exist"]
    except OSError as exc:
        return None, [f"lakehouse catalog {path} cannot be read: {exc.strerror or exc}"]
    if size == 0:
        return None, [f"lakehouse catalog {path} is empty (0 bytes)"]
    try:
        con = _open_readonly(path)
    except sqlite3.Error as exc:
        return None, [f"lakehouse catalog {path} is unreadable ({exc})"]
    try:
        problems: list[str] = []
        rows = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
        if rows != ["ok"]:
            problems.append(f"lakehouse catalog {path} fails SQLite's integrity check: {'; '.join(rows)[:300]}")
        wal = path.with_name(path.name + "-wal")
        if not (wal.exists() and wal.stat().st_size):
            pages = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
            if size < pages:
                problems.append(f"lakehouse catalog {path} is truncated ({size} of {pages} bytes)")
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted({"commits", "refs"} - names)
        if missing:
            problems.append(f"lakehouse catalog {path} lacks its {' and '.join(missing)} table(s)")
            return None, problems
        commits: dict[str, CommitRecord] = {}
        query = "SELECT seq, hash, parent, merge_parent, message, author, committed_at, properties, tree FROM commits"
        for seq, h, parent, merge_parent, message, author, at, props, tree in con.execute(query):
            try:
                commits[h] = CommitRecord(
                    seq, h, parent, merge_parent, message, author, at, json.loads(props), json.loads(tree)
                )
            except ValueError:
                problems.append(f"lakehouse catalog {path}: commit {h[:12]} has a table list that is not JSON")
        refs = {name: (h, at) for name, h, at in con.execute("SELECT name, hash, created_at FROM refs")}
        tags = (
            {name: (h, at) for name, h, at in con.execute("SELECT name, hash, created_at FROM tags")}
            if "tags" in names  # a catalog made before tags existed has no tags table: no tags
            else {}
        )
        if MAIN not in refs:
            problems.append(f"lakehouse catalog {path} has no main branch")
        if problems:
            return None, problems
        return CatalogState(commits, refs, tags), []
    except sqlite3.Error as exc:
        return None, [f"lakehouse catalog {path} is corrupt ({str(exc).splitlines()[0] if str(exc) else exc})"]
    finally:
        con.close()
