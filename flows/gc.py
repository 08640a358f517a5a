"""`wap gc`: delete gate branches that crashed or killed runs left behind.

Only branches the gate itself names (`<user>.wap_<dataset>_<8 hex>`) are candidates; `main` and any
other branch are never touched. Age is the branch's creation time where the backend records it (the
embedded one does), else the time of its head commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .lakehouse import MAIN, Branch, InvalidNameError, LakehouseError

GATE_BRANCH = re.compile(r"[A-Za-z0-9_-]+\.wap_[a-z][a-z0-9_]*_[0-9a-f]{8}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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


def _created_at(client, branch: Branch) -> datetime:
    if branch.created_at is not None:
        return branch.created_at
    return client.get_commits(branch.name, limit=1)[0].authored_date


def collect_stale_branches(
    client, *, older_than: timedelta, dry_run: bool = False, now: datetime | None = None
) -> list[StaleBranch]:
    """Delete (or, with dry_run, only list) gate branches older than `older_than`."""
    now = now or datetime.now(UTC)
    found = []
    for branch in client.get_branches():
        if not is_gate_branch(branch.name):
            continue
        age = now - _created_at(client, branch)
        if age < older_than:
            continue
        deleted = False
        if not dry_run:
            try:
                client.delete_branch(branch.name)
                deleted = True
            except LakehouseError:  # deleted meanwhile by its own run's rollback: nothing left to do
                deleted = not client.has_branch(branch.name)
        found.append(StaleBranch(branch.name, age, deleted))
    return found
