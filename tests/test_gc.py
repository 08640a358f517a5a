"""`wap gc`: stale gate branches go; main, other branches and fresh gate branches stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from gate_fixtures import run_cli

from flows.gate.gc import collect_stale_branches, parse_duration
from flows.gate.naming import default_branch_name, is_gate_branch
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


def test_gc_reads_a_gate_branch_age_from_its_name_first_and_a_live_lease_still_keeps_it(lakehouse):
    # Made just now (the catalog's created_at), but its name says two days ago: the name is what gc reads (as
    # on Bauplan, which records no creation time); liveness is still the lease's, and any user's gate branch is
    # a candidate on the embedded backend (no accounts; the leases tell every run's liveness).
    named = default_branch_name("titanic", "someone_else", now=datetime.now(UTC) - timedelta(days=2))
    lakehouse.create_branch(named, MAIN)
    with hold_branch_lease(lakehouse, named):
        kept = collect_stale_branches(lakehouse, older_than=timedelta(hours=1))
        assert [(b.name, b.deleted, b.age_from) for b in kept] == [(named, False, "name")]
        assert kept[0].alive and "live run" in kept[0].alive and lakehouse.has_branch(named)
    gone = collect_stale_branches(lakehouse, older_than=timedelta(hours=1))
    assert [(b.name, b.deleted, b.age_from) for b in gone] == [(named, True, "name")]
    assert not lakehouse.has_branch(named)


def test_a_lease_whose_heartbeat_stopped_is_not_alive(lakehouse, monkeypatch):
    lakehouse.create_branch(GATE, MAIN)
    with hold_branch_lease(lakehouse, GATE, ttl_s=3600):
        assert read_lease(lakehouse, GATE).live
        # A frozen run: no heartbeat for longer than the ttl.
        assert not read_lease(lakehouse, GATE, ttl_s=0.0).live
        monkeypatch.setenv("WAP_LEASE_TTL", "0")
        deleted = collect_stale_branches(lakehouse, older_than=timedelta(0))
        assert [(b.name, b.deleted) for b in deleted] == [(GATE, True)]


@pytest.mark.subprocess
@pytest.mark.crash
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


# ----------------------------------------------------------------------------- orphan files (reclaim)
def _wap(*args: str, **env: str):
    """`wap ARGS` in-process: what is killed is a real process; the command run after it need not be."""
    return run_cli(*args, env=env)


def _files(root) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in sorted((root / "warehouse").rglob("*")) if p.is_file()}


def _rows(client, ref):
    table = client.scan("t", ref=ref)
    return sorted(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


@pytest.fixture
def small_lake(tmp_path):
    from lakehouse_worker import write_csv

    root = tmp_path / "lake"
    client = connect("local", root, author="tester")
    client.create_table("t", str(write_csv(tmp_path / "a.csv", 5)), branch=MAIN)
    client.import_data("t", str(tmp_path / "a.csv"), branch=MAIN)
    # A deleted branch's commit stays in the catalog: the files it references are not orphans.
    client.create_branch("gone", MAIN)
    client.import_data("t", str(write_csv(tmp_path / "b.csv", 3, start=10)), branch="gone")
    client.delete_branch("gone")
    client.create_branch("dev", MAIN)
    return client


@pytest.mark.subprocess
@pytest.mark.crash
def test_gc_reclaims_the_files_of_a_killed_import_and_nothing_else(small_lake, tmp_path):
    import subprocess
    import sys
    import time

    from lakehouse_worker import worker_env, write_csv

    root = small_lake.root
    keep = _files(root)
    main_rows, dev_head = _rows(small_lake, MAIN), small_lake.get_branch("dev").hash
    big = write_csv(tmp_path / "big.csv", 300_000, start=100)
    # A real import in its own interpreter, in small chunks so that it writes several data files before its
    # single commit; SIGKILLed as soon as its first data file appears: it never gets to clean up.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import flows.lakehouse.local as local\n"
            "from flows.lakehouse import connect\n"
            "local.IMPORT_CHUNK_ROWS = 20_000\n"
            f"connect('local', {str(root)!r}).import_data('t', {str(big)!r}, branch='dev')\n",
        ],
        env=worker_env(),
    )
    deadline = time.monotonic() + 60
    while not set(_files(root)) - set(keep):
        assert writer.poll() is None and time.monotonic() < deadline, "the import ended before writing a file"
        time.sleep(0.005)
    writer.kill()
    writer.wait()
    orphans = {p: s for p, s in _files(root).items() if p not in keep}
    assert orphans and small_lake.get_branch("dev").hash == dev_head  # killed before its commit

    young = _wap("gc", "--lakehouse", str(root))
    assert young.returncode == 0, young.stderr
    assert f"reclaimed 0 (0 B); kept {len(orphans)} younger than 60s" in young.stdout
    assert set(_files(root)) >= set(orphans)  # a file that may belong to a write in flight is kept

    from flows.lakehouse.doctor import format_size

    reclaimed = _wap("gc", "--lakehouse", str(root), WAP_GC_GRACE="0")
    assert reclaimed.returncode == 0, reclaimed.stderr
    assert f"orphan files: reclaimed {len(orphans)} ({format_size(sum(orphans.values()))})" in reclaimed.stdout
    assert _files(root) == keep  # exactly the killed import's files went
    assert _rows(small_lake, MAIN) == main_rows and small_lake.get_branch("dev").hash == dev_head
    assert _rows(small_lake, "dev") == main_rows
    again = _wap("gc", "--lakehouse", str(root), WAP_GC_GRACE="0")
    assert again.returncode == 0 and "orphan files: reclaimed 0 (0 B)" in again.stdout, again.stdout


@pytest.mark.subprocess
def test_reclaim_touches_nothing_while_a_writer_holds_the_lock(small_lake):
    import subprocess
    import sys

    from flows.lakehouse.doctor import reclaim_files

    root = small_lake.root
    orphan = root / "warehouse" / "bauplan" / "t-000000000000" / "data" / "x.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 1000)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, time\n"
            f"fd = os.open({str(root / 'writers.lock')!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_SH)\nprint('held', flush=True)\ntime.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = reclaim_files(root, grace_s=0, wait_s=0.3)
        assert busy.busy and busy.files == 0 and orphan.exists()
    finally:
        holder.kill()
        holder.wait()
    done = reclaim_files(root, grace_s=0, wait_s=0.3)
    assert not done.busy and (done.files, done.bytes) == (1, 1000) and not orphan.exists()
    assert not orphan.parent.parent.exists()  # the directory the failed write made goes too


@pytest.mark.subprocess
@pytest.mark.crash
def test_sigkill_during_gc_never_loses_a_referenced_file_and_a_rerun_finishes(small_lake, tmp_path):
    import os
    import random
    import subprocess
    import sys
    import time

    from gate_fixtures import REPO
    from lakehouse_worker import worker_env

    rng = random.Random(int(os.environ.get("WAP_GC_KILL_SEED", str(int(time.time())))))
    root = small_lake.root
    keep = _files(root)
    main_rows = _rows(small_lake, MAIN)
    junk = root / "warehouse" / "bauplan" / "t-dead00000000" / "data"
    env = {**worker_env(), "WAP_GC_GRACE": "0"}
    duration, outcomes = 2.0, []
    for attempt in range(3):
        junk.mkdir(parents=True, exist_ok=True)
        for i in range(5000):  # enough that deleting them takes a while: kills land in the middle
            (junk / f"{attempt}-{i}.parquet").write_bytes(b"p")
        small_lake.create_branch(f"alice.wap_titanic_{attempt:08x}", MAIN)
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "gc", "--older-than", "0s", "--force", "--lakehouse", str(root)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * rng.uniform(0.6, 1.0))
        proc.kill()
        proc.wait()
        left = len(list(junk.glob("*"))) if junk.exists() else 0
        outcomes.append(left)
        files = _files(root)
        assert all(p in files and files[p] == size for p, size in keep.items()), f"attempt {attempt}: lost a file"
        assert _rows(small_lake, MAIN) == main_rows
        started = time.monotonic()
        rerun = _wap("gc", "--older-than", "0s", "--force", "--lakehouse", str(root), WAP_GC_GRACE="0")
        duration = time.monotonic() - started
        assert rerun.returncode == 0, rerun.stderr
        assert _files(root) == keep and not junk.exists()
        assert sorted(b.name for b in small_lake.get_branches()) == ["dev", MAIN]
    print(f"orphans left by each killed gc: {outcomes}")
