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

from .check import check_lakehouse, format_size
from .rebuild import rebuild_catalog
from .reclaim import reclaim_files
from .state import (
    CATALOG_FILE,
    DAMAGED_PREFIX,
    BranchOutcome,
    DoctorReport,
    Finding,
    RebuildReport,
    ReclaimReport,
    read_catalog,
    read_journal,
)

__all__ = [
    "CATALOG_FILE",
    "DAMAGED_PREFIX",
    "BranchOutcome",
    "DoctorReport",
    "Finding",
    "RebuildReport",
    "ReclaimReport",
    "check_lakehouse",
    "format_size",
    "read_catalog",
    "read_journal",
    "rebuild_catalog",
    "reclaim_files",
]
