"""`wap gc`: delete the gate branches (and, on request, the Bauplan job branches) that crashed or killed runs
left behind.

Candidates. Only branches the gate itself names (`<user>.wap_<dataset>_<created>_<8 hex>`, older ones
`<user>.wap_<dataset>_<8 hex>`, and their staging branches `…_batch`) are gate candidates; `main` and any other
branch are never touched. On a backend without leases (Bauplan) gc sees only the user's own branches: it lists
`get_branches(user=<info().user.username>)` and keeps only names that start with `<username>.` (Bauplan lets a
user create no others), then matches the names itself: no `name=` filter, whose semantics the SDK leaves
undocumented. The embedded backend has no accounts (any name is any local user's), and its leases tell any
run's liveness, so there gc considers every gate-named branch, as it always has.

Age. A gate branch's age is the creation time in its name (gate/naming.py), else the backend's record of it
(the embedded one keeps one), else, for a name from before names carried the time on a backend that records
none (Bauplan), its head commit's. That last one proves nothing: until the run writes, a branch's head is the
main commit it was made from, however young the branch. Such a branch is kept ("age unknown") unless
`force=True`, and even then deleted only when its head is older than the threshold.

Liveness. On the embedded backend a running gate holds a lease on its branch (`lakehouse/leases.py`) and gc
keeps every branch with a live lease, whatever its age. Bauplan has no shared directory, so no leases: there a
branch is judged by its age alone, which is why the default threshold is a day and one below `SAFE_MIN_AGE`
needs `force`. A run still going past the threshold loses its branch; it then fails and publishes nothing (it
publishes only the commit it audited, on the branch it audited).

Job branches (`job_branches=True`, `wap gc --job-branches`). A Bauplan job that changes the lake runs on a
transactional branch, `<user>.<branch>-bpln-tx-<command>-<YYYYmmddHHMMSS>-<job id>`, merged on success and left
behind when the job fails. The shape is not in the installed SDK (its compiled module knows only a
`transaction_branch` field; the service makes the name): it is the one Bauplan's own branch-pruning example
matches. Nothing here can ask whether the job is still running (the lakehouse interface has no `get_jobs`), so
a job branch's age is the younger of the time in its name (read as UTC; the service's zone is not documented)
and its head commit's (a running job's branch starts at its parent's head, which can be old), and it is
deleted only when that age reaches both the threshold and `JOB_BRANCH_MIN_AGE` (a day: longer than a job runs,
and than any time-zone error); `force` drops the second bound.

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from flows.gate.naming import branch_created_at, is_gate_branch, owning_gate_branch
from flows.lakehouse import (
    Branch,
    BranchNotFoundError,
    InvalidNameError,
    LakehouseClient,
    RefNotFoundError,
    StoredInDirectory,
)
from flows.lakehouse.leases import read_lease, release_stale_lease

if TYPE_CHECKING:
    from flows.lakehouse.doctor import ReclaimReport

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than any gate run we have seen; below it, a user must say --force.
SAFE_MIN_AGE = timedelta(minutes=10)
# A Bauplan job branch younger than this may belong to a job still running (nothing here can ask); see above.
JOB_BRANCH_MIN_AGE = timedelta(hours=24)
# Orphan files younger than this are kept even though writers.lock proves no write is in flight: a second
# guard, against a writer that does not take the lock (another tool, an older version).
FILE_GRACE = timedelta(seconds=60)
# `<user>.` is matched first (see job_branch_match); the job id is a UUID, or hex in some names seen.
_JOB_BRANCH = (
    r"\.(?P<branch>.+)-bpln-tx-(?P<command>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*?)-(?P<stamp>\d{14})"
    r"-(?P<job>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{8,32})"
)
UNKNOWN_AGE = "age unknown (made before names carried their creation time): delete it by hand or rerun with --force"
UNKNOWN_JOB_AGE = "age unknown (no time in its name): delete it by hand or rerun with --force"


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w` (a bare number is seconds)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise InvalidNameError(f"invalid duration {text!r}: use e.g. 90s, 30m, 24h, 7d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(age: timedelta) -> str:
    """A duration as people write it: `90s`, `10m`, `24h`, `2d`."""
    seconds = int(age.total_seconds())
    if seconds and seconds % _UNITS["d"] == 0 and seconds >= 2 * _UNITS["d"]:
        return f"{seconds // _UNITS['d']}d"
    for unit in ("h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class StaleBranch:
    name: str
    age: timedelta
    deleted: bool
    alive: str | None = None  # why it was kept: the live lease holding it
    kept: str | None = None  # why else it was kept (its age is unknown, a job branch younger than a day)
    age_from: str = "name"  # what the age was read from: name, created (the backend's record), head, name+head
    kind: str = "gate"  # or "job": a Bauplan job's transactional branch


def check_min_age(older_than: timedelta, *, force: bool, given: str | None = None) -> None:
    """Refuse a threshold below SAFE_MIN_AGE unless forced (`given`: the threshold as the user wrote it)."""
    if older_than < SAFE_MIN_AGE and not force:
        minutes = int(SAFE_MIN_AGE.total_seconds() // 60)
        raise InvalidNameError(
            f"--older-than {given or older_than} is below the safe minimum of {minutes}m (a branch that young may"
            " belong to a run that is still writing): add --force to go lower; branches of live runs are kept anyway"
        )


def job_branch_match(name: str, username: str) -> re.Match[str] | None:
    """The parts of a Bauplan job branch of `username` (`branch`, `command`, `stamp`, `job`), None for any other."""
    return re.fullmatch(re.escape(username) + _JOB_BRANCH, name)


def _head_date(client: LakehouseClient, branch: str) -> datetime | None:
    """When the branch's head commit was made; None if the branch is gone meanwhile."""
    try:
        return next(iter(client.get_commits(branch, limit=1))).authored_date
    except (BranchNotFoundError, RefNotFoundError, StopIteration):
        return None


def _stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


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


def describe_scope(client: LakehouseClient, older_than: timedelta) -> str | None:
    """On a backend without leases, one line saying whose branches gc looks at and how it judges liveness."""
    if isinstance(client, StoredInDirectory):
        return None
    return (
        f"{client.info().user.username}'s branches only; no leases on {client.backend}, so a branch is judged by its"
        f" age alone (from its name): a run still going after {format_duration(older_than)} would lose its branch"
        " (it then fails and publishes nothing)"
    )


@dataclass(frozen=True)
class _Candidate:
    branch: Branch
    kind: str
    age: timedelta
    age_from: str
    kept: str | None = None  # kept whatever its age (unknown age, not forced)


def _gate_candidate(client: LakehouseClient, branch: Branch, now: datetime, force: bool) -> _Candidate | None:
    created = branch_created_at(branch.name)
    if created is not None:
        return _Candidate(branch, "gate", now - created, "name")
    if branch.created_at is not None:
        return _Candidate(branch, "gate", now - branch.created_at, "created")
    head = _head_date(client, branch.name)
    if head is None:
        return None  # gone meanwhile (its own run's rollback)
    return _Candidate(branch, "gate", now - head, "head", kept=None if force else UNKNOWN_AGE)


def _job_candidate(
    client: LakehouseClient, branch: Branch, match: re.Match[str], now: datetime, force: bool
) -> _Candidate | None:
    head = _head_date(client, branch.name)
    if head is None:
        return None
    named = _stamp(match["stamp"])
    if named is None:
        return _Candidate(branch, "job", now - head, "head", kept=None if force else UNKNOWN_JOB_AGE)
    return _Candidate(branch, "job", min(now - named, now - head), "name+head")


def collect_stale_branches(
    client: LakehouseClient,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
    reclaim: bool = True,
    echo: Callable[[str], None] | None = None,
    force: bool = False,
    job_branches: bool = False,
) -> list[StaleBranch]:
    """Delete (or, with dry_run, only list) gate branches older than `older_than` whose run is not alive, and with
    `job_branches` the user's Bauplan job branches as old (see the module docstring for scope, age and liveness).

    Returns every candidate at least `older_than` old: deleted, to delete (dry run), or kept and why. With
    `reclaim` (the default) orphan files are reclaimed first and `echo` gets one line saying what was
    reclaimed; `echo` also gets the scope and liveness rule on a backend without leases, and which candidates
    were kept for being younger than the threshold.
    """
    if reclaim:
        grace = orphan_grace(older_than)
        reclaimed = reclaim_orphan_files(client, grace=grace, dry_run=dry_run)
        if reclaimed is not None and echo is not None:
            echo(describe_reclaim(reclaimed, grace))
    now = now or datetime.now(UTC)
    leased = isinstance(client, StoredInDirectory)
    username = client.info().user.username if (job_branches or not leased) else ""
    if echo is not None and (scope := describe_scope(client, older_than)) is not None:
        echo(scope)
    listing = client.get_branches() if leased else client.get_branches(user=username)
    candidates: list[_Candidate] = []
    for branch in listing:
        candidate = None
        if is_gate_branch(branch.name):
            if not leased and not branch.name.startswith(f"{username}."):
                continue  # not this user's, whatever the backend's user filter means
            candidate = _gate_candidate(client, branch, now, force)
        elif job_branches and (match := job_branch_match(branch.name, username)) is not None:
            candidate = _job_candidate(client, branch, match, now, force)
        if candidate is not None:
            candidates.append(candidate)

    found: list[StaleBranch] = []
    young: list[_Candidate] = []
    for candidate in candidates:
        name = candidate.branch.name
        if candidate.age < older_than:
            young.append(candidate)
            continue
        if candidate.kept is None and candidate.kind == "job" and not force and candidate.age < JOB_BRANCH_MIN_AGE:
            floor = format_duration(JOB_BRANCH_MIN_AGE)
            why = f"younger than {floor}: its job may still be running (--force deletes it)"
            candidate = replace(candidate, kept=why)
        if candidate.kept is not None:
            found.append(StaleBranch(name, candidate.age, False, kept=candidate.kept, **_about(candidate)))
            continue
        lease = read_lease(client, owning_gate_branch(name)) if candidate.kind == "gate" else None
        if lease is not None and lease.live:  # a staging branch: its gate's lease
            holder = f"live run (pid {lease.pid} on {lease.host}, heartbeat {lease.age_s:.0f}s ago)"
            found.append(StaleBranch(name, candidate.age, False, alive=holder, **_about(candidate)))
            continue
        deleted = False
        if not dry_run:
            # False: deleted meanwhile (by its own run's rollback), nothing left to do. Any other failure (read-only
            # or full storage, a busy catalog) ends gc with its error: a branch that could not be deleted must not
            # be reported as gone.
            deleted = client.delete_branch(name, if_exists=True)
            if lease is not None and owning_gate_branch(name) == name:
                release_stale_lease(client, lease)
        found.append(StaleBranch(name, candidate.age, deleted, **_about(candidate)))
    if echo is not None and young:
        names = ", ".join(f"{c.branch.name} ({_age_text(c.age)} by {_FROM[c.age_from]})" for c in young[:5])
        more = f" and {len(young) - 5} more" if len(young) > 5 else ""
        echo(f"kept {len(young)} younger than {format_duration(older_than)}: {names}{more}")
    return found


_FROM = {"name": "its name", "created": "its creation", "head": "its head commit", "name+head": "name and head"}


def _about(candidate: _Candidate) -> dict[str, str]:
    return {"age_from": candidate.age_from, "kind": candidate.kind}


def _age_text(age: timedelta) -> str:
    return str(age).split(".")[0]


def describe_age_from(age_from: str) -> str:
    """What an age was read from, for people."""
    return _FROM.get(age_from, age_from)
