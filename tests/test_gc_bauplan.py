"""`wap gc` on Bauplan, through the real `BauplanClient` over the SDK stand-in (tests/bauplan_standin.py).

Bauplan records no creation time for a branch and has no leases. Before anything is written a gate branch's
head is the main commit it was made from, which these tests make three days old: gc must read a gate
branch's age from its name, see only the user's own branches, keep what it cannot date, and prune Bauplan job
branches (`<user>.<branch>-bpln-tx-<command>-<time>-<job id>`) only when asked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from bauplan_standin import (
    EmbeddedBauplanSDK,
    bauplan_standin,  # noqa: F401  (the fixture)
)
from gate_fixtures import run_cli

from flows.gate.gc import UNKNOWN_AGE, collect_stale_branches
from flows.gate.naming import default_branch_name
from flows.lakehouse import MAIN, LakehouseClient, connect

USER = "tester"  # the stand-in's user
OTHER = "bob"


def _job_branch(user: str, at: datetime, command: str = "run") -> str:
    """A Bauplan transactional branch name: `<user>.<branch>-bpln-tx-<command>-<YYYYmmddHHMMSS>-<job id>`."""
    return f"{user}.dev-bpln-tx-{command}-{at:%Y%m%d%H%M%S}-{uuid.uuid4()}"


@contextmanager
def clock_back(by: timedelta) -> Iterator[None]:
    """Commits made inside are dated `by` earlier (the embedded engine under the stand-in dates them by time.time)."""
    real = time.time
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: real() - by.total_seconds())
        yield


@dataclass
class Lake:
    sdk: EmbeddedBauplanSDK  # the stand-in, as USER
    client: LakehouseClient  # BauplanClient over it
    fresh: str  # a gate branch made just now, nothing written: its head is main's 3-day-old commit
    old_named: str  # a gate branch whose name says 2 days; written to just now (a young head)
    old_style: str  # a gate branch named before names carried the time; head: main's old commit
    other_gate: str  # another user's gate branch, 2 days old by its name
    non_gate: str  # the user's own branch the gate did not name
    other_non_gate: str
    job: str  # the user's job branch, 2 days old by its name
    young_job: str  # the user's job branch of a job started just now (head: main's old commit)
    mid_job: str  # 3 h old by its name: older than 1h, younger than a day
    other_job: str  # another user's job branch, 2 days old

    @property
    def all(self) -> list[str]:
        return [
            self.fresh,
            f"{self.fresh}_batch",
            self.old_named,
            f"{self.old_named}_batch",
            self.old_style,
            self.other_gate,
            self.non_gate,
            self.other_non_gate,
            self.job,
            self.young_job,
            self.mid_job,
            self.other_job,
        ]

    def branches(self) -> set[str]:
        return {b.name for b in self.sdk.local.get_branches()}


@pytest.fixture
def lake(bauplan_standin: EmbeddedBauplanSDK) -> Lake:  # noqa: F811
    sdk = bauplan_standin
    bob = sdk.as_user(OTHER)
    with clock_back(timedelta(days=3)):
        sdk.as_user("admin", admin=True).create_namespace("shop", MAIN)  # main's last commit: 3 days ago
    client = connect("bauplan")
    now = datetime.now(UTC)
    two_days_ago = now - timedelta(days=2)
    found = Lake(
        sdk=sdk,
        client=client,
        fresh=default_branch_name("titanic", USER),
        old_named=default_branch_name("orders", USER, now=two_days_ago),
        old_style=f"{USER}.wap_titanic_0123abcd",
        other_gate=default_branch_name("titanic", OTHER, now=two_days_ago),
        non_gate=f"{USER}.feature",
        other_non_gate=f"{OTHER}.feature",
        job=_job_branch(USER, two_days_ago),
        young_job=_job_branch(USER, now, "import-data"),
        mid_job=_job_branch(USER, now - timedelta(hours=3)),
        other_job=_job_branch(OTHER, two_days_ago),
    )
    for name in found.all:
        (bob if name.startswith(f"{OTHER}.") else client).create_branch(name, MAIN)
    sdk.create_namespace("written", found.old_named)  # its head: a commit made just now
    main_head = client.get_branch(MAIN).hash
    assert client.get_branch(found.fresh).hash == main_head  # the case that fooled gc: nothing written yet
    head_date = next(iter(client.get_commits(found.fresh, limit=1))).authored_date
    assert now - head_date > timedelta(days=2, hours=23)
    assert now - next(iter(client.get_commits(found.old_named, limit=1))).authored_date < timedelta(minutes=5)
    return found


def _gc(*args: str):
    result = run_cli("gc", "--backend", "bauplan", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _rows(stdout: str) -> list[str]:
    """The table's rows (not the lines gc prints before it)."""
    return [line for line in stdout.splitlines() if line.startswith("│")]


def _row(stdout: str, name: str) -> str:
    rows = [line for line in _rows(stdout) if f" {name} " in line]
    assert len(rows) == 1, f"{name} in:\n{stdout}"
    return rows[0]


def test_a_fresh_gate_branch_is_kept_though_its_head_is_mains_old_commit(lake):
    result = _gc("--older-than", "1h")
    assert {lake.fresh, f"{lake.fresh}_batch"} <= lake.branches()  # a minute old by its name: a run in flight
    assert f"kept 2 younger than 1h: {lake.fresh} (0:00:" in result.stdout
    assert "by its name" in result.stdout
    assert f"{USER}'s branches only; no leases on bauplan, so a branch is judged by its age alone" in result.stdout
    assert not [row for row in _rows(result.stdout) if lake.fresh in row]


def test_a_gate_branch_whose_name_says_two_days_is_deleted_though_just_written(lake):
    result = _gc("--older-than", "1h")
    for name in (lake.old_named, f"{lake.old_named}_batch"):  # the staging branch follows its gate branch
        assert name not in lake.branches()
        row = _row(result.stdout, name)
        assert "2 days" in row and "its name" in row and "deleted" in row
    assert [call["if_exists"] for call in lake.sdk.called("delete_branch")] == [True, True]


def test_only_the_users_own_gate_branches_are_listed_or_deleted(lake):
    result = _gc("--older-than", "1h", "--force")
    untouched = {lake.other_gate, lake.non_gate, lake.other_non_gate, lake.job, lake.young_job, lake.mid_job}
    assert untouched | {lake.other_job} <= lake.branches()
    for name in (lake.other_gate, lake.other_non_gate, lake.non_gate, lake.other_job, lake.job):
        assert name not in result.stdout
    assert {call["user"] for call in lake.sdk.called("get_branches")} == {USER}

    again = _gc("--older-than", "10m", "--force", "--job-branches")
    assert {lake.other_gate, lake.non_gate, lake.other_non_gate, lake.other_job} <= lake.branches()
    for name in (lake.other_gate, lake.other_non_gate, lake.non_gate, lake.other_job):
        assert name not in again.stdout
    assert {call["user"] for call in lake.sdk.called("get_branches")} == {USER}
    assert all(call["name"] is None for call in lake.sdk.called("get_branches"))  # no reliance on name= semantics


def test_an_old_style_name_is_kept_as_of_unknown_age_unless_forced(lake):
    kept = _gc("--older-than", "1h")
    assert lake.old_style in lake.branches()
    row = _row(kept.stdout, lake.old_style)
    assert "its head commit" in row and f"kept: {UNKNOWN_AGE}" in row
    assert "delete it by hand or rerun with --force" in row

    forced = _gc("--older-than", "1h", "--force")
    assert lake.old_style not in lake.branches()
    assert "deleted" in _row(forced.stdout, lake.old_style)
    assert lake.fresh in lake.branches()  # --force does not make a young name old


def test_job_branches_are_pruned_only_when_asked_and_only_the_users(lake):
    off = _gc("--older-than", "1h")
    assert {lake.job, lake.mid_job, lake.young_job, lake.other_job} <= lake.branches()
    assert "bpln-tx" not in off.stdout

    on = _gc("--older-than", "1h", "--job-branches")
    assert lake.job not in lake.branches()
    row = _row(on.stdout, lake.job)
    assert "2 days" in row and "name and head" in row and "deleted" in row
    assert {lake.young_job, lake.mid_job, lake.other_job} <= lake.branches()
    assert "kept: younger than 24h: its job may still be running (--force deletes it)" in _row(on.stdout, lake.mid_job)
    assert f"{lake.young_job} (0:00:" in on.stdout  # kept: young by its name, though its head is 3 days old
    assert lake.other_job not in on.stdout

    forced = _gc("--older-than", "1h", "--job-branches", "--force")
    assert lake.mid_job not in lake.branches() and "deleted" in _row(forced.stdout, lake.mid_job)
    assert {lake.young_job, lake.other_job, lake.non_gate} <= lake.branches()


def test_dry_run_deletes_nothing(lake):
    before = lake.branches()
    dry = _gc("--older-than", "1h", "--dry-run")
    assert lake.branches() == before
    assert "would delete" in _row(dry.stdout, lake.old_named)
    assert "would delete" in _row(dry.stdout, f"{lake.old_named}_batch")
    assert f"kept: {UNKNOWN_AGE}" in _row(dry.stdout, lake.old_style)
    assert f"{lake.fresh} (0:00:" in dry.stdout and not [row for row in _rows(dry.stdout) if lake.fresh in row]

    dry_jobs = _gc("--older-than", "1h", "--dry-run", "--job-branches", "--force")
    assert lake.branches() == before
    for name in (lake.job, lake.mid_job, lake.old_style, lake.old_named):
        assert "would delete" in _row(dry_jobs.stdout, name)
    assert lake.sdk.called("delete_branch") == []


def test_a_branch_deleted_meanwhile_is_already_gone(lake):
    listing = lake.client.get_branches

    def listed_then_rolled_back(**filters):
        branches = list(listing(**filters))
        lake.sdk.delete_branch(lake.old_named)  # its own run's rollback, between gc's listing and its delete
        return branches

    lake.client.get_branches = listed_then_rolled_back  # type: ignore[method-assign]
    found = collect_stale_branches(lake.client, older_than=timedelta(hours=1))
    gone = [b for b in found if b.name == lake.old_named]
    assert [(b.deleted, b.kept, b.alive) for b in gone] == [(False, None, None)]
    assert f"{lake.old_named}_batch" not in lake.branches()
    assert {"branch": lake.old_named, "if_exists": True} in lake.sdk.called("delete_branch")
