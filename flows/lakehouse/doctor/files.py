"""The files a lakehouse needs (each branch head's metadata, manifests, data files), the orphans no
commit needs, and the writers lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..refs import WRITERS_LOCK
from ..storage import storage_error

if TYPE_CHECKING:
    from pyiceberg.table.metadata import TableMetadata

    from ..catalog import RelocatingFileIO

from .state import INIT_PREFIX, REBUILD_PREFIX, Journal


# ------------------------------------------------------------------------------------ table files
def _locate(root: Path, location: str) -> Path:
    path = Path(location.removeprefix("file://"))
    return path if path.is_absolute() else root / path


_Loaded = tuple["TableMetadata", "RelocatingFileIO", str] | tuple[None, None, str]


class TableFiles:
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

        from ..catalog import RECORDED_ROOTS_PROPERTY, ROOT_PROPERTY, RelocatingFileIO, recorded_root

        path = _locate(self.root, location)
        result: _Loaded
        if not path.is_file():
            result = (None, None, f"metadata file missing: {path}")
        else:
            try:
                base = RelocatingFileIO({ROOT_PROPERTY: str(self.root)})
                metadata = FromInputFile.table_metadata(base.new_input(str(path)))
                recorded = recorded_root(metadata.location, location)
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


def find_orphans(root: Path, locations: set[str], journal: Journal, *, grace_s: float, now: float) -> _Orphans:
    referenced, unsafe = TableFiles(root).referenced(locations)
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
        candidates.extend(root / name for name in os.listdir(root) if name.startswith((REBUILD_PREFIX, INIT_PREFIX)))
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
