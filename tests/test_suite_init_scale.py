"""`wap suite init` on wide sources, and killed at any moment: real files, real GX, real SIGKILL.

Scaling is checked by counting GX's work per init (store writes, suite saves, expectation comparisons),
which noise cannot fool: it must not grow with the number of columns. One 5000-column init through the
real CLI is the smoke test; its time is printed, with a timeout a slow machine still meets.

The kill tests fork init processes from a worker that has already imported GX (a kill should land in the
init, not in the import) and SIGKILL them at random delays, or at a chosen rename of the commit. After
each kill the project is either untouched or complete, or carries the commit journal that the next init
completes; a rerun without --force succeeds and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import yaml
from gate_fixtures import REPO, run_cli_process

from flows.suite import check_suites, init_suite, load_project

DATASET = "wide"
KILL_TRIALS = int(os.environ.get("WAP_INIT_KILL_TRIALS", "4"))  # random-delay kills (more: set the variable)


def wide_csv(path: Path, columns: int, rows: int = 5, seed: int = 0) -> Path:
    """Floats, integers, categories and id columns in turn: every kind of starter rule, ``columns`` times."""
    rng = np.random.default_rng(seed)
    data: dict[str, pa.Array] = {}
    for i in range(columns):
        kind = i % 4
        if kind == 0:
            data[f"amount_{i}"] = pa.array(rng.uniform(0, 100, rows))
        elif kind == 1:
            data[f"count_{i}"] = pa.array(rng.integers(0, 1000, rows))
        elif kind == 2:
            data[f"label_{i}"] = pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, rows)])
        else:
            data[f"item_{i}_id"] = pa.array(np.arange(rows) + i)
    pcsv.write_csv(pa.table(data), path)
    return path


def fresh_gx(target: Path) -> Path:
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def gx_env(gx: Path) -> dict[str, str]:
    return {"WAP_GX_DIR": str(gx), "WAP_DATASETS": str(gx / "datasets.yml")}


# ------------------------------------------------------------------------------------------- scaling
def _count_gx_work(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Count the GX calls that made init quadratic (or would make it O(columns)), calling through to GX."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.factory.suite_factory import SuiteFactory
    from great_expectations.data_context.store.store import Store
    from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend
    from great_expectations.expectations.expectation import Expectation

    counts: Counter = Counter()

    def counting(owner: type, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            counts[f"{owner.__name__}.{name}"] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in ("add", "update", "add_or_update"):
        counting(Store, name)  # every write through a GX store
    for name in ("add", "add_or_update"):
        counting(SuiteFactory, name)
    for name in ("add_expectation", "save"):
        counting(ExpectationSuite, name)
    counting(Expectation, "__eq__")  # what suites.add_or_update's list.index ran n*n times
    counting(TupleFilesystemStoreBackend, "_set")  # every file GX writes
    return counts


def test_init_does_the_same_gx_work_for_10_or_40_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    counts = _count_gx_work(monkeypatch)
    seen = {}
    for columns in (10, 40):
        source = wide_csv(tmp_path / f"w{columns}.csv", columns)
        gx = fresh_gx(tmp_path / f"gx{columns}")
        kwargs = {"gx_root": gx, "datasets_path": gx / "datasets.yml"}
        counts.clear()
        first = init_suite(DATASET, str(source), **kwargs)
        fresh = dict(counts)
        counts.clear()
        again = init_suite(DATASET, str(source), force=True, **kwargs)  # the path that reuses stored ids
        seen[columns] = (fresh, dict(counts))
        assert first.expectations > columns and again.expectations == first.expectations
    print(f"GX calls per init, 10 vs 40 columns: {seen}")
    assert seen[10] == seen[40], seen  # O(1) in the number of columns: the same calls, the same number of times
    fresh, forced = seen[40]
    assert fresh.get("Expectation.__eq__", 0) == 0 and forced.get("Expectation.__eq__", 0) == 0
    # config, placeholders, suites and definitions (batch and table), checkpoint
    assert fresh["TupleFilesystemStoreBackend._set"] <= 9


@pytest.mark.subprocess
@pytest.mark.soak
def test_5000_columns_through_the_cli(tmp_path: Path):
    source = wide_csv(tmp_path / "w5000.csv", 5000)
    gx = fresh_gx(tmp_path / "gx")
    started = time.monotonic()
    # A real process with a time limit: before the fix, 5000 columns did not finish at all.
    result = run_cli_process("suite", "init", DATASET, "--source", str(source), env=gx_env(gx), timeout=120)
    elapsed = time.monotonic() - started
    print(f"wap suite init, 5000 columns x 5 rows: {elapsed:.1f} s (needed 329 s for 1000 columns before)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    suite = json.loads((gx / "expectations" / f"{DATASET}.json").read_text())
    contract = next(e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set")
    assert len(contract["kwargs"]["column_set"]) == 5000
    assert len({e["id"] for e in suite["expectations"]}) == len(suite["expectations"])  # every rule has its own id
    assert "and 4951 more columns" in result.stdout  # the summary table stays readable (5000 + the table row)
    assert_complete(gx)


# ----------------------------------------------------------------------------------------------- kills
def install_state(gx: Path, dataset: str = DATASET) -> str:
    """'none', 'all' (each file complete and the references consistent) or 'pending' (a committed journal)."""
    config = yaml.safe_load((gx / "great_expectations.yml").read_text())  # must always parse
    declared = yaml.safe_load((gx / "datasets.yml").read_text())["datasets"]
    paths = [gx / folder / f"{dataset}.json" for folder in ("expectations", "validation_definitions", "checkpoints")]
    present = [p.exists() for p in paths]
    present += [dataset in config["fluent_datasources"]["pandas"]["assets"], dataset in declared]
    for path in paths:
        if path.exists():
            json.loads(path.read_text())  # never half-written
    # A committed journal: the init committed before it was killed, and the next init finishes it.
    if (gx / "uncommitted" / "wap-init" / f"{dataset}.journal").exists():
        return "pending"
    if all(present):
        suite, definition, checkpoint = (json.loads(p.read_text()) for p in paths)
        assert definition["suite"] == {"id": suite["id"], "name": dataset}
        table_definition = json.loads((gx / "validation_definitions" / f"{dataset}_table.json").read_text())
        assert checkpoint["validation_definitions"] == [
            {"id": definition["id"], "name": dataset},
            {"id": table_definition["id"], "name": f"{dataset}_table"},
        ]
        assert definition["data"]["asset"]["id"] == config["fluent_datasources"]["pandas"]["assets"][dataset]["id"]
        return "all"
    assert not any(present), f"partial, without a journal: {present}"
    return "none"


def project_json(gx: Path) -> dict[Path, bytes]:
    """Every JSON file GX reads (not the scratch copies under uncommitted/)."""
    return {p: p.read_bytes() for p in gx.rglob("*.json") if "uncommitted" not in p.relative_to(gx).parts}


def assert_complete(gx: Path, dataset: str = DATASET) -> None:
    assert install_state(gx, dataset) == "all"
    leftovers = [p for p in gx.rglob("*") if ".wap-init-" in p.name or p.suffix == ".journal"]
    leftovers += [p for p in (gx / "uncommitted" / "wap-init").iterdir() if p.name != "lock"]
    assert leftovers == []


# The worker imports GX and runs one init first (every lazy import paid), then forks one child per job:
# the test kills the child, the worker reports how it ended. A job may ask the child to SIGKILL itself
# at its Nth rename of an init temp file (1: the journal's commit rename, 2...: the files, in order).
# The worker reaps a child only when the test says so: a pid the test may still kill is never reused.
WORKER = r"""
import json, os, signal, sys, traceback
from pathlib import Path
import flows.suite as suite_module

def init(job):
    gx = Path(job["gx"])
    suite_module.init_suite(job["dataset"], job["source"], force=job.get("force", False), gx_root=gx,
                            datasets_path=gx / "datasets.yml")

init(json.loads(sys.argv[1]))
print(json.dumps({"ready": True}), flush=True)
while line := sys.stdin.readline():
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if job.get("kill_at_rename"):
                real_replace, renames = os.replace, []
                def replace(src, dst, *args, **kwargs):
                    if ".wap-init-" in os.fspath(src):
                        renames.append(src)
                        if len(renames) == job["kill_at_rename"]:
                            os.kill(os.getpid(), signal.SIGKILL)
                    return real_replace(src, dst, *args, **kwargs)
                os.replace = replace
            init(job)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    sys.stdin.readline()  # reap only when told: until then the pid cannot be reused by another process
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class InitWorker:
    def __init__(self, warmup: dict, log: Path) -> None:
        self.log = log.open("w")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(warmup)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert self._read() == {"ready": True}, log.read_text()[-3000:]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"worker died:\n{self.log.name}"
        return json.loads(line)

    def start(self, **job) -> int:
        self.proc.stdin.write(json.dumps({"dataset": DATASET, **job}) + "\n")
        self.proc.stdin.flush()
        return self._read()["pid"]

    def wait(self) -> int:
        self.proc.stdin.write("wait\n")
        self.proc.stdin.flush()
        return self._read()["status"]

    def run(self, **job) -> int:
        self.start(**job)
        return self.wait()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def kill_setup(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("kills")
    sources = {
        "first": wide_csv(folder / "first.csv", 300, rows=40, seed=1),
        "second": wide_csv(folder / "second.csv", 300, rows=60, seed=2),
    }
    warm = fresh_gx(folder / "warmup")
    worker = InitWorker({"dataset": DATASET, "gx": str(warm), "source": str(sources["first"])}, folder / "worker.log")
    yield worker, sources, folder
    worker.close()


@pytest.mark.subprocess
@pytest.mark.crash
def test_killed_at_random_moments_init_is_all_or_nothing(kill_setup, tmp_path: Path):
    worker, sources, _ = kill_setup
    source = str(sources["first"])
    timing_gx = fresh_gx(tmp_path / "timing")
    started = time.monotonic()
    assert worker.run(gx=str(timing_gx), source=source) == 0
    duration = time.monotonic() - started
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    outcomes = []
    for trial in range(KILL_TRIALS):
        gx = fresh_gx(tmp_path / f"gx{trial}")
        delay = rng.uniform(0.0, duration * 1.1)
        pid = worker.start(gx=str(gx), source=source)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)  # not reaped until wait(): a child that finished first is a zombie still
        status = worker.wait()
        state = install_state(gx)
        outcomes.append((round(delay, 2), status, state))
        if status == 0:
            assert state == "all"
        assert worker.run(gx=str(gx), source=source) == 0, (seed, outcomes)  # a rerun without --force
        assert_complete(gx)
    print(f"init takes {duration:.2f} s; seed {seed}; (delay, exit, state after the kill): {outcomes}")
    report = check_suites(DATASET, project=load_project(gx, gx / "datasets.yml"))
    assert report.errors == [], report.errors  # what is left is a project GX itself loads
    # A rerun on the same source changes nothing: same bytes, no writes.
    before = project_json(gx)
    assert worker.run(gx=str(gx), source=source) == 0
    assert project_json(gx) == before


@pytest.mark.parametrize("kill_at_rename", [1, 2, 3, 5])
@pytest.mark.subprocess
@pytest.mark.crash
def test_killed_during_the_commit_the_next_init_completes_it(kill_setup, tmp_path: Path, kill_at_rename: int):
    worker, sources, _ = kill_setup
    gx = fresh_gx(tmp_path / "gx")
    assert worker.run(gx=str(gx), source=str(sources["first"]), kill_at_rename=kill_at_rename) == -signal.SIGKILL
    state = install_state(gx)
    # Rename 1 commits the journal: killed there, nothing is visible; from then on the init has committed.
    # A fresh init renames: the journal, great_expectations.yml, suite, definition, checkpoint, datasets.yml.
    assert state == ("none" if kill_at_rename == 1 else "pending"), state
    if kill_at_rename == 1:
        assert list(gx.rglob("*.wap-init-*.tmp"))  # staged files the next init must not trip over
    assert worker.run(gx=str(gx), source=str(sources["first"])) == 0  # no --force needed
    assert_complete(gx)


@pytest.mark.parametrize("kill_at_rename", [1, 2])
@pytest.mark.subprocess
@pytest.mark.crash
def test_killed_force_init_keeps_the_old_suite_or_installs_the_new_one(kill_setup, tmp_path: Path, kill_at_rename):
    worker, sources, _ = kill_setup
    gx = fresh_gx(tmp_path / "gx")
    assert worker.run(gx=str(gx), source=str(sources["first"])) == 0
    old = project_json(gx)
    # Only the suite changes (same asset, definition and checkpoint ids): renames are the journal, then the suite.
    status = worker.run(gx=str(gx), source=str(sources["second"]), force=True, kill_at_rename=kill_at_rename)
    assert status == -signal.SIGKILL
    if kill_at_rename == 1:
        assert project_json(gx) == old  # the old suite, untouched
        assert worker.run(gx=str(gx), source=str(sources["second"])) == 1  # still refused without --force
        assert worker.run(gx=str(gx), source=str(sources["second"]), force=True) == 0
    else:
        assert install_state(gx) == "pending"
        assert worker.run(gx=str(gx), source=str(sources["second"])) == 0  # completes the committed one
    assert_complete(gx)
    suite = json.loads((gx / "expectations" / f"{DATASET}.json").read_text())
    rows = next(e for e in suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    assert rows["kwargs"] == {"min_value": 6, "max_value": 1000}  # profiled from the 60 rows of the second
