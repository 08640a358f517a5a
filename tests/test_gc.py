"""`wap gc`: stale gate branches go; main, other branches and fresh gate branches stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from gate_fixtures import run_cli

from flows.gc import collect_stale_branches, is_gate_branch, parse_duration
from flows.lakehouse import MAIN, InvalidNameError, connect

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

    dry = run_cli("gc", "--older-than", "0s", "--dry-run", "--lakehouse", str(lake))
    assert dry.returncode == 0, dry.stderr
    assert GATE in dry.stdout and "would delete" in dry.stdout and "alice.feature" not in dry.stdout
    assert client.has_branch(GATE)

    real = run_cli("gc", "--older-than", "0s", "--lakehouse", str(lake))
    assert real.returncode == 0, real.stderr
    assert GATE in real.stdout and "deleted" in real.stdout
    assert sorted(b.name for b in client.get_branches()) == ["alice.feature", MAIN]

    bad = run_cli("gc", "--older-than", "soon", "--lakehouse", str(lake))
    assert bad.returncode == 2 and "invalid duration" in bad.stderr and "Traceback" not in bad.stderr
