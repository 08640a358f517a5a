"""Git-like refs over Iceberg tables, kept in SQLite.

A commit is a snapshot of the whole catalog: a tree mapping `namespace.table` to the table's Iceberg
metadata location (metadata files are immutable, so sharing them between commits copies nothing).
A branch is a row pointing at a commit. Every change is one SQLite transaction (BEGIN IMMEDIATE) that
checks the branch head it was based on: a writer whose base moved is rebased only when none of the
tables it touches changed, and rejected otherwise. A process killed at any instant leaves each ref at
its old or its new commit, never in between, because SQLite's journal makes the transaction atomic.

Opening never creates or repairs anything: a catalog is created only by `initialize` (atomically, as a
finished file moved into place), and one that is empty, corrupt, missing its tables or main ref, or whose
main tree names metadata files that are gone is refused with CatalogUnusableError before anything is
written. Each commit and branch change is also written, after its transaction committed, as an immutable
JSON file under `journal/`: `doctor.rebuild_catalog` rebuilds the refs from it if the catalog is lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import (
    BackendUnavailableError,
    BranchExistsError,
    BranchNotFoundError,
    CatalogUnusableError,
    ConcurrentUpdateError,
    ImmutableTagError,
    InvalidNameError,
    MergeConflictError,
    RefNameTakenError,
    RefNotFoundError,
    StorageError,
    TagExistsError,
    TagNotFoundError,
)
from .models import Branch, Commit, Tag
from .names import MAIN, split_ref
from .storage import (
    RECOVER_HINT,
    catalog_error,
    check_header,
    check_size,
    fsync_dir,
    fsync_file,
    on_read_only_fs,
    readonly_uri,
    storage_error,
)

Tree = dict[str, str]  # "namespace.table" -> metadata location, relative to the lakehouse root

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
# Shared by every write (table files, catalog transaction, journal entry); exclusive for doctor's rebuild and
# gc's file reclaim, which must know that no write is in flight.
WRITERS_LOCK = "writers.lock"

CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL UNIQUE,
    parent TEXT,
    merge_parent TEXT,
    message TEXT NOT NULL,
    author TEXT NOT NULL,
    committed_at REAL NOT NULL,
    properties TEXT NOT NULL,
    tree TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL REFERENCES commits(hash),
    created_at REAL NOT NULL
);
"""
# Not part of CATALOG_SCHEMA: created by the first tag write (and by a rebuild), so that a catalog made before
# tags existed opens and works unchanged; reads treat a missing table as no tags.
TAGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL REFERENCES commits(hash),
    created_at REAL NOT NULL
)
"""
# Journal ops of tag entries (their "branch" field holds the tag's name): replaying branches skips them.
TAG_OP, UNTAG_OP = "tag", "untag"


# The seq of every commit reachable from :start (itself included) through first and merge parents,
# down to seq :min_seq. A parent is always older than its child (smaller seq), so every path to an
# ancestor at or above :min_seq stays above it: the bounded walk finds exactly those ancestors, and
# costs the number of commits since :min_seq, not the size of the history. Walking integer seqs
# (rowids) rather than text hashes keeps each step an index lookup and the UNION's dedup cheap.
_ANCESTORS = """
WITH RECURSIVE anc(s) AS (
  SELECT seq FROM commits WHERE hash = :start
  UNION
  SELECT p.seq FROM anc JOIN commits c ON c.seq = anc.s
  JOIN commits p ON p.hash IN (c.parent, c.merge_parent)
  WHERE p.seq >= :min_seq
)
"""


@dataclass(frozen=True)
class ResolvedRef:
    ref: str
    branch: str
    hash: str  # the commit the ref points to
    is_head: bool  # False for branch@hash (read-only past state) and for a tag
    is_tag: bool = False  # `branch` is then the tag's name: never written to


class RefStore:
    """The SQLite side of the embedded catalog: commits, trees and branch heads."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0, check_tree: bool = True) -> None:
        """Open an existing catalog; refuse (CatalogUnusableError) one that cannot be trusted.

        Nothing is written here: no schema, no main ref, no journal-mode switch on a catalog that fails
        the checks. `check_tree` stats the metadata files of main's tree (cheap: one stat per table).
        """
        self.path = path
        self.root = path.parent
        self._busy_timeout_s = busy_timeout_s
        self.read_only = False
        check_header(path)
        self._uri = readonly_uri(path) if on_read_only_fs(self.root) else None
        with self._connect() as con:
            self._check_schema(con, check_tree=check_tree)
            check_size(con, path)
            if not os.access(path, os.W_OK) or not os.access(self.root, os.W_OK):
                # Reads still work; every write is refused up front with the path (see _write).
                self.read_only = True
            elif con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._use_wal(con)

    @classmethod
    def initialize(cls, path: Path, *, busy_timeout_s: float = 60.0) -> bool:
        """Create a new catalog at `path` unless one exists; return whether this call created it.

        Built complete in a private file and hard-linked into place, which fails if `path` exists: a
        reader never sees a half-made catalog, and processes creating one together end up with one.
        """
        tmp = path.with_name(f"{path.name}.init-{uuid.uuid4().hex}")
        try:
            con = sqlite3.connect(tmp, timeout=busy_timeout_s, isolation_level=None)
            try:
                con.execute("PRAGMA synchronous=FULL")
                con.execute("BEGIN IMMEDIATE")
                create_catalog_schema(con)
                journal: list[tuple[int, str, str]] = []
                root = cls._insert_commit(con, None, None, "initialize lakehouse", "wap", {}, {}, journal)
                con.execute("INSERT INTO refs VALUES (?, ?, ?)", (MAIN, root, time.time()))
                con.execute("COMMIT")
                con.execute("PRAGMA journal_mode=WAL")  # persistent in the file's header
            finally:
                con.close()
            fsync_file(tmp)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            fsync_dir(path.parent)
            store = cls(path, busy_timeout_s=busy_timeout_s)
            store._journal_write(journal, MAIN, "init")
            return True
        except sqlite3.Error as exc:
            raise catalog_error(exc, path) from exc
        except OSError as exc:
            raise storage_error(exc, path, "create the lakehouse catalog") from exc
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                leftover.unlink(missing_ok=True)

    def _check_schema(self, con: sqlite3.Connection, *, check_tree: bool) -> None:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted({"commits", "refs"} - names)
        if missing:
            raise CatalogUnusableError(
                f"lakehouse catalog {self.path} lacks its {' and '.join(missing)} table(s): {RECOVER_HINT}"
            )
        row = con.execute("SELECT hash FROM refs WHERE name = ?", (MAIN,)).fetchone()
        if row is None:
            raise CatalogUnusableError(f"lakehouse catalog {self.path} has no main branch: {RECOVER_HINT}")
        tree = con.execute("SELECT tree FROM commits WHERE hash = ?", (row[0],)).fetchone()
        if tree is None:
            raise CatalogUnusableError(
                f"lakehouse catalog {self.path}: main points at commit {row[0][:12]}, which is not in the catalog: "
                f"{RECOVER_HINT}"
            )
        if check_tree:
            try:
                locations = json.loads(tree[0])
            except ValueError:
                raise CatalogUnusableError(
                    f"lakehouse catalog {self.path}: main's table list is not valid JSON: {RECOVER_HINT}"
                ) from None
            for table, location in sorted(locations.items()):
                path = self.locate(location)
                if not path.is_file():
                    raise CatalogUnusableError(
                        f"lakehouse catalog {self.path} does not match its warehouse: main's table {table} "
                        f"points at {path}, which does not exist: {RECOVER_HINT}"
                    )

    def locate(self, location: str) -> Path:
        """The file a tree location names, at the lakehouse's current root (trees store them relative)."""
        path = Path(location.removeprefix("file://"))
        return path if path.is_absolute() else self.root / path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._uri is None:
                con = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            else:
                con = sqlite3.connect(self._uri, uri=True, timeout=self._busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise catalog_error(exc, self.path) from exc
        try:
            if not self.read_only:
                con.execute("PRAGMA synchronous=FULL")  # durability of a published merge over speed
            yield con
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise catalog_error(exc, self.path) from exc
        finally:
            con.close()

    def _use_wal(self, con: sqlite3.Connection) -> None:
        # Turning a file to WAL needs it to itself, and SQLite answers "locked" at once rather than
        # calling the busy handler: processes opening a catalog together retry until the timeout.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise BackendUnavailableError(f"lakehouse catalog is busy: {exc}") from exc
                time.sleep(0.005)

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold writers.lock shared from before a catalog transaction until its journal entry is written.

        `doctor.rebuild_catalog` and `doctor.reclaim_files` take it exclusively, so they never see a
        committed state whose journal entry is still to come, nor replace the catalog under a transaction.
        """
        if self.read_only:
            raise StorageError(f"lakehouse is read-only: cannot write {self.path}")
        lock = self.root / WRITERS_LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, lock, "write the lakehouse catalog") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the flock

    @contextmanager
    def _write(self, con: sqlite3.Connection) -> Iterator[None]:
        if self.read_only:
            raise StorageError(f"lakehouse is read-only: cannot write {self.path}")
        # IMMEDIATE takes the write lock up front, so the head we read is the head we update.
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # "database is locked" past the busy timeout
            if "locked" in str(exc) or "busy" in str(exc):
                raise BackendUnavailableError(f"lakehouse catalog is busy: {exc}") from exc
            raise
        try:
            yield
            con.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) may already have rolled back: never hide the first error.
            if con.in_transaction:
                with suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise

    # ---------------------------------------------------------------- reads
    def resolve(self, ref: str) -> ResolvedRef:
        """A branch, `branch@hash`, a tag (or `tag@hash`, which internal pinning makes) to the commit it names."""
        branch, commit = split_ref(ref)
        with self._connect() as con:
            is_tag = False
            row = con.execute("SELECT hash FROM refs WHERE name = ?", (branch,)).fetchone()
            if row is None:
                row = self._tag_row(con, branch)
                is_tag = row is not None
            if row is None:
                raise (BranchNotFoundError(branch) if commit is None else RefNotFoundError(ref))
            if commit is None:
                return ResolvedRef(ref, branch, row[0], not is_tag, is_tag)
            # A prefix as an index range ('g' sorts after every hex digit), not a LIKE that scans them all.
            matches = con.execute(
                "SELECT hash FROM commits WHERE hash >= ? AND hash < ? LIMIT 2", (commit, commit + "g")
            ).fetchall()
            if len(matches) != 1 or not self._is_ancestor(con, matches[0][0], row[0]):
                raise RefNotFoundError(ref)
            return ResolvedRef(ref, branch, matches[0][0], matches[0][0] == row[0] and not is_tag, is_tag)

    def tree(self, commit_hash: str) -> Tree:
        with self._connect() as con:
            return self._tree(con, commit_hash)

    def branches(self) -> list[Branch]:
        with self._connect() as con:
            rows = con.execute("SELECT name, hash, created_at FROM refs ORDER BY name").fetchall()
        return [Branch(name, commit, datetime.fromtimestamp(at, tz=UTC)) for name, commit, at in rows]

    def has_branch(self, branch: str) -> bool:
        with self._connect() as con:
            return con.execute("SELECT 1 FROM refs WHERE name = ?", (branch,)).fetchone() is not None

    def tags(self) -> list[Tag]:
        with self._connect() as con:
            if not self._has_tags_table(con):
                return []
            rows = con.execute("SELECT name, hash, created_at FROM tags ORDER BY name").fetchall()
        return [Tag(name, commit, datetime.fromtimestamp(at, tz=UTC)) for name, commit, at in rows]

    def tag(self, tag: str) -> Tag:
        with self._connect() as con:
            row = self._tag_row(con, tag, with_time=True)
        if row is None:
            raise TagNotFoundError(tag)
        return Tag(tag, row[0], datetime.fromtimestamp(row[1], tz=UTC))

    def has_tag(self, tag: str) -> bool:
        with self._connect() as con:
            return self._tag_row(con, tag) is not None

    def log(self, commit_hash: str, limit: int | None = None) -> list[Commit]:
        with self._connect() as con:
            top = self._seq(con, commit_hash)
            # With a limit, walk a window of recent history and widen it until it holds `limit` commits.
            span = 0 if limit is None else max(4 * limit, 64)
            while True:
                bound = max(top - span, 0) if limit is not None else 0
                rows = con.execute(
                    _ANCESTORS
                    + """
                    SELECT hash, parent, merge_parent, message, author, committed_at, properties
                    FROM commits WHERE seq IN (SELECT s FROM anc) ORDER BY seq DESC LIMIT :limit
                    """,
                    {"start": commit_hash, "min_seq": bound, "limit": -1 if limit is None else limit},
                ).fetchall()
                if limit is None or len(rows) >= limit or bound == 0:
                    break
                span *= 8
        return [
            Commit(
                hash=h,
                parent_hashes=[p for p in (parent, merge_parent) if p],
                message=message,
                author=author,
                authored_date=datetime.fromtimestamp(at, tz=UTC),
                properties=json.loads(props),
            )
            for h, parent, merge_parent, message, author, at, props in rows
        ]

    # --------------------------------------------------------------- writes
    def create_branch(self, branch: str, from_commit: str) -> Branch:
        with self._writer():
            with self._connect() as con, self._write(con):
                # In the write transaction: a tag of the same name cannot appear between this check and the insert.
                if self._tag_row(con, branch) is not None:
                    raise RefNameTakenError(branch, "branch", "tag")
                try:
                    con.execute("INSERT INTO refs VALUES (?, ?, ?)", (branch, from_commit, time.time()))
                except sqlite3.IntegrityError as exc:
                    raise BranchExistsError(branch) from exc
                seq = self._max_seq(con)
            self._journal_event(seq, "branch", branch, from_commit)
        return Branch(branch, from_commit)

    def delete_branch(self, branch: str) -> None:
        if branch == MAIN:
            raise InvalidNameError("refusing to delete branch main")
        with self._writer():
            with self._connect() as con, self._write(con):
                row = con.execute("SELECT hash FROM refs WHERE name = ?", (branch,)).fetchone()
                if row is None and self._tag_row(con, branch) is not None:
                    raise ImmutableTagError(branch, "delete the branch")
                if row is None or con.execute("DELETE FROM refs WHERE name = ?", (branch,)).rowcount == 0:
                    raise BranchNotFoundError(branch)
                seq = self._max_seq(con)
            self._journal_event(seq, "delete", branch, row[0])

    def create_tag(self, tag: str, commit_hash: str) -> Tag:
        """Name `commit_hash`; refused if a branch or another tag has the name (checked in the write transaction)."""
        with self._writer():
            with self._connect() as con, self._write(con):
                if con.execute("SELECT 1 FROM refs WHERE name = ?", (tag,)).fetchone() is not None:
                    raise RefNameTakenError(tag, "tag", "branch")
                con.execute(TAGS_SCHEMA)  # transactional DDL: rolled back with the insert if it fails
                at = time.time()
                try:
                    con.execute("INSERT INTO tags VALUES (?, ?, ?)", (tag, commit_hash, at))
                except sqlite3.IntegrityError as exc:
                    raise TagExistsError(tag) from exc
                seq = self._max_seq(con)
            self._journal_event(seq, TAG_OP, tag, commit_hash)
        return Tag(tag, commit_hash, datetime.fromtimestamp(at, tz=UTC))

    def delete_tag(self, tag: str) -> None:
        with self._writer():
            with self._connect() as con, self._write(con):
                row = self._tag_row(con, tag)
                if row is None or con.execute("DELETE FROM tags WHERE name = ?", (tag,)).rowcount == 0:
                    raise TagNotFoundError(tag)
                seq = self._max_seq(con)
            self._journal_event(seq, UNTAG_OP, tag, row[0])

    def commit(
        self,
        branch: str,
        *,
        base_hash: str,
        changes: Mapping[str, str | None],
        message: str,
        author: str,
        properties: Mapping[str, str] | None = None,
    ) -> str:
        """Apply `changes` (table -> new metadata location, None = drop) on top of `branch`.

        `base_hash` is the head the caller read the tables from. If the head has moved since, the
        commit is rebased onto the new head only when every changed table is still as it was at
        `base_hash`; otherwise ConcurrentUpdateError, and nothing is written.
        """
        journal: list[tuple[int, str, str]] = []
        with self._writer():
            with self._connect() as con, self._write(con):
                head = self._head(con, branch)
                tree = self._tree(con, head)
                if head != base_hash:
                    base_tree = self._tree(con, base_hash)
                    moved = sorted(k for k in changes if tree.get(k) != base_tree.get(k))
                    if moved:
                        raise ConcurrentUpdateError(
                            f"branch {branch} moved while writing; changed concurrently: {', '.join(moved)}"
                        )
                for key, location in changes.items():
                    if location is None:
                        tree.pop(key, None)
                    else:
                        tree[key] = location
                new = self._insert_commit(con, head, None, message, author, properties or {}, tree, journal)
                self._move(con, branch, head, new)
            self._journal_write(journal, branch, "commit")
        return new

    def merge(
        self,
        source_ref: str,
        into_branch: str,
        *,
        message: str,
        author: str,
        properties: Mapping[str, str] | None = None,
    ) -> str:
        """Merge `source_ref` into `into_branch` in one transaction; return the new head."""
        source = self.resolve(source_ref)
        journal: list[tuple[int, str, str]] = []
        with self._writer():
            with self._connect() as con, self._write(con):
                target = self._head(con, into_branch)
                if self._is_ancestor(con, source.hash, target):
                    return target  # nothing to merge
                source_tree = self._tree(con, source.hash)
                if self._is_ancestor(con, target, source.hash):
                    # Fast-forward: the target has not moved since the branch point, so it takes the
                    # source's tables as they are. One commit still records the message and properties.
                    tree = source_tree
                else:
                    base = self._merge_base(con, source.hash, target)
                    base_tree = self._tree(con, base) if base else {}
                    tree = self._tree(con, target)
                    keys = set(base_tree) | set(source_tree) | set(tree)
                    ours = {k for k in keys if tree.get(k) != base_tree.get(k)}
                    theirs = {k for k in keys if source_tree.get(k) != base_tree.get(k)}
                    conflicts = sorted(k for k in ours & theirs if tree.get(k) != source_tree.get(k))
                    if conflicts:
                        raise MergeConflictError(source_ref, into_branch, conflicts)
                    for key in theirs:
                        if source_tree.get(key) is None:
                            tree.pop(key, None)
                        else:
                            tree[key] = source_tree[key]
                new = self._insert_commit(con, target, source.hash, message, author, properties or {}, tree, journal)
                self._move(con, into_branch, target, new)
            self._journal_write(journal, into_branch, "merge")
        return new

    # -------------------------------------------------------------- journal
    def _journal_write(self, entries: list[tuple[int, str, str]], branch: str, op: str) -> None:
        for seq, commit_hash, body in entries:
            self._journal_file(
                f"{seq:012d}.{time.time_ns():020d}.c.{commit_hash}.json",
                {"seq": seq, "op": op, "branch": branch, "hash": commit_hash, "body": body},
            )

    def _journal_event(self, seq: int, op: str, branch: str, commit_hash: str) -> None:
        self._journal_file(
            f"{seq:012d}.{time.time_ns():020d}.r.{uuid.uuid4().hex}.json",
            {"seq": seq, "op": op, "branch": branch, "hash": commit_hash},
        )

    def _journal_file(self, name: str, entry: dict) -> None:
        """Write one journal entry, after its transaction committed: it only ever describes a committed state.

        Best effort by design: the commit already happened, so failing it now would report a published
        state as failed. A lost entry (disk full, crash just here) only makes a rebuild older by a step.
        """
        directory = self.root / JOURNAL_DIR
        tmp = directory / f".tmp-{uuid.uuid4().hex}"
        try:
            directory.mkdir(exist_ok=True)
            with open(tmp, "x", encoding="utf-8") as fh:
                json.dump(entry, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, directory / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("lakehouse journal entry %s not written: %s", name, exc)

    @staticmethod
    def _max_seq(con: sqlite3.Connection) -> int:
        return con.execute("SELECT coalesce(max(seq), 0) FROM commits").fetchone()[0]

    # -------------------------------------------------------------- helpers
    @classmethod
    def _head(cls, con: sqlite3.Connection, branch: str) -> str:
        row = con.execute("SELECT hash FROM refs WHERE name = ?", (branch,)).fetchone()
        if row is None:
            # Every write finds its branch's head here, in its transaction: a tag is refused as such, whoever asks.
            if cls._tag_row(con, branch) is not None:
                raise ImmutableTagError(branch, "write to")
            raise BranchNotFoundError(branch)
        return row[0]

    @staticmethod
    def _has_tags_table(con: sqlite3.Connection) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tags'"
        return con.execute(query).fetchone() is not None

    @classmethod
    def _tag_row(cls, con: sqlite3.Connection, tag: str, *, with_time: bool = False) -> tuple | None:
        """(hash,) or (hash, created_at) of the tag, None if there is no such tag (or no tags table yet)."""
        if not cls._has_tags_table(con):
            return None
        columns = "hash, created_at" if with_time else "hash"
        return con.execute(f"SELECT {columns} FROM tags WHERE name = ?", (tag,)).fetchone()

    @staticmethod
    def _tree(con: sqlite3.Connection, commit_hash: str) -> Tree:
        row = con.execute("SELECT tree FROM commits WHERE hash = ?", (commit_hash,)).fetchone()
        if row is None:
            raise RefNotFoundError(commit_hash)
        return json.loads(row[0])

    @staticmethod
    def _move(con: sqlite3.Connection, branch: str, old: str, new: str) -> None:
        # Compare-and-set: inside BEGIN IMMEDIATE this cannot fail, but it keeps the rule explicit.
        if con.execute("UPDATE refs SET hash = ? WHERE name = ? AND hash = ?", (new, branch, old)).rowcount != 1:
            raise ConcurrentUpdateError(f"branch {branch} moved during the commit")

    @staticmethod
    def _seq(con: sqlite3.Connection, commit_hash: str) -> int:
        row = con.execute("SELECT seq FROM commits WHERE hash = ?", (commit_hash,)).fetchone()
        if row is None:
            raise RefNotFoundError(commit_hash)
        return row[0]

    @staticmethod
    def _ancestor_seqs(con: sqlite3.Connection, commit_hash: str, min_seq: int = 0) -> set[int]:
        rows = con.execute(_ANCESTORS + " SELECT s FROM anc", {"start": commit_hash, "min_seq": min_seq})
        return {r[0] for r in rows}

    def _is_ancestor(self, con: sqlite3.Connection, ancestor: str, descendant: str) -> bool:
        """Whether `ancestor` is `descendant` or reachable from it; walks only the commits in between."""
        seq = self._seq(con, ancestor)
        return seq in self._ancestor_seqs(con, descendant, seq)

    def _merge_base(self, con: sqlite3.Connection, a: str, b: str) -> str | None:
        """The newest common ancestor (never an ancestor of another common ancestor, being newer).

        Searched in widening windows below the older tip: branches are usually short, so this reads a
        few dozen commits instead of the whole history.
        """
        low = min(self._seq(con, a), self._seq(con, b))
        span = 64
        while True:
            bound = max(low - span, 0)
            common = self._ancestor_seqs(con, a, bound) & self._ancestor_seqs(con, b, bound)
            if common:
                return con.execute("SELECT hash FROM commits WHERE seq = ?", (max(common),)).fetchone()[0]
            if bound == 0:
                return None
            span *= 16

    @staticmethod
    def _insert_commit(
        con: sqlite3.Connection,
        parent: str | None,
        merge_parent: str | None,
        message: str,
        author: str,
        properties: Mapping[str, str],
        tree: Tree,
        journal: list[tuple[int, str, str]] | None = None,
    ) -> str:
        """Insert one commit; with `journal`, append (seq, hash, hashed body) for the journal file."""
        at = time.time()
        props = {str(k): str(v) for k, v in properties.items()}
        body = json.dumps(
            {
                "parents": [parent, merge_parent],
                "tree": tree,
                "message": message,
                "author": author,
                "at": at,
                "properties": props,
            },
            sort_keys=True,
        )
        commit_hash = hashlib.sha256(body.encode()).hexdigest()
        cursor = con.execute(
            "INSERT INTO commits (hash, parent, merge_parent, message, author, committed_at, properties, tree)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                commit_hash,
                parent,
                merge_parent,
                message,
                author,
                at,
                json.dumps(props),
                json.dumps(tree, sort_keys=True),
            ),
        )
        if journal is not None:
            assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
            journal.append((cursor.lastrowid, commit_hash, body))
        return commit_hash


def commit_hash_of(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def create_catalog_schema(con: sqlite3.Connection, *, tags: bool = False) -> None:
    """The catalog's tables, in a new catalog file (inside the caller's transaction); `tags`: the tags table too."""
    for statement in CATALOG_SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)
    if tags:
        con.execute(TAGS_SCHEMA)
