"""`wap doctor --rebuild`: a new catalog from the journal, each branch at its newest commit whose files all exist."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ..errors import BackendUnavailableError, CatalogUnusableError, StorageError
from ..names import MAIN
from ..refs import JOURNAL_DIR, TAG_OP, UNTAG_OP, WRITERS_LOCK, commit_hash_of, create_catalog_schema
from ..storage import fsync_dir, fsync_file, on_read_only_fs, storage_error
from .files import TableFiles, writers_excluded
from .state import (
    CATALOG_FILE,
    DAMAGED_PREFIX,
    REBUILD_OP,
    REBUILD_PREFIX,
    BranchOutcome,
    CatalogState,
    CommitRecord,
    Journal,
    RebuildReport,
    read_catalog,
    read_journal,
)


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
            if name.startswith(REBUILD_PREFIX):  # a rebuild killed before its rename: never in use
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
        tag_outcomes, tags = _choose_tags(root, commits, journal, old, refs)
        tmp = root / f"{REBUILD_PREFIX}{uuid.uuid4().hex}"
        try:
            _write_catalog(tmp, commits, refs, tags)
            damaged = _keep_aside(catalog_path)
            os.replace(tmp, catalog_path)  # atomic: readers see the old file or the new one
            fsync_dir(root)
        except OSError as exc:
            raise storage_error(exc, catalog_path, "rebuild the lakehouse catalog") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the rebuilt catalog {tmp}: {exc}") from exc
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
        _journal_rebuild(root, commits, journal, refs, tags)
    return RebuildReport(
        root, len(commits), sorted(outcomes, key=lambda o: o.branch), damaged, sources, tags=tag_outcomes
    )


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
    files = TableFiles(root)
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


def _choose_tags(
    root: Path,
    commits: dict[str, CommitRecord],
    journal: Journal,
    old: CatalogState | None,
    refs: dict[str, tuple[str, float]],
) -> tuple[list[BranchOutcome], dict[str, tuple[str, float]]]:
    """Each tag kept at its commit when that commit and all its files are there, else dropped: a tag names one
    state, so it is never moved to another commit as a branch is rolled back."""
    current = dict(old.tags) if old is not None else journal.tags()
    files = TableFiles(root)
    outcomes: list[BranchOutcome] = []
    tags: dict[str, tuple[str, float]] = {}
    for tag, (commit_hash, created) in sorted(current.items()):
        commit = commits.get(commit_hash)
        if tag in refs:
            problem = "a branch of the same name exists"
        elif commit is None:
            problem = f"commit {commit_hash[:12]} is in neither the catalog nor the journal"
        else:
            problem = files.tree_problem(commit.tree) or ""
        if problem:
            outcomes.append(BranchOutcome(tag, "dropped", commit_hash, None, problem))
            continue
        tags[tag] = (commit_hash, created)
        outcomes.append(BranchOutcome(tag, "kept", commit_hash, commit_hash))
    return outcomes, tags


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


def _write_catalog(
    tmp: Path,
    commits: dict[str, CommitRecord],
    refs: dict[str, tuple[str, float]],
    tags: dict[str, tuple[str, float]],
) -> None:
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=FULL")
        con.execute("BEGIN IMMEDIATE")
        create_catalog_schema(con, tags=True)
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
        con.executemany("INSERT INTO tags VALUES (?, ?, ?)", [(t, h, at) for t, (h, at) in sorted(tags.items())])
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")  # what RefStore expects; persistent in the header
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("the rebuilt catalog fails its integrity check")
    finally:
        con.close()  # the last connection checkpoints and removes its WAL
    fsync_file(tmp)  # the temporary file: no SQLite connection of ours has it open


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
    root: Path,
    commits: dict[str, CommitRecord],
    journal: Journal,
    refs: dict[str, tuple[str, float]],
    tags: dict[str, tuple[str, float]],
) -> None:
    """Journal what the rebuild decided, so that replaying the journal gives the rebuilt refs (best effort).

    Commits only the old catalog knew are journaled with op "rebuild" (a record of the commit that moves no
    branch); then every branch whose journaled head differs gets a "rebuild" entry, every journaled branch
    that is gone a "delete".
    """
    from ..refs import RefStore

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
    journaled_tags = journal.tags()
    for tag, (commit_hash, _at) in sorted(tags.items()):
        if journaled_tags.get(tag, ("",))[0] != commit_hash:
            store._journal_event(top, TAG_OP, tag, commit_hash)
    for tag in sorted(set(journaled_tags) - set(tags)):
        store._journal_event(top, UNTAG_OP, tag, journaled_tags[tag][0])
