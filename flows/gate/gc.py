"""`wap gc`: delete gate branches that crashed or killed runs left behind.

Only branches the gate itself names (`<user>.wap_<dataset>_<8 hex>`) are candidates; `main` and any
other branch are never touched. Age is the branch's creation time where the backend records it (the
embedded one does), else the time of its head commit.

A branch whose gate is still alive is never deleted, whatever its age: the gate holds a lease on it
(`lakehouse/leases.py`) and gc skips every branch with a live lease. An age threshold below
`SAFE_MIN_AGE` needs `force=True`: on a backend without leases (Bauplan) age is the only guard.

On the embedded backend gc also reclaims orphan files: files under `warehouse/` (and leftovers of killed
catalog or journal writes) that no commit references, left by writes that failed without cleaning up or
were killed (e.g. the partial Parquet of a disk-full import). It does so first, so that a full disk gets
space back before gc writes to the catalog. A file is deleted only while gc holds `writers.lock`
exclusively (every writer holds it shared from its first file to its commit, so no write is in flight)
and only when it is older than a grace period: `WAP_GC_GRACE` (a duration) if set, else the smaller of
`--older-than` and `FILE_GRACE` (60 s). See `lakehouse/doctor.py` (`reclaim_files`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from flows.gate.naming import is_gate_branch, owning_gate_branch
from flows.lakehouse import Branch, BranchNotFoundError, InvalidNameError, LakehouseClient, StoredInDirectory
from flows.lakehouse.leases import read_lease, release_stale_lease

if TYPE_CHECKING:
    from flows.lakehouse.doctor import ReclaimReport

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than any gate run we have seen; below it, a user must say --force.
SAFE_MIN_AGE = timedelta(minutes=10)
# Orphan files younger than this are kept even though writers.lock proves no write is in flight: a second
# guard, against a writer that does not take the lock (another tool, an older version).
FILE_GRACE = timedelta(seconds=60)


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w` (a bare number is seconds)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise InvalidNameError(f"invalid duration {text!r}: use e.g. 90s, 30m, 24h, 7d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class StaleBranch:
    name: str
    age: timedelta
    deleted: bool
    alive: str | None = None  # why it was kept: the live lease holding it


def check_min_age(older_than: timedelta, *, force: bool, given: str | None = None) -> None:
    """Refuse a threshold below SAFE_MIN_AGE unless forced (`given`: the threshold as the user wrote it)."""
    if older_than < SAFE_MIN_AGE and not force:
        minutes = int(SAFE_MIN_AGE.total_seconds() // 60)
        raise InvalidNameError(
            f"--older-than {given or older_than} is below the safe minimum of {minutes}m (a branch that young may"
            " belong to a run that is still writing): add --force to go lower; branches of live runs are kept anyway"
        )


def _created_at(client: LakehouseClient, branch: Branch) -> datetime:
    if branch.created_at is not None:
        return branch.created_at
    return next(iter(client.get_commits(branch.name, limit=1))).authored_date


def orphan_grace(older_than: timedelta) -> timedelta:
    """How old an orphan file must be to be reclaimed: `WAP_GC_GRACE`, else min(`older_than`, FILE_GRACE)."""
    configured = os.environ.get("WAP_GC_GRACE")
    if configured:
        return parse_duration(configured)
    return min(older_than, FILE_GRACE)


def reclaim_orphan_files(client: LakehouseClient, *, grace: timedelta, dry_run: bool = False) -> ReclaimReport | None:
    """Delete (or list) orphan files of an embedded lakehouse; None on a backend without a directory."""
    if not isinstance(client, StoredInDirectory):  # the embedded backend keeps its files under `root`
        return None
    from flows.lakehouse.doctor import reclaim_files

    return reclaim_files(client.root, grace_s=grace.total_seconds(), dry_run=dry_run)


def describe_reclaim(report: ReclaimReport, grace: timedelta) -> str:
    """One line for people: what was (or would be) reclaimed, what was kept and why."""
    from flows.lakehouse.doctor import format_size

    if report.busy:
        return "orphan files: none reclaimed, a write is in progress (writers.lock is held): rerun `wap gc` later"
    verb = "would reclaim" if report.dry_run else "reclaimed"
    parts = [f"orphan files: {verb} {report.files} ({format_size(report.bytes)})"]
    if report.young:
        parts.append(f"kept {report.young} younger than {grace.total_seconds():g}s")
    if report.skipped:
        parts.append(f"left {len(report.skipped)} table directories alone ({report.skipped[0]}): run `wap doctor`")
    return "; ".join(parts)


def collect_stale_branches(
    client: LakehouseClient,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
    reclaim: bool = True,
    echo: Callable[[str], None] | None = None,
) -> list[StaleBranch]:
    """Delete (or, with dry_run, only list) gate branches older than `older_than` whose run is not alive.

    With `reclaim` (the default) orphan files are reclaimed first (see the module docstring) and `echo`
    gets one line saying what was reclaimed.
    """
    if reclaim:
        grace = orphan_grace(older_than)
        reclaimed = reclaim_orphan_files(client, grace=grace, dry_run=dry_run)
        if reclaimed is not None and echo is not None:
            echo(describe_reclaim(reclaimed, grace))
    now = now or datetime.now(UTC)
    found = []
    for branch in client.get_branches():
        if not is_gate_branch(branch.name):
            continue
        age = now - _created_at(client, branch)
        if age < older_than:
            continue
        lease = read_lease(client, owning_gate_branch(branch.name))  # a staging branch: its gate's lease
        if lease is not None and lease.live:
            holder = f"live run (pid {lease.pid} on {lease.host}, heartbeat {lease.age_s:.0f}s ago)"
            found.append(StaleBranch(branch.name, age, False, alive=holder))
            continue
        deleted = False
        if not dry_run:
            try:
                client.delete_branch(branch.name)
                deleted = True
            except BranchNotFoundError:  # deleted meanwhile by its own run's rollback: nothing left to do
                deleted = False
            # Any other failure (read-only or full storage, a busy catalog) ends gc with its error: a branch
            # that could not be deleted must not be reported as gone.
            if lease is not None and owning_gate_branch(branch.name) == branch.name:
                release_stale_lease(client, lease)
        found.append(StaleBranch(branch.name, age, deleted))
    return found
