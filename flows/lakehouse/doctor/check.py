"""`wap doctor`: check a lakehouse, writing nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..refs import (
    JOURNAL_DIR,
)
from .files import TableFiles, find_orphans
from .state import CATALOG_FILE, DAMAGED_PREFIX, CatalogState, DoctorReport, Journal, read_catalog, read_journal


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
    files = TableFiles(root)
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
        for tag, (commit_hash, _at) in sorted(catalog.tags.items()):
            commit = catalog.commits.get(commit_hash)
            problem = (
                f"names commit {commit_hash[:12]}, which is not in the catalog"
                if commit is None
                else files.tree_problem(commit.tree)
            )
            if problem:
                report.add("error", f"tag {tag}: {problem}")
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
    orphans = find_orphans(root, locations, journal, grace_s=0, now=time.time())
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
