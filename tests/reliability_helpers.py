"""Shared helpers of the reliability tests (crash, concurrency, bad input, hostile names).

Everything here drives the gate the way users do: `wap ...` as real subprocesses against the session's
Prefect test server, and the embedded lakehouse read back through its public client.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from gate_fixtures import REPO

from flows.lakehouse import MAIN, connect

GATE_MARK = ".wap_"


def gate_env(prefect_api: str, **extra: str) -> dict[str, str]:
    """Environment of a `wap` subprocess: the session's Prefect server and GX copy, wide output."""
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "WAP_GX_DIR": os.environ["WAP_GX_DIR"],
        "COLUMNS": "250",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def wap_cmd(*args: str) -> list[str]:
    return [sys.executable, "-u", "-m", "flows.cli", *args]


def run_wap(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(wap_cmd(*args), capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def assert_one_line_error(result: subprocess.CompletedProcess, codes: tuple[int, ...], *needles: str) -> str:
    """Exit code in `codes`, no traceback anywhere, the last stderr line is the message; return it."""
    text = result.stdout + result.stderr
    assert result.returncode in codes, f"exit {result.returncode}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines, f"no error message on stderr:\n{text[-2000:]}"
    message = lines[-1]
    for needle in needles:
        assert needle in message, message
    return message


def gate_branches(lake: Path | str) -> list[str]:
    return [b.name for b in connect("local", lake).get_branches() if GATE_MARK in b.name]


def fingerprint(table: pa.Table) -> tuple:
    """A content fingerprint independent of row order and file layout: equal rows give equal prints."""
    if table.num_rows == 0:
        return (0,)
    ordered = table.sort_by([(name, "ascending") for name in ("PassengerId", "Name") if name in table.column_names])
    digest = hashlib.sha256()
    for name in sorted(ordered.column_names):
        # Every value as text, nulls as NUL, joined in Arrow (C++): fast enough for a million rows.
        text = pc.fill_null(pc.cast(ordered.column(name), pa.string()), "\x00").combine_chunks()
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()), text), "\x1f")
        digest.update(name.encode() + b"\x1e" + joined[0].as_py().encode())
    return (table.num_rows, digest.hexdigest())


def main_state(lake: Path | str, table: str = "titanic") -> tuple[str, tuple | None]:
    """(head of main, fingerprint of the table on main or None); reading it proves the catalog opens."""
    client = connect("local", lake)
    head = client.get_branch(MAIN).hash
    pinned = f"{MAIN}@{head}"
    if not client.has_table(table, pinned):
        return head, None
    return head, fingerprint(client.scan(table, ref=pinned))


def dir_snapshot(path: Path) -> dict[str, object]:
    """Every data file under `path` (size, content hash) and the catalog's rows; empty if it does not exist.

    The catalog is compared by content, not bytes: SQLite's WAL and shared-memory files change on mere reads.
    """
    if not path.exists():
        return {}
    snap: dict[str, object] = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.startswith("catalog.db"):
            snap[str(p.relative_to(path))] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    catalog = path / "catalog.db"
    if catalog.exists():
        con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
        try:
            snap["catalog.db"] = [
                sorted(con.execute(f"SELECT * FROM {table}").fetchall()) for table in ("refs", "commits")
            ]
        finally:
            con.close()
    return snap


def declare(path: Path, entries: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"datasets": entries}, sort_keys=False))
    return path


def flow_runs_named(prefect_api: str, names: list[str]) -> list[dict]:
    """The flow runs started under these names (`wap-<dataset>`), finished ones renamed `<name>-<branch time and
    id>: <verdict>` by the gate; each run's "name" is given back as it started."""
    response = httpx.post(
        f"{prefect_api}/flow_runs/filter",
        json={"flow_runs": {"name": {"like_": "wap-"}}, "limit": 200, "offset": 0},
        timeout=30,
    )
    response.raise_for_status()
    runs = []
    for run in response.json():
        started = re.sub(r"-\d{8}t\d{6}z_[0-9a-f]{8}: .+$", "", run["name"])
        if started in names:
            runs.append({**run, "name": started, "final_name": run["name"]})
    return runs


def flow_run_count(prefect_api: str) -> int:
    response = httpx.post(f"{prefect_api}/flow_runs/count", json={}, timeout=30)
    response.raise_for_status()
    return int(response.json())


@dataclass
class WatchedRun:
    """A `wap run` subprocess in its own process group, its output lines timestamped as they arrive."""

    proc: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    lines: list[tuple[float, str]] = field(default_factory=list)
    _new_line: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, args: list[str], env: dict[str, str]) -> WatchedRun:
        proc = subprocess.Popen(
            wap_cmd(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=REPO,
            start_new_session=True,  # its own process group: the kill takes every child with it
        )
        run = cls(proc)
        threading.Thread(target=run._pump, daemon=True).start()
        return run

    def _pump(self) -> None:
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def wait_for(self, needle: str, timeout: float) -> bool:
        """Block until a line containing `needle` arrived (True) or the process ended / timed out (False)."""
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                if any(needle in text for _, text in self.lines):
                    return True
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    return any(needle in text for _, text in self.lines)
                self._new_line.wait(0.05)

    def time_of(self, needle: str) -> float | None:
        return next((at for at, text in self.lines if needle in text), None)

    def kill(self) -> bool:
        """SIGKILL the whole process group; False if the process had already exited."""
        if self.proc.poll() is not None:
            return False
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            return False
        self.proc.wait(timeout=30)
        return True

    def output(self) -> str:
        return "\n".join(text for _, text in self.lines)


class PausedRun:
    """`wap run` started with WAP_PAUSE_AT: waits until the gate has stopped itself at that step."""

    def __init__(self, step: str, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            wap_cmd(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "WAP_PAUSE_AT": step},
            cwd=REPO,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if f"paused before {step}" in line:
                break
        assert self._stopped(), "the gate did not pause:\n" + "".join(self.lines)[-3000:]

    def _stopped(self) -> bool:
        for _ in range(200):
            try:
                state = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return False
            if state == "T":
                return True
            time.sleep(0.05)
        return False

    def resume(self, timeout: float = 240) -> subprocess.CompletedProcess:
        os.kill(self.proc.pid, signal.SIGCONT)
        rest, _ = self.proc.communicate(timeout=timeout)
        output = "".join(self.lines) + rest
        # stderr is merged into stdout here: give assert_one_line_error the same text on both.
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, output, output)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
