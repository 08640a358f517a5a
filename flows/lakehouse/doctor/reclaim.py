"""`wap gc`'s reclaim of orphan files, under the exclusive writers lock."""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path

from ..errors import CatalogUnusableError
from ..storage import storage_error
from .files import find_orphans, writers_excluded
from .state import CATALOG_FILE, ReclaimReport, read_catalog, read_journal


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
            from ..storage import RECOVER_HINT

            raise CatalogUnusableError(f"{problems[0] if problems else 'catalog unreadable'}: {RECOVER_HINT}")
        journal = read_journal(root)
        locations = {loc for c in catalog.commits.values() for loc in c.tree.values()}
        locations |= {loc for c in journal.commits.values() for loc in c.tree.values()}
        orphans = find_orphans(root, locations, journal, grace_s=grace_s, now=time.time())
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
