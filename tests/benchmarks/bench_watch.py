"""Benchmark of the suite-edit loop (issue 16 item 3; a script, not a pytest test).

    uv run python tests/benchmarks/bench_watch.py [--saves 10] [--runs 5] [--before COMMIT]

1. `wap validate titanic --source F --watch` as a real process on a fresh copy of gx/ (F: ../shared/data's
   Titanic CSV if present, else 891 generated titanic-shaped rows): each save of the suite (alternately making
   the row-count rule fail and pass) timed from the write to the verdict line read from the process's stdout;
   median, min and max of ``--saves`` saves.
2. Whole processes, median of ``--runs`` (the two trees taking turns), side by side: `wap validate`,
   `wap suite check`, `wap --help` and `wap suite show` of this tree and of ``--before`` (default: the commit
   before `--watch`, extracted with `git archive` into a temporary directory and run from there), and
   `python -c "import great_expectations"`, the floor of any command that needs GX.
Ends with one line `BENCH_SUMMARY {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
sys.path.insert(0, str(REPO))
SHARED_CSV = REPO.parent / "shared" / "data" / "titanic.csv"
BEFORE = "3862a58"  # the last commit before `wap validate --watch` and the lazy flows.reports


def fresh_gx(target: Path) -> Path:
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def source_csv(workdir: Path) -> Path:
    if SHARED_CSV.is_file():
        return SHARED_CSV
    from flows.demo.data import generate_titanic, write_csv

    return write_csv(generate_titanic(891), workdir / "titanic.csv")


def env_for(gx: Path) -> dict[str, str]:
    return {**os.environ, "WAP_GX_DIR": str(gx), "WAP_DATASETS": str(gx / "datasets.yml"), "COLUMNS": "250"}


def watch_latencies(saves: int, workdir: Path, source: Path) -> list[float]:
    gx = fresh_gx(workdir / "gx-watch")
    suite_path = gx / "expectations" / "titanic.json"
    suite = json.loads(suite_path.read_text())
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "validate", "titanic", "--source", str(source), "--lakehouse",
         str(workdir / "none"), "--watch"],
        cwd=REPO, env=env_for(gx), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None

    def line_of(n: int, said: str) -> str:
        for line in process.stdout:
            if re.match(rf"^\[{n}\] ({said})", line):
                return line
        raise SystemExit(f"the watch ended before validation {n} said {said}")

    def verdict(n: int) -> str:
        return line_of(n, "passed|blocked|not validated|error")

    latencies = []
    try:
        verdict(1)
        line_of(1, "data docs")
        for save in range(saves):
            n = save + 2
            suite["expectations"][1]["kwargs"]["max_value"] = 10 if save % 2 == 0 else 100_000_000
            time.sleep(0.3)  # a person's pause: the save comes to an idle watch (the pages of the last one drawn)
            started = time.perf_counter()
            suite_path.write_text(json.dumps(suite, indent=2))
            line = verdict(n)
            latencies.append(time.perf_counter() - started)
            line_of(n, "data docs")
            expected = "blocked" if save % 2 == 0 else "passed"
            if not line.startswith(f"[{n}] {expected}"):
                raise SystemExit(f"save {save + 1}: expected {expected}, the watch said {line.strip()[:200]}")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return latencies


def run_once(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} in {cwd}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    return elapsed


def side_by_side(args: list[str], trees: list[Path], env: dict[str, str], runs: int) -> list[float]:
    """The median time of ``args`` in each tree, the trees taking turns run by run (a noisy machine's drift
    falls on both)."""
    times: list[list[float]] = [[] for _ in trees]
    for _ in range(runs):
        for i, tree in enumerate(trees):
            times[i].append(run_once(args, tree, env))
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        workdir = Path(tmp)
        source = source_csv(workdir)
        latencies = watch_latencies(args.saves, workdir, source)
        old = workdir / "before"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "flows"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        gx = fresh_gx(workdir / "gx")
        env = env_for(gx)
        lakehouse = str(workdir / "none")
        commands = {
            "wap validate titanic": ["-m", "flows.cli", "validate", "titanic", "--source", str(source), "--lakehouse",
                                     lakehouse],
            "wap suite check titanic --source": ["-m", "flows.cli", "suite", "check", "titanic", "--source",
                                                 str(source)],
            "wap suite check (all)": ["-m", "flows.cli", "suite", "check", "--lakehouse", lakehouse],
            "wap suite show titanic": ["-m", "flows.cli", "suite", "show", "titanic"],
            "wap --help": ["-m", "flows.cli", "--help"],
        }  # fmt: skip
        run_once(["-c", "import great_expectations"], REPO, env)  # warm the OS file cache
        floor = side_by_side(["-c", "import great_expectations"], [REPO], env, args.runs)[0]
        rows = {name: tuple(side_by_side(argv, [old, REPO], env, args.runs)) for name, argv in commands.items()}
    median = statistics.median(latencies)
    print(f"watch: save -> verdict line over {len(latencies)} saves (891 rows, {source.name}):")
    print(f"  median {median:.3f} s, min {min(latencies):.3f} s, max {max(latencies):.3f} s")
    print(f"\nwhole processes, median of {args.runs} (before = {args.before}):")
    print(f"{'command':<36} {'before':>8} {'now':>8} {'now/before':>11} {'now - GX import':>16}")
    for name, (before, now) in rows.items():
        print(f"{name:<36} {before:>7.2f}s {now:>7.2f}s {now / before:>11.2f} {now - floor:>15.2f}s")
    print(f"{'python -c import great_expectations':<36} {'':>8} {floor:>7.2f}s")
    summary = {
        "watch_median_s": round(median, 3),
        "watch_min_s": round(min(latencies), 3),
        "watch_max_s": round(max(latencies), 3),
        "gx_import_s": round(floor, 2),
        **{name: {"before_s": round(b, 2), "now_s": round(n, 2)} for name, (b, n) in rows.items()},
    }
    print("BENCH_SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
