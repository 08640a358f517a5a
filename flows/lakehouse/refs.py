"""Git-like refs over Iceberg tables, kept in SQLite.

A commit is a snapshot of the whole catalog: a tree mapping `namespace.table` to the table's Iceberg
metadata location (metadata files are immutable, so sharing them between commits copies nothing).
A branch is a row pointing at a commit. Every change is one SQLite transaction (BEGIN IMMEDIATE) that
checks the branch head it was based on: a writer whose base moved is rebased only when none of the
tables it touches changed, and rejected otherwise. A process killed at any instant leaves each ref at
its old or its new commit, never in between, because SQLite's journal makes the transaction atomic.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import (
    BackendUnavailableError,
    BranchExistsError,
    BranchNotFoundError,
    ConcurrentUpdateError,
    InvalidNameError,
    MergeConflictError,
    RefNotFoundError,
)
from .models import Branch, Commit
from .names import MAIN, split_ref

Tree = dict[str, str]  # "namespace.table" -> metadata location

_SCHEMA = """
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
    is_head: bool  # False for branch@hash (read-only past state)


class RefStore:
    """The SQLite side of the embedded catalog: commits, trees and branch heads."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        with self._connect() as con:
            self._use_wal(con)
            with self._write(con):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                if con.execute("SELECT 1 FROM refs WHERE name = ?", (MAIN,)).fetchone() is None:
                    root = self._insert_commit(con, None, None, "initialize lakehouse", "wap", {}, {})
                    con.execute("INSERT INTO refs VALUES (?, ?, ?)", (MAIN, root, time.time()))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous=FULL")  # durability of a published merge over speed
            yield con
        finally:
            con.close()

    def _use_wal(self, con: sqlite3.Connection) -> None:
        # Turning a new file to WAL needs it to itself, and SQLite answers "locked" at once rather than
        # calling the busy handler: processes opening a fresh lakehouse together retry until the timeout.
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
    def _write(self, con: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so the head we read is the head we update.
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # "database is locked" past the busy timeout
            raise BackendUnavailableError(f"lakehouse catalog is busy: {exc}") from exc
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    # ---------------------------------------------------------------- reads
    def resolve(self, ref: str) -> ResolvedRef:
        branch, commit = split_ref(ref)
        with self._connect() as con:
            row = con.execute("SELECT hash FROM refs WHERE name = ?", (branch,)).fetchone()
            if row is None:
                raise (BranchNotFoundError(branch) if commit is None else RefNotFoundError(ref))
            if commit is None:
                return ResolvedRef(ref, branch, row[0], True)
            # A prefix as an index range ('g' sorts after every hex digit), not a LIKE that scans them all.
            matches = con.execute(
                "SELECT hash FROM commits WHERE hash >= ? AND hash < ? LIMIT 2", (commit, commit + "g")
            ).fetchall()
            if len(matches) != 1 or not self._is_ancestor(con, matches[0][0], row[0]):
                raise RefNotFoundError(ref)
            return ResolvedRef(ref, branch, matches[0][0], matches[0][0] == row[0])

    def tree(self, commit_hash: str) -> Tree:
        with self._connect() as con:
            return self._tree(con, commit_hash)

    def head(self, branch: str) -> str:
        with self._connect() as con:
            return self._head(con, branch)

    def branches(self) -> list[Branch]:
        with self._connect() as con:
            rows = con.execute("SELECT name, hash, created_at FROM refs ORDER BY name").fetchall()
        return [Branch(name, commit, datetime.fromtimestamp(at, tz=UTC)) for name, commit, at in rows]

    def has_branch(self, branch: str) -> bool:
        with self._connect() as con:
            return con.execute("SELECT 1 FROM refs WHERE name = ?", (branch,)).fetchone() is not None

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
        with self._connect() as con, self._write(con):
            try:
                con.execute("INSERT INTO refs VALUES (?, ?, ?)", (branch, from_commit, time.time()))
            except sqlite3.IntegrityError as exc:
                raise BranchExistsError(branch) from exc
        return Branch(branch, from_commit)

    def delete_branch(self, branch: str) -> None:
        if branch == MAIN:
            raise InvalidNameError("refusing to delete branch main")
        with self._connect() as con, self._write(con):
            if con.execute("DELETE FROM refs WHERE name = ?", (branch,)).rowcount == 0:
                raise BranchNotFoundError(branch)

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
            new = self._insert_commit(con, head, None, message, author, properties or {}, tree)
            self._move(con, branch, head, new)
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
            new = self._insert_commit(con, target, source.hash, message, author, properties or {}, tree)
            self._move(con, into_branch, target, new)
            return new

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _head(con: sqlite3.Connection, branch: str) -> str:
        row = con.execute("SELECT hash FROM refs WHERE name = ?", (branch,)).fetchone()
        if row is None:
            raise BranchNotFoundError(branch)
        return row[0]

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
    ) -> str:
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
        con.execute(
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
        return commit_hash
