"""Branch leases: how a running gate tells `wap gc` that its branch is in use.

A lease is a small JSON file `<lakehouse>/leases/<branch>.json` (who holds it: pid, host, since), taken
before the gate creates its branch and removed when the gate ends. While the gate runs, a daemon thread
touches the file every `ttl / 4` seconds: the file's modification time is the heartbeat. A lease whose
heartbeat is older than its ttl belongs to a run that died (or is frozen): its branch may be collected;
so may one whose holder is a process on this host that no longer exists.

Leases only decide liveness. Integrity does not depend on them: the gate publishes the exact commit it
audited or nothing, so even a frozen gate whose branch was collected cannot publish what it did not audit.

The embedded backend keeps leases beside its catalog. Bauplan has no shared directory, so there a lease
is a no-op and `wap gc` relies on branch age alone (with its safe minimum).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .protocol import StoredInDirectory

if TYPE_CHECKING:
    from .protocol import LakehouseClient

DEFAULT_TTL_S = 60.0


def lease_ttl_s() -> float:
    """`WAP_LEASE_TTL` seconds (default 60): how long a lease outlives its last heartbeat."""
    return float(os.environ.get("WAP_LEASE_TTL") or DEFAULT_TTL_S)


@dataclass(frozen=True)
class LeaseInfo:
    branch: str
    pid: int
    host: str
    age_s: float  # seconds since the last heartbeat
    live: bool


def _lease_dir(client: LakehouseClient) -> Path | None:
    # Only the embedded backend has a directory.
    return Path(client.root) / "leases" if isinstance(client, StoredInDirectory) else None


def _lease_path(directory: Path, branch: str) -> Path:
    # Branch names are validated ([A-Za-z0-9_.-]); quoting keeps the file name safe regardless.
    return directory / (urllib.parse.quote(branch, safe="") + ".json")


@contextmanager
def hold_branch_lease(client: LakehouseClient, branch: str, *, ttl_s: float | None = None) -> Iterator[None]:
    """Hold a lease on `branch` for the duration of the block (a no-op on backends without a directory)."""
    directory = _lease_dir(client)
    if directory is None:
        yield
        return
    ttl = lease_ttl_s() if ttl_s is None else ttl_s
    path = _lease_path(directory, branch)
    body = json.dumps({"branch": branch, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body)
        os.replace(tmp, path)  # whole or absent: gc never reads half a lease
    except OSError as exc:  # read-only or full storage: exit 3 naming the path, not an internal error
        with suppress(OSError):
            tmp.unlink()
        from .storage import storage_error

        raise storage_error(exc, directory, f"take the lease on branch {branch}") from exc
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl / 4):
            with suppress(OSError):  # a full or read-only disk must not kill the run; gc sees a stale lease
                os.utime(path)

    thread = threading.Thread(target=heartbeat, name=f"wap-lease-{branch}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        with suppress(FileNotFoundError):
            path.unlink()


def read_lease(
    client: LakehouseClient, branch: str, *, ttl_s: float | None = None, now: float | None = None
) -> LeaseInfo | None:
    """The lease on `branch`, or None if no run holds (or held and left behind) one."""
    directory = _lease_dir(client)
    if directory is None:
        return None
    path = _lease_path(directory, branch)
    try:
        heartbeat = path.stat().st_mtime
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # Unreadable: count it as live. Deleting a branch in use is the one mistake gc must not make.
        return LeaseInfo(branch, -1, "?", 0.0, True)
    age = (time.time() if now is None else now) - heartbeat
    ttl = lease_ttl_s() if ttl_s is None else ttl_s
    pid, host = int(body.get("pid", -1)), str(body.get("host", "?"))
    # A fresh heartbeat from a process this host knows is gone (killed a moment ago) is not alive either.
    dead_here = host == socket.gethostname() and not _pid_alive(pid)
    return LeaseInfo(branch, pid, host, age, age < ttl and not dead_here)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie (killed, not yet reaped) still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def release_stale_lease(client: LakehouseClient, lease: LeaseInfo) -> None:
    """Remove the lease file a dead run left behind (after gc deleted its branch), unless it was retaken."""
    current = read_lease(client, lease.branch)
    directory = _lease_dir(client)  # not None whenever a lease was read
    if (
        directory is not None
        and current is not None
        and not current.live
        and (current.pid, current.host) == (lease.pid, lease.host)
    ):
        with suppress(FileNotFoundError):
            _lease_path(directory, lease.branch).unlink()
