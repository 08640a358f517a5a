"""The files under the catalog: durability (fsync), read-only detection, OSError/sqlite3 errors as our exceptions.

Shared by refs (the catalog), doctor, leases and suite init; it imports nothing of the lakehouse but errors.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from contextlib import suppress
from pathlib import Path

from .errors import BackendUnavailableError, CatalogUnusableError, LakehouseError, StorageError

RECOVER_HINT = "run `wap doctor` to see what is wrong and `wap doctor --rebuild` to recover the refs from the journal"


def on_read_only_fs(directory: Path) -> bool:
    """Whether `directory` is on a file system mounted read-only (a read-only bind mount, a backup medium)."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def readonly_uri(path: Path) -> str:
    """How SQLite can read a catalog on a read-only file system.

    A WAL-mode database needs its -shm file, which cannot be created there: with the -wal and -shm a
    writer left behind, `mode=ro` reads them; without them nothing can have changed the file since its
    last writer closed it (nobody can write this mount), which is what `immutable=1` tells SQLite.
    """
    sides = all(path.with_name(path.name + s).exists() for s in ("-wal", "-shm"))
    return path.as_uri() + ("?mode=ro" if sides else "?immutable=1")


def check_header(path: Path) -> None:
    """Refuse, before SQLite sees it, a file SQLite would silently treat as a new empty database.

    Only stat: opening and closing the file ourselves would drop the POSIX locks that this process's
    other SQLite connections hold on it (closing any descriptor of a file releases them all), and
    SQLite would then delete a WAL that is still in use. "Not a database" is SQLite's to say.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CatalogUnusableError(f"lakehouse catalog {path} does not exist: {RECOVER_HINT}") from None
    except OSError as exc:
        raise storage_error(exc, path, "read the lakehouse catalog") from exc
    if size == 0:
        raise CatalogUnusableError(f"lakehouse catalog {path} is empty (0 bytes): {RECOVER_HINT}")


def check_size(con: sqlite3.Connection, path: Path) -> None:
    """A file shorter than the pages its header claims was truncated (unless a WAL holds the rest)."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        return  # pages may live in the WAL; a checkpoint cut off by a crash is redone
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    size = path.stat().st_size
    if size < pages * page_size:
        raise CatalogUnusableError(
            f"lakehouse catalog {path} is truncated ({size} of {pages * page_size} bytes): {RECOVER_HINT}"
        )


def storage_error(exc: OSError, path: Path | str, doing: str) -> StorageError:
    """A one-line StorageError naming the cause (disk full, read-only, permission) and the path."""
    code = exc.errno
    text = str(exc)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text:
        cause = "disk full"
    elif code == errno.EROFS or "Read-only file system" in text:
        cause = "read-only file system"
    elif code in (errno.EACCES, errno.EPERM) or "ermission denied" in text or "not permitted" in text:
        cause = "permission denied"
    elif code == errno.ENOENT:
        cause = "file missing"
    else:
        cause = (exc.strerror or text).splitlines()[0] if (exc.strerror or text) else type(exc).__name__
    target = getattr(exc, "filename", None) or path
    return StorageError(f"{cause}: cannot {doing}: {target}")


def catalog_error(exc: sqlite3.Error, path: Path) -> LakehouseError:
    """Name what an SQLite error means for the catalog at `path`, in one line."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    low = text.lower()
    if "locked" in low or "busy" in low:
        return BackendUnavailableError(f"lakehouse catalog is busy: {text}")
    if "readonly" in low or "read-only" in low:
        return StorageError(f"lakehouse is read-only: cannot write {path}")
    if "full" in low:
        return StorageError(f"disk full: cannot write {path}")
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return CatalogUnusableError(f"lakehouse catalog {path} is corrupt ({text}): {RECOVER_HINT}")
    if "unable to open" in low:
        return StorageError(f"cannot open the lakehouse catalog {path}: {text}")
    return StorageError(f"lakehouse catalog {path}: {text}")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    with suppress(OSError):  # not every file system lets a directory be fsynced; the link is made either way
        fsync_file(path)
