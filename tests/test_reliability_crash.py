"""Crash safety of the whole gate: `wap run` subprocesses SIGKILLed (process group) at every phase.

Kill points are chosen by watching the run's own output (Prefect's log lines) plus a random delay:
during interpreter/library import, during the write task, during the audit, and in the window around
the merge. After every kill:

- the catalog opens (SQLite integrity check, main resolves, the table scans);
- main is a state that was published before: the same commit as an earlier published head with the
  same rows, or, when the kill landed just after the merge committed, exactly the new audited commit
  of the killed run (its branch, gx.success=true, parent = the previous head, rows = its source);
- a leftover branch is listed by `wap branches`, and `wap gc --older-than 0s --force` removes it and keeps main.

CI runs 12 kills on 25k-row sources; a soak run raises them: `WAP_SOAK_KILLS=200 uv run pytest
tests/test_reliability_crash.py` (`WAP_KILL_ROWS`, `WAP_KILL_SEED` to vary size and replay a sequence).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_helpers import (
    WatchedRun,
    fingerprint,
    gate_branches,
    gate_env,
    main_state,
    run_wap,
)

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect
from flows.lakehouse.sources import read_source

pytestmark = [pytest.mark.subprocess, pytest.mark.crash]

KILLS = int(os.environ.get("WAP_SOAK_KILLS", "12"))
ROWS = int(os.environ.get("WAP_KILL_ROWS", "25000"))
SEED = int(os.environ.get("WAP_KILL_SEED", str(int(time.time()))))
CHAINS = 2  # independent lakehouses killed side by side (one per core)
SOURCES_PER_CHAIN = 3
PHASES = ("import", "write", "audit", "merge")

# Output markers, in the order a run prints them; the last one seen tells where a kill landed.
MARKERS = (
    ("Beginning flow run", "write"),
    ("wrote ", "audit"),
    ("audit passed", "merge"),
    ("published bauplan.titanic to main", "after-merge"),
)


@dataclass
class Chain:
    """One lakehouse and its history of published heads (commit -> fingerprint of main's table)."""

    lake: Path
    sources: list[tuple[str, tuple]]
    env: dict[str, str]
    rng: random.Random
    published: dict[str, tuple | None] = field(default_factory=dict)
    landed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _landed_in(run: WatchedRun) -> str:
    phase = "import"
    for marker, after in MARKERS:
        if run.time_of(marker) is not None:
            phase = after
    return phase


def _integrity_ok(lake: Path) -> None:
    con = sqlite3.connect(lake / "catalog.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def _baseline(chain: Chain) -> None:
    """One unkilled run: the first published state, and how long each phase takes on this machine."""
    source, expected = chain.sources[0]
    run = WatchedRun.start(["run", "titanic", "--source", source, "--lakehouse", str(chain.lake)], chain.env)
    assert run.proc.wait(timeout=300) == 0, run.output()
    time.sleep(0.1)  # let the pump thread read the last lines
    begin, wrote, audited = (run.time_of(m) for m in ("Beginning flow run", "wrote ", "audit passed"))
    assert None not in (begin, wrote, audited), run.output()
    chain.timings = {"import": begin, "write": wrote - begin, "audit": audited - wrote}
    head, print_ = main_state(chain.lake)
    assert print_ == expected
    chain.published[head] = print_


_CLI_LOCK = threading.Lock()  # CliRunner swaps sys.stdout: one in-process command at a time


def _wap(chain: Chain, subprocess_: bool, *args: str):
    """`wap ARGS`: a real subprocess, or (cheaper, most kills) the same Typer app in-process."""
    if subprocess_:
        return run_wap(*args, env=chain.env)
    from typer.testing import CliRunner

    from flows.cli import app

    with _CLI_LOCK:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, "")


def _kill_once(chain: Chain, attempt: int, phase: str, final: bool) -> str:
    rng = chain.rng
    previous_head, _ = main_state(chain.lake)
    source, expected = chain.sources[1 + attempt % (len(chain.sources) - 1)] if attempt % 2 else chain.sources[0]
    branch = f"crash.wap_titanic_{rng.getrandbits(32):08x}"
    args = ["run", "titanic", "--source", source, "--branch", branch, "--lakehouse", str(chain.lake)]
    run = WatchedRun.start(args, chain.env)
    t = chain.timings
    if phase == "import":
        time.sleep(rng.uniform(0.1, t["import"]))
    elif phase == "write":
        run.wait_for("Beginning flow run", 120)
        time.sleep(rng.uniform(0, t["write"]))
    elif phase == "audit":
        run.wait_for("wrote ", 120)
        time.sleep(rng.uniform(0, t["audit"]))
    else:  # the merge: publishing takes tens of milliseconds after the audit's last line
        run.wait_for("audit passed", 120)
        time.sleep(rng.uniform(0, 0.15))
    killed = run.kill()
    landed = _landed_in(run) if killed else "completed"
    if not killed:
        assert run.proc.returncode == 0, run.output()

    # The catalog opens, and main is a published state.
    _integrity_ok(chain.lake)
    head, print_ = main_state(chain.lake)
    if head in chain.published:
        assert print_ == chain.published[head], f"main's rows changed under commit {head}"
    else:
        commit = connect("local", chain.lake).get_commits(MAIN, limit=1)[0]
        assert commit.hash == head
        assert previous_head in commit.parent_hashes, f"main moved to {head}, not a merge onto {previous_head}"
        assert commit.properties.get("wap.branch") == branch, commit.properties
        assert commit.properties.get("gx.success") == "true", commit.properties
        assert print_ == expected, "main holds rows that are not the audited source's"
        chain.published[head] = print_
        landed = landed if landed == "completed" else "after-merge"

    # A leftover branch is visible, and gc removes it without touching main.
    left = gate_branches(chain.lake)
    assert set(left) <= {branch}, left
    listing = _wap(chain, final, "branches", "--lakehouse", str(chain.lake))
    assert listing.returncode == 0, listing.stderr
    for name in left:
        assert name in listing.stdout
    gc = _wap(chain, final, "gc", "--older-than", "0s", "--force", "--lakehouse", str(chain.lake))
    assert gc.returncode == 0, gc.stdout + gc.stderr
    for name in left:
        assert name in gc.stdout
    assert gate_branches(chain.lake) == []
    assert [b.name for b in connect("local", chain.lake).get_branches()] == [MAIN]
    assert main_state(chain.lake) == (head, print_)
    return landed


@pytest.mark.timeout(600 + 60 * KILLS)
def test_gate_survives_sigkill_at_every_phase(prefect_api, tmp_path):
    rng = random.Random(SEED)
    chains = []
    for index in range(CHAINS):
        folder = tmp_path / f"chain{index}"
        folder.mkdir()
        sources = []
        for n in range(SOURCES_PER_CHAIN):
            path = write_csv(generate_titanic(ROWS + 17 * n, seed=SEED + 100 * index + n), folder / f"s{n}.csv")
            sources.append((str(path), fingerprint(read_source(str(path)))))
        env = gate_env(prefect_api, WAP_USER="crash")
        chains.append(Chain(folder / "lake", sources, env, random.Random(rng.getrandbits(64))))

    with ThreadPoolExecutor(CHAINS) as pool:
        list(pool.map(_baseline, chains))

    def kill_loop(chain: Chain, count: int) -> None:
        for attempt in range(count):
            last = attempt == count - 1  # the last kill of each chain also inspects through subprocesses
            chain.landed.append(_kill_once(chain, attempt, PHASES[attempt % len(PHASES)], last))

    per_chain = [KILLS // CHAINS + (1 if i < KILLS % CHAINS else 0) for i in range(CHAINS)]
    with ThreadPoolExecutor(CHAINS) as pool:
        for future in [pool.submit(kill_loop, chain, n) for chain, n in zip(chains, per_chain, strict=True)]:
            future.result()

    landed = [phase for chain in chains for phase in chain.landed]
    summary = {phase: landed.count(phase) for phase in sorted(set(landed))}
    print(
        f"seed {SEED}: {len(landed)} attempts, landed {summary}; published heads {[len(c.published) for c in chains]}"
    )
    kills = [p for p in landed if p != "completed"]
    assert len(kills) >= len(landed) * 3 // 4, summary  # the harness does kill (not just watch runs finish)
    assert len(set(kills)) >= min(3, len(kills)), summary  # spread over the phases, not all in one

    # After all that, each lakehouse still takes a normal run.
    chain = chains[0]
    final = run_wap("run", "titanic", "--source", chain.sources[1][0], "--lakehouse", str(chain.lake), env=chain.env)
    assert final.returncode == 0, final.stdout + final.stderr
    assert main_state(chain.lake)[1] == chain.sources[1][1]
