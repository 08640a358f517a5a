"""`wap gc`: delete gate branches that crashed or killed runs left behind.

Only branches the gate itself names (`<user>.wap_<dataset>_<8 hex>`) are candidates; `main` and any
other branch are never touched. Age is the branch's creation time where the backend records it (the
embedded one does), else the time of its head commit.

A branch whose gate is still alive is never deleted, whatever its age: the gate holds a lease on it
(`lakehouse/leases.py`) and gc skips every branch with a live lease. An age threshold below
`SAFE_MIN_AGE` needs `force=True`: on a backend without leases (Bauplan) age is the only guard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .lakehouse import MAIN, Branch, InvalidNameError, LakehouseError
from .lakehouse.leases import read_lease, release_stale_lease

GATE_BRANCH = re.compile(r"[A-Za-z0-9_-]+\.wap_[a-z][a-z0-9_]*_[0-9a-f]{8}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than any gate run we have seen; below it, a user must say --force.
SAFE_MIN_AGE = timedelta(minutes=10)


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w` (a bare number is seconds)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise InvalidNameError(f"invalid duration {text!r}: use e.g. 90s, 30m, 24h, 7d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def is_gate_branch(name: str) -> bool:
    return name != MAIN and GATE_BRANCH.fullmatch(name) is not None


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


def _created_at(client, branch: Branch) -> datetime:
    if branch.created_at is not None:
        return branch.created_at
    return client.get_commits(branch.name, limit=1)[0].authored_date


def collect_stale_branches(
    client, *, older_than: timedelta, dry_run: bool = False, now: datetime | None = None
) -> list[StaleBranch]:
    """Delete (or, with dry_run, only list) gate branches older than `older_than` whose run is not alive."""
    now = now or datetime.now(UTC)
    found = []
    for branch in client.get_branches():
        if not is_gate_branch(branch.name):
            continue
        age = now - _created_at(client, branch)
        if age < older_than:
            continue
        lease = read_lease(client, branch.name)
        if lease is not None and lease.live:
            holder = f"live run (pid {lease.pid} on {lease.host}, heartbeat {lease.age_s:.0f}s ago)"
            found.append(StaleBranch(branch.name, age, False, alive=holder))
            continue
        deleted = False
        if not dry_run:
            try:
                client.delete_branch(branch.name)
                deleted = True
            except LakehouseError:  # deleted meanwhile by its own run's rollback: nothing left to do
                deleted = not client.has_branch(branch.name)
            if lease is not None:
                release_stale_lease(client, lease)
        found.append(StaleBranch(branch.name, age, deleted))
    return found
