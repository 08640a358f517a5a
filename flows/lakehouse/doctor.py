"""Check an embedded lakehouse and recover it: `wap doctor` and `wap doctor --rebuild`, and gc's file reclaim.

What a lakehouse holds (see local.py): `catalog.db` (commits, trees, branch heads), `journal/` (one immutable
JSON file per committed commit or branch change, written after its transaction), `warehouse/` (Iceberg
metadata, manifest lists, manifests and Parquet files). The three must agree:

- `check_lakehouse` (read-only) opens the catalog read-only (SQLite `mode=ro`) and runs `PRAGMA
  integrity_check`, checks that every branch points at a commit in the catalog and that every file each
  branch head needs exists (metadata file, manifest list, manifests, data files), replays the journal and
  compares it with the catalog, and counts orphan files: files under `warehouse/` that no commit (of the
  catalog or the journal) references, with their size.
- `rebuild_catalog` builds a new catalog from the journal (plus every commit the old catalog still yields,
  if it is readable), moving each branch to the newest commit it had whose files all still exist: rolled
  back when its head names a missing file, dropped when none of its commits is complete (main is never
  dropped: it falls back to an empty commit). The new catalog is written to a temporary file, fsynced and
  renamed over `catalog.db`; the old one is kept beside it as `catalog.db.damaged-<UTC timestamp>`
  (hard link, with its -wal and -shm), never deleted. It holds `writers.lock` exclusively and refuses if
  another process is writing. Readers that open the catalog meanwhile see the old or the new file.
- `reclaim_files` (used by `wap gc`) deletes orphan files older than a grace period, holding `writers.lock`
  exclusively: every writer holds it shared from its first file to its journal entry, so while gc holds it
  no write is in flight and a file that no commit references can only belong to a write that died.
  A table directory whose referenced metadata cannot be read is left alone (what it references is unknown).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import BackendUnavailableError, CatalogUnusableError, StorageError
from .names import MAIN
from .refs import (
    CATALOG_SCHEMA,
    JOURNAL_DIR,
    WRITERS_LOCK,
    commit_hash_of,
    on_read_only_fs,
    readonly_uri,
    storage_error,
)

if TYPE_CHECKING:
    from pyiceberg.table.metadata import TableMetadata

    from .local import RelocatingFileIO

CATALOG_FILE = "catalog.db"
DAMAGED_PREFIX = f"{CATALOG_FILE}.damaged-"
_REBUILD_PREFIX = f"{CATALOG_FILE}.rebuild-"
_INIT_PREFIX = f"{CATALOG_FILE}.init-"
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
            if event.op == "delete":
                heads.pop(event.branch, None)
                history.pop(event.branch, None)
                continue
            created = heads[event.branch][1] if event.branch in heads else event.time_ns / 1e9
            heads[event.branch] = (event.hash, created)
            history.setdefault(event.branch, []).append(event.hash)
        return heads, history


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
    locks this process's SQLite connections hold (see refs._check_header).
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
        if MAIN not in refs:
            problems.append(f"lakehouse catalog {path} has no main branch")
        if problems:
            return None, problems
        return CatalogState(commits, refs), []
    except sqlite3.Error as exc:
        return None, [f"lakehouse catalog {path} is corrupt ({str(exc).splitlines()[0] if str(exc) else exc})"]
    finally:
        con.close()


# ------------------------------------------------------------------------------------ table files
def _locate(root: Path, location: str) -> Path:
    path = Path(location.removeprefix("file://"))
    return path if path.is_absolute() else root / path


_Loaded = tuple["TableMetadata", "RelocatingFileIO", str] | tuple[None, None, str]


class _Files:
    """What the Iceberg files of a lakehouse reference, read once each (many commits share them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._metadata: dict[str, _Loaded] = {}
        self._complete: dict[str, str] = {}

    def load(self, location: str) -> _Loaded:
        """(metadata, io, problem) of a tree location: both set and problem "" when it reads."""
        if location in self._metadata:
            return self._metadata[location]
        from pyiceberg.serializers import FromInputFile

        from .local import RECORDED_ROOTS_PROPERTY, ROOT_PROPERTY, RelocatingFileIO, _recorded_root

        path = _locate(self.root, location)
        result: _Loaded
        if not path.is_file():
            result = (None, None, f"metadata file missing: {path}")
        else:
            try:
                base = RelocatingFileIO({ROOT_PROPERTY: str(self.root)})
                metadata = FromInputFile.table_metadata(base.new_input(str(path)))
                recorded = _recorded_root(metadata.location, location)
                io = RelocatingFileIO(
                    {
                        **metadata.properties,
                        ROOT_PROPERTY: str(self.root),
                        RECORDED_ROOTS_PROPERTY: json.dumps([recorded] if recorded else []),
                    }
                )
                result = (metadata, io, "")
            except Exception as exc:  # noqa: BLE001 - pyiceberg raises many types for a bad file
                result = (None, None, f"metadata file unreadable: {path} ({type(exc).__name__})")
        self._metadata[location] = result
        return result

    def head_problem(self, table: str, location: str) -> str:
        """ "" if every file the table's current snapshot needs exists, else the first that does not."""
        if location not in self._complete:
            self._complete[location] = self._check(location)
        problem = self._complete[location]
        return f"table {table}: {problem}" if problem else ""

    def _check(self, location: str) -> str:
        metadata, io, problem = self.load(location)
        if problem:
            return problem
        assert metadata is not None and io is not None  # load() returns both when it reports no problem
        snapshot = metadata.current_snapshot()
        if snapshot is None:
            return ""
        listed = _path(io.translate(snapshot.manifest_list))
        if not os.path.isfile(listed):
            return f"manifest list missing: {listed}"
        try:
            manifests = snapshot.manifests(io)
        except Exception as exc:  # noqa: BLE001
            return f"manifest list unreadable: {listed} ({type(exc).__name__})"
        for manifest in manifests:
            path = _path(io.translate(manifest.manifest_path))
            if not os.path.isfile(path):
                return f"manifest missing: {path}"
            try:
                entries = manifest.fetch_manifest_entry(io, discard_deleted=True)
            except Exception as exc:  # noqa: BLE001
                return f"manifest unreadable: {path} ({type(exc).__name__})"
            for entry in entries:
                data = _path(io.translate(entry.data_file.file_path))
                if not os.path.isfile(data):
                    return f"data file missing: {data}"
        return ""

    def tree_problem(self, tree: dict[str, str]) -> str:
        for table, location in sorted(tree.items()):
            problem = self.head_problem(table, location)
            if problem:
                return problem
        return ""

    def referenced(self, locations: Iterable[str]) -> tuple[set[str], dict[str, str]]:
        """Every file the given metadata locations reference (all snapshots), and table directories whose
        references could not all be read (directory -> why): nothing in those may be called an orphan."""
        seen: set[str] = set()
        unsafe: dict[str, str] = {}
        lists_read: set[str] = set()
        manifests_read: set[str] = set()
        for location in sorted(set(locations)):
            path = _locate(self.root, location)
            seen.add(os.path.normpath(path))
            table_dir = os.path.normpath(path.parent.parent)
            metadata, io, problem = self.load(location)
            if problem:
                unsafe.setdefault(table_dir, problem)
                continue
            assert metadata is not None and io is not None  # load() returns both when it reports no problem
            for logged in metadata.metadata_log:
                seen.add(_path(io.translate(logged.metadata_file)))
            for snapshot in metadata.snapshots:
                listed = _path(io.translate(snapshot.manifest_list))
                seen.add(listed)
                if listed in lists_read:
                    continue
                lists_read.add(listed)
                try:
                    manifests = snapshot.manifests(io)
                except Exception as exc:  # noqa: BLE001
                    unsafe.setdefault(table_dir, f"manifest list unreadable: {listed} ({type(exc).__name__})")
                    continue
                for manifest in manifests:
                    mpath = _path(io.translate(manifest.manifest_path))
                    seen.add(mpath)
                    if mpath in manifests_read:
                        continue
                    manifests_read.add(mpath)
                    try:
                        entries = manifest.fetch_manifest_entry(io, discard_deleted=False)
                    except Exception as exc:  # noqa: BLE001
                        unsafe.setdefault(table_dir, f"manifest unreadable: {mpath} ({type(exc).__name__})")
                        continue
                    for entry in entries:
                        seen.add(_path(io.translate(entry.data_file.file_path)))
        return seen, unsafe


def _path(location: str) -> str:
    return os.path.normpath(location.removeprefix("file://"))


@dataclass
class _Orphans:
    files: list[tuple[Path, int]] = field(default_factory=list)  # (path, size), old enough to reclaim
    young: list[tuple[Path, int]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)


def _find_orphans(root: Path, locations: set[str], journal: Journal, *, grace_s: float, now: float) -> _Orphans:
    referenced, unsafe = _Files(root).referenced(locations)
    found = _Orphans(skipped=dict(unsafe))
    candidates: list[Path] = []
    warehouse = root / "warehouse"
    for dirpath, _dirs, files in os.walk(warehouse):
        inside = os.path.normpath(dirpath)
        if any(inside == d or inside.startswith(d + os.sep) for d in unsafe):
            continue
        paths = (Path(dirpath) / name for name in files)
        candidates.extend(p for p in paths if os.path.normpath(p) not in referenced)
    # Leftovers of killed catalog builds and journal writes: never part of any commit.
    with suppress(OSError):
        candidates.extend(root / name for name in os.listdir(root) if name.startswith((_REBUILD_PREFIX, _INIT_PREFIX)))
    candidates.extend(journal.temp_files)
    for path in candidates:
        try:
            st = path.lstat()
        except OSError:
            continue  # gone meanwhile
        (found.young if now - st.st_mtime < grace_s else found.files).append((path, st.st_size))
    return found


# ------------------------------------------------------------------------------------------ locking
@contextmanager
def writers_excluded(root: Path, *, wait_s: float, doing: str) -> Iterator[bool]:
    """Hold `writers.lock` exclusively (yield True), or yield False if a writer still held it after `wait_s`.

    Writers take it shared around every write (files, catalog transaction, journal entry), so holding it
    exclusively proves that no write is in flight. Polled, never queued: a waiting exclusive request would
    otherwise stall every new writer behind it.
    """
    lock_path = root / WRITERS_LOCK
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(exc, lock_path, doing) from exc
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise storage_error(exc, lock_path, doing) from exc
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)  # releases the lock


# -------------------------------------------------------------------------------------------- check
def check_lakehouse(path: str | os.PathLike[str]) -> DoctorReport:
    """Check a lakehouse directory without writing anything; see the module docstring for what is checked."""
    root = Path(path).expanduser().resolve()
    report = DoctorReport(root)
    if not root.is_dir():
        report.add("error", f"no lakehouse at {root}: the directory does not exist")
        return report
    # The journal first: entries are written after their transaction, so a catalog read after the journal
    # holds every commit the journal showed, even while writers run.
    journal = read_journal(root)
    catalog, problems = read_catalog(root / CATALOG_FILE)
    for problem in problems:
        report.add("error", problem)
    for bad in journal.bad:
        report.add("warning", f"journal entry {bad}")
    files = _Files(root)
    journal_heads, _ = journal.replay()

    if catalog is not None:
        report.branches, report.commits = len(catalog.refs), len(catalog.commits)
        for branch, (head, _at) in sorted(catalog.refs.items()):
            commit = catalog.commits.get(head)
            if commit is None:
                report.add("error", f"branch {branch} points at commit {head[:12]}, which is not in the catalog")
                continue
            problem = files.tree_problem(commit.tree)
            if problem:
                report.add("error", f"branch {branch} (commit {head[:12]}): {problem}")
        _compare_journal(report, catalog, journal, journal_heads)
    elif journal.commits:
        report.add(
            "info",
            f"journal {root / JOURNAL_DIR} holds {len(journal.commits)} commits and {len(journal_heads)} branches: "
            "`wap doctor --rebuild` rebuilds the catalog from it",
        )
    elif (root / CATALOG_FILE).exists():
        report.add("error", f"journal {root / JOURNAL_DIR} is empty: there is nothing to rebuild the catalog from")

    locations = {loc for c in (catalog.commits.values() if catalog else ()) for loc in c.tree.values()}
    locations |= {loc for c in journal.commits.values() for loc in c.tree.values()}
    orphans = _find_orphans(root, locations, journal, grace_s=0, now=time.time())
    report.orphan_files, report.orphan_bytes = len(orphans.files), orphans.bytes
    if orphans.files:
        report.add(
            "info",
            f"{len(orphans.files)} orphan files ({_size(orphans.bytes)}) under {root} are referenced by no commit "
            "(left by failed or killed writes): `wap gc` reclaims them",
        )
    for directory, why in sorted(orphans.skipped.items()):
        if not any(directory in f.message for f in report.errors):
            report.add("warning", f"table directory {directory}: {why}; its files are not counted as orphans")
    for name in sorted(os.listdir(root)):
        if name.startswith(DAMAGED_PREFIX) and not name.endswith(("-wal", "-shm")):
            report.add("info", f"old catalog kept by a rebuild: {root / name} (delete it once it is not needed)")
    return report


def _compare_journal(
    report: DoctorReport, catalog: CatalogState, journal: Journal, journal_heads: dict[str, tuple[str, float]]
) -> None:
    if not journal.events:
        report.add(
            "warning",
            f"journal {report.root / JOURNAL_DIR} is empty: the catalog could not be rebuilt if it were lost",
        )
        return
    lost = sorted((c for h, c in catalog.commits.items() if h not in journal.commits), key=lambda c: c.seq)
    if lost:
        report.add(
            "warning",
            f"{len(lost)} commits of the catalog are not in the journal (newest {lost[-1].hash[:12]}): "
            "their entries were never written (disk full or a crash right after the commit)",
        )
    extra = sorted((c for h, c in journal.commits.items() if h not in catalog.commits), key=lambda c: c.seq)
    if extra:
        report.add(
            "error",
            f"the journal holds {len(extra)} commits that the catalog does not (newest {extra[-1].hash[:12]}): "
            "the catalog is older than its journal (restored from an older copy?)",
        )
    for branch in sorted(set(catalog.refs) | set(journal_heads)):
        ours, theirs = catalog.refs.get(branch), journal_heads.get(branch)
        if ours and theirs and ours[0] != theirs[0]:
            report.add("warning", f"branch {branch}: the catalog has {ours[0][:12]}, the journal {theirs[0][:12]}")
        elif ours and not theirs and branch in {e.branch for e in journal.events}:
            report.add("warning", f"branch {branch} exists in the catalog but the journal has it deleted")
        elif theirs and not ours:
            report.add("warning", f"branch {branch} is in the journal (at {theirs[0][:12]}) but not in the catalog")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # not reached


def format_size(n: int) -> str:
    """`n` bytes for people: 512 B, 3.4 MiB."""
    return _size(n)


# ------------------------------------------------------------------------------------------ rebuild
def rebuild_catalog(path: str | os.PathLike[str]) -> RebuildReport:
    """Rebuild `catalog.db` from the journal (and the old catalog's readable commits); see the module docstring.

    Raises BackendUnavailableError if another process is writing, CatalogUnusableError if there is nothing
    to rebuild from, StorageError if the directory cannot be written.
    """
    root = Path(path).expanduser().resolve()
    catalog_path = root / CATALOG_FILE
    if not root.is_dir():
        raise CatalogUnusableError(f"no lakehouse at {root}: the directory does not exist")
    # Before anything is written: a rebuild that cannot put its catalog in place must not start.
    if on_read_only_fs(root) or not os.access(root, os.W_OK):
        raise StorageError(f"lakehouse is read-only: cannot rebuild the catalog in {root}")
    if catalog_path.exists() and not os.access(catalog_path, os.W_OK):
        raise StorageError(f"lakehouse is read-only: cannot replace the catalog {catalog_path}")
    with writers_excluded(root, wait_s=0, doing="rebuild the lakehouse catalog") as excluded:
        if not excluded:
            raise BackendUnavailableError(
                f"another process is writing to the lakehouse {root} (it holds {root / WRITERS_LOCK}): "
                "let it finish, then rerun `wap doctor --rebuild`"
            )
        for name in os.listdir(root):
            if name.startswith(_REBUILD_PREFIX):  # a rebuild killed before its rename: never in use
                (root / name).unlink(missing_ok=True)
        old, _problems = read_catalog(catalog_path)
        journal = read_journal(root)
        commits = _merge_commits(journal, old)
        if not commits:
            raise CatalogUnusableError(
                f"nothing to rebuild the lakehouse catalog {catalog_path} from: the journal {root / JOURNAL_DIR} "
                "holds no commit and the catalog is unreadable"
            )
        sources = [s for s, used in (("journal", bool(journal.commits)), ("old catalog", old is not None)) if used]
        outcomes, refs = _choose_heads(root, commits, journal, old)
        if MAIN not in refs:  # main is never dropped: it restarts from an empty commit
            root_commit = _empty_root(commits)
            commits[root_commit.hash] = root_commit
            refs[MAIN] = (root_commit.hash, time.time())
            dropped = next(o for o in outcomes if o.branch == MAIN)
            outcomes.remove(dropped)
            outcomes.append(BranchOutcome(MAIN, "reset", dropped.old, root_commit.hash, dropped.reason))
        tmp = root / f"{_REBUILD_PREFIX}{uuid.uuid4().hex}"
        try:
            _write_catalog(tmp, commits, refs)
            damaged = _keep_aside(catalog_path)
            os.replace(tmp, catalog_path)  # atomic: readers see the old file or the new one
            _fsync_dir(root)
        except OSError as exc:
            raise storage_error(exc, catalog_path, "rebuild the lakehouse catalog") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the rebuilt catalog {tmp}: {exc}") from exc
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
        _journal_rebuild(root, commits, journal, refs)
    return RebuildReport(root, len(commits), sorted(outcomes, key=lambda o: o.branch), damaged, sources)


def _merge_commits(journal: Journal, old: CatalogState | None) -> dict[str, CommitRecord]:
    commits = dict(journal.commits)
    if old is not None:
        taken = {c.seq for c in commits.values()}
        for h, c in sorted(old.commits.items(), key=lambda item: item[1].seq):
            if h in commits:
                continue
            if c.seq in taken:  # two histories met (a catalog restored beside a newer journal): keep both
                c = replace(c, seq=max(taken) + 1)
            commits[h] = c
            taken.add(c.seq)
    return commits


def _choose_heads(
    root: Path, commits: dict[str, CommitRecord], journal: Journal, old: CatalogState | None
) -> tuple[list[BranchOutcome], dict[str, tuple[str, float]]]:
    """Each branch at the newest of its commits whose files all exist: the catalog's head (if readable), then
    its journaled heads newest first, then the first-parent ancestors of the newest one."""
    journal_heads, history = journal.replay()
    # A readable catalog is the authority on which branches exist (the journal can only lag behind it).
    current = dict(old.refs) if old is not None else journal_heads
    files = _Files(root)
    outcomes: list[BranchOutcome] = []
    refs: dict[str, tuple[str, float]] = {}
    for branch, (head, created) in sorted(current.items()):
        candidates = [head, *reversed(history.get(branch, []))]
        walk = commits.get(head)
        while walk is not None and walk.parent:
            candidates.append(walk.parent)
            walk = commits.get(walk.parent)
        first_problem = ""
        chosen = None
        for candidate in dict.fromkeys(candidates):
            commit = commits.get(candidate)
            problem = (
                f"commit {candidate[:12]} is in neither the catalog nor the journal"
                if commit is None
                else files.tree_problem(commit.tree)
            )
            if not problem:
                chosen = candidate
                break
            first_problem = first_problem or problem
        if chosen is None:
            reason = f"no commit of it has all its files ({first_problem})"
            outcomes.append(BranchOutcome(branch, "dropped", head, None, reason))
            continue
        refs[branch] = (chosen, created)
        if chosen == head:
            outcomes.append(BranchOutcome(branch, "kept", head, chosen))
        else:
            outcomes.append(BranchOutcome(branch, "rolled back", head, chosen, f"{head[:12]}: {first_problem}"))
    return outcomes, refs


def _empty_root(commits: dict[str, CommitRecord]) -> CommitRecord:
    at = time.time()
    message = "initialize lakehouse (rebuilt by wap doctor: no commit of main had all its files)"
    body = json.dumps(
        {"parents": [None, None], "tree": {}, "message": message, "author": "wap", "at": at, "properties": {}},
        sort_keys=True,
    )
    seq = max((c.seq for c in commits.values()), default=0) + 1
    return CommitRecord(seq, commit_hash_of(body), None, None, message, "wap", at, {}, {})


def _body(c: CommitRecord) -> str:
    # The exact text refs._insert_commit hashed: rebuilding it lets a commit known only to the catalog be journaled.
    return json.dumps(
        {
            "parents": [c.parent, c.merge_parent],
            "tree": c.tree,
            "message": c.message,
            "author": c.author,
            "at": c.at,
            "properties": c.properties,
        },
        sort_keys=True,
    )


def _write_catalog(tmp: Path, commits: dict[str, CommitRecord], refs: dict[str, tuple[str, float]]) -> None:
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=FULL")
        con.execute("BEGIN IMMEDIATE")
        for statement in CATALOG_SCHEMA.split(";"):
            if statement.strip():
                con.execute(statement)
        con.executemany(
            "INSERT INTO commits (seq, hash, parent, merge_parent, message, author, committed_at, properties, tree)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    c.seq, c.hash, c.parent, c.merge_parent, c.message, c.author, c.at, json.dumps(c.properties),
                    json.dumps(c.tree, sort_keys=True),
                )
                for c in sorted(commits.values(), key=lambda c: c.seq)
            ],
        )  # fmt: skip
        con.executemany("INSERT INTO refs VALUES (?, ?, ?)", [(b, h, at) for b, (h, at) in sorted(refs.items())])
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")  # what RefStore expects; persistent in the header
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("the rebuilt catalog fails its integrity check")
    finally:
        con.close()  # the last connection checkpoints and removes its WAL
    fd = os.open(tmp, os.O_RDONLY)  # the temporary file: no SQLite connection of ours has it open
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep_aside(catalog: Path) -> Path | None:
    """Keep the current catalog (and its WAL and shared-memory files) as catalog.db.damaged-<timestamp>.

    Hard links: catalog.db itself stays in place until the atomic rename replaces it, so a process killed
    here leaves the old state. Its WAL must then go: it belongs to the old file and would be replayed into
    the new one. (Copying falls back where links are not supported; this process has no SQLite connection
    on the catalog at this point, so a plain descriptor drops nobody's locks.)
    """
    if not catalog.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = catalog.with_name(f"{DAMAGED_PREFIX}{stamp}")
    for source, target in [(catalog, aside)] + [
        (catalog.with_name(catalog.name + s), aside.with_name(aside.name + s)) for s in ("-wal", "-shm")
    ]:
        if not source.exists():
            continue
        try:
            os.link(source, target)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            import shutil

            shutil.copy2(source, target)
    for side in ("-wal", "-shm"):
        catalog.with_name(catalog.name + side).unlink(missing_ok=True)
    return aside


def _journal_rebuild(
    root: Path, commits: dict[str, CommitRecord], journal: Journal, refs: dict[str, tuple[str, float]]
) -> None:
    """Journal what the rebuild decided, so that replaying the journal gives the rebuilt refs (best effort).

    Commits only the old catalog knew are journaled with op "rebuild" (a record of the commit that moves no
    branch); then every branch whose journaled head differs gets a "rebuild" entry, every journaled branch
    that is gone a "delete".
    """
    from .refs import RefStore

    store = RefStore.__new__(RefStore)  # only its journal writer: no connection, nothing opened
    store.root = root
    for c in sorted(commits.values(), key=lambda c: c.seq):
        if c.hash not in journal.commits and commit_hash_of(_body(c)) == c.hash:
            store._journal_write([(c.seq, c.hash, _body(c))], "", REBUILD_OP)
    top = max(c.seq for c in commits.values())
    journaled, _ = journal.replay()
    for branch, (head, _at) in sorted(refs.items()):
        if journaled.get(branch, ("",))[0] != head:
            store._journal_event(top, REBUILD_OP, branch, head)
    for branch in sorted(set(journaled) - set(refs)):
        store._journal_event(top, "delete", branch, journaled[branch][0])


def _fsync_dir(path: Path) -> None:
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------ reclaim
def reclaim_files(
    path: str | os.PathLike[str], *, grace_s: float, dry_run: bool = False, wait_s: float = 10.0
) -> ReclaimReport:
    """Delete orphan files (referenced by no commit of the catalog or the journal) older than `grace_s`.

    Holds writers.lock exclusively while it decides and deletes (see the module docstring); if a writer
    keeps it for `wait_s`, nothing is touched and the report says `busy`. Raises CatalogUnusableError if
    the catalog cannot be read: without it nobody can say which files are in use.
    """
    root = Path(path).expanduser().resolve()
    report = ReclaimReport(dry_run=dry_run)
    with writers_excluded(root, wait_s=wait_s, doing="reclaim orphan files") as excluded:
        if not excluded:
            report.busy = True
            return report
        catalog, problems = read_catalog(root / CATALOG_FILE)
        if catalog is None:
            from .refs import RECOVER_HINT

            raise CatalogUnusableError(f"{problems[0] if problems else 'catalog unreadable'}: {RECOVER_HINT}")
        journal = read_journal(root)
        locations = {loc for c in catalog.commits.values() for loc in c.tree.values()}
        locations |= {loc for c in journal.commits.values() for loc in c.tree.values()}
        orphans = _find_orphans(root, locations, journal, grace_s=grace_s, now=time.time())
        report.young = len(orphans.young)
        report.skipped = [f"{d}: {why}" for d, why in sorted(orphans.skipped.items())]
        for orphan, size in orphans.files:
            if not dry_run:
                try:
                    orphan.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise storage_error(exc, orphan, "reclaim an orphan file") from exc
            report.files += 1
            report.bytes += size
        if not dry_run:
            _remove_empty_dirs(root / "warehouse")
    return report


def _remove_empty_dirs(warehouse: Path) -> None:
    # Bottom-up, never warehouse/ itself; only directories a failed write left empty (no writer is running).
    for dirpath, _dirs, _files in os.walk(warehouse, topdown=False):
        if Path(dirpath) != warehouse:
            with suppress(OSError):
                os.rmdir(dirpath)  # fails, as it should, on a directory that still holds something
