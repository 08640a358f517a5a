"""`wap gc`: stale gate branches go; main, other branches and fresh gate branches stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from gate_fixtures import run_cli

from flows.gc import collect_stale_branches, is_gate_branch, parse_duration
from flows.lakehouse import MAIN, InvalidNameError, connect
from flows.lakehouse.leases import hold_branch_lease, read_lease

GATE = "alice.wap_titanic_0123abcd"
OTHER = ["alice.feature", "alice.wap_titanic", "wap_titanic_0123abcd", "bob.wap_titanic_0123abcdx"]


def test_only_gate_named_branches_are_candidates():
    assert is_gate_branch(GATE)
    assert not is_gate_branch(MAIN)
    for name in OTHER:
        assert not is_gate_branch(name), name


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("0", 0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "-5m", "1y", "5 minutes"])
def test_parse_duration_rejects_garbage(text):
    with pytest.raises(InvalidNameError):
        parse_duration(text)


def test_gc_deletes_only_stale_gate_branches(lakehouse):
    for name in [GATE, *OTHER]:
        lakehouse.create_branch(name, MAIN)
    main_before = lakehouse.get_branch(MAIN).hash

    fresh = collect_stale_branches(lakehouse, older_than=timedelta(hours=1))
    assert fresh == []  # just created: a running gate's branch is not touched

    later = datetime.now(UTC) + timedelta(hours=2)
    listed = collect_stale_branches(lakehouse, older_than=timedelta(hours=1), dry_run=True, now=later)
    assert [b.name for b in listed] == [GATE] and not listed[0].deleted
    assert lakehouse.has_branch(GATE)

    deleted = collect_stale_branches(lakehouse, older_than=timedelta(hours=1), now=later)
    assert [(b.name, b.deleted) for b in deleted] == [(GATE, True)]
    assert sorted(b.name for b in lakehouse.get_branches()) == sorted([MAIN, *OTHER])
    assert lakehouse.get_branch(MAIN).hash == main_before


def test_gc_cli_dry_run_then_delete(tmp_path):
    lake = tmp_path / "lake"
    client = connect("local", lake)
    client.create_branch(GATE, MAIN)
    client.create_branch("alice.feature", MAIN)

    unsafe = run_cli("gc", "--older-than", "0s", "--lakehouse", str(lake))
    assert unsafe.returncode == 2 and "below the safe minimum" in unsafe.stderr and "--force" in unsafe.stderr
    assert "Traceback" not in unsafe.stderr and client.has_branch(GATE)

    dry = run_cli("gc", "--older-than", "0s", "--force", "--dry-run", "--lakehouse", str(lake))
    assert dry.returncode == 0, dry.stderr
    assert GATE in dry.stdout and "would delete" in dry.stdout and "alice.feature" not in dry.stdout
    assert client.has_branch(GATE)

    real = run_cli("gc", "--older-than", "0s", "--force", "--lakehouse", str(lake))
    assert real.returncode == 0, real.stderr
    assert GATE in real.stdout and "deleted" in real.stdout
    assert sorted(b.name for b in client.get_branches()) == ["alice.feature", MAIN]

    bad = run_cli("gc", "--older-than", "soon", "--lakehouse", str(lake))
    assert bad.returncode == 2 and "invalid duration" in bad.stderr and "Traceback" not in bad.stderr


def test_gc_keeps_the_branch_of_a_live_run(lakehouse):
    lakehouse.create_branch(GATE, MAIN)
    later = datetime.now(UTC) + timedelta(days=30)
    with hold_branch_lease(lakehouse, GATE):
        kept = collect_stale_branches(lakehouse, older_than=timedelta(0), now=later)
        assert [(b.name, b.deleted) for b in kept] == [(GATE, False)]
        assert kept[0].alive and "live run" in kept[0].alive
        assert lakehouse.has_branch(GATE)
    assert read_lease(lakehouse, GATE) is None  # released when the run ends
    gone = collect_stale_branches(lakehouse, older_than=timedelta(0), now=later)
    assert [(b.name, b.deleted) for b in gone] == [(GATE, True)]


def test_a_lease_whose_heartbeat_stopped_is_not_alive(lakehouse, monkeypatch):
    lakehouse.create_branch(GATE, MAIN)
    with hold_branch_lease(lakehouse, GATE, ttl_s=3600):
        assert read_lease(lakehouse, GATE).live
        # A frozen run: no heartbeat for longer than the ttl.
        assert not read_lease(lakehouse, GATE, ttl_s=0.0).live
        monkeypatch.setenv("WAP_LEASE_TTL", "0")
        deleted = collect_stale_branches(lakehouse, older_than=timedelta(0))
        assert [(b.name, b.deleted) for b in deleted] == [(GATE, True)]


def test_a_lease_left_by_a_killed_process_is_not_alive(lakehouse, tmp_path):
    import subprocess
    import sys

    lakehouse.create_branch(GATE, MAIN)
    # A real process takes the lease and is SIGKILLed: its heartbeat is fresh but its pid is gone.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from flows.lakehouse import connect\n"
            "from flows.lakehouse.leases import hold_branch_lease\n"
            f"c = connect('local', {str(lakehouse.root)!r})\n"
            f"with hold_branch_lease(c, {GATE!r}):\n"
            "    print('held', flush=True); time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "held"
    assert read_lease(lakehouse, GATE).live
    child.kill()
    child.wait()
    lease = read_lease(lakehouse, GATE)
    assert lease is not None and lease.age_s < 60 and not lease.live
    deleted = collect_stale_branches(lakehouse, older_than=timedelta(0))
    assert [(b.name, b.deleted) for b in deleted] == [(GATE, True)]
    assert read_lease(lakehouse, GATE) is None  # gc removed the dead run's lease file
