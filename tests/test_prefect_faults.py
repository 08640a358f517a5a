"""The gate when Prefect is not there: exit 3 in seconds, one line naming the Prefect API, main untouched.

Regression tests for issue 10 item 7 (Prefect part). Before the fix, a `PREFECT_API_URL` pointing at a
closed port gave exit 4 "internal error: Failed to reach API"; a Prefect server killed while the gate ran
gave exit 4 after 214-223 s, with the message glued to Prefect's own "All connection attempts failed".
Everything is real: `wap` subprocesses, a `prefect server start` subprocess killed with SIGKILL, files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gate_fixtures import REPO
from ui_helpers import clean_env, free_port, start_prefect_server

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

pytestmark = [pytest.mark.subprocess, pytest.mark.crash]

BRANCH = "alice.wap_titanic_5e1ec7ed"


def _env(tmp_path: Path, api_url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(tmp_path / "client-home"),
        WAP_GX_DIR=os.environ["WAP_GX_DIR"],
        COLUMNS="250",
        **extra,
    )


def _wap(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-u", "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    return result, time.monotonic() - started


def _last_stderr_line(result: subprocess.CompletedProcess) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines, f"nothing on stderr:\n{text[-3000:]}"
    return lines[-1]


@pytest.fixture(scope="module")
def clean_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_csv(generate_titanic(891, seed=7), tmp_path_factory.mktemp("src") / "clean.csv"))


@pytest.mark.usefixtures("isolated_gx")
@pytest.mark.parametrize("command", ["run", "demo"])
def test_unreachable_prefect_api_is_exit_3_in_seconds_and_writes_nothing(command, clean_csv, tmp_path):
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    lake = tmp_path / "lake"
    args = ["run", "titanic", "--source", clean_csv] if command == "run" else ["demo"]
    result, elapsed = _wap(*args, "--lakehouse", str(lake), env=_env(tmp_path, api))
    message = _last_stderr_line(result)
    assert result.returncode == 3, f"exit {result.returncode}: {message}"
    assert message.startswith(f"not published: Prefect API at {api} is unreachable: "), message
    assert "Connection refused" in message, message
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert not lake.exists(), "the lakehouse was written although the gate could not run"


@pytest.mark.usefixtures("isolated_gx")
def test_prefect_server_killed_mid_run_is_exit_3_one_line_main_untouched(clean_csv, tmp_path):
    server = start_prefect_server(tmp_path / "server")
    lake = tmp_path / "lake"
    # PREFECT_CLIENT_MAX_RETRIES=2, as a user who wants a quick answer when the server dies sets it
    # (Prefect's default of 5 retries spends ~62 s per request before the same exit 3 and message).
    env = _env(tmp_path, server.api_url, WAP_PAUSE_AT="audit", WAP_LEASE_TTL="2", PREFECT_CLIENT_MAX_RETRIES="2")
    stderr_lines: list[str] = []
    paused = threading.Event()
    gate = subprocess.Popen(
        [sys.executable, "-u", "-m", "flows.cli", "run", "titanic", "--source", clean_csv, "--branch", BRANCH]
        + ["--lakehouse", str(lake)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )

    def pump() -> None:  # Prefect logs the gate's prints (log_prints) to stderr
        for line in gate.stderr:
            stderr_lines.append(line)
            if "paused before audit" in line:
                paused.set()

    stdout: list[str] = []
    readers = [
        threading.Thread(target=pump, daemon=True),
        threading.Thread(target=lambda: stdout.extend(gate.stdout), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        assert paused.wait(120), "the gate did not pause:\n" + "".join(stderr_lines)[-3000:]
        _wait_stopped(gate.pid)
        head_before = connect("local", lake).get_branch(MAIN).hash
        assert connect("local", lake).has_branch(BRANCH)  # written, not yet audited

        os.killpg(server.proc.pid, signal.SIGKILL)  # the server dies with no chance to clean up
        server.proc.wait(timeout=30)
        resumed = time.monotonic()
        os.kill(gate.pid, signal.SIGCONT)
        try:
            gate.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the gate did not end within 90 s of losing its server:\n{''.join(stderr_lines)[-3000:]}")
        elapsed = time.monotonic() - resumed
        for reader in readers:
            reader.join(timeout=10)
    finally:
        if gate.poll() is None:
            gate.kill()
            gate.wait()
        server.stop()

    result = subprocess.CompletedProcess(gate.args, gate.returncode, "".join(stdout), "".join(stderr_lines))
    message = _last_stderr_line(result)
    assert result.returncode == 3, f"exit {result.returncode}: {message}"
    assert message.startswith(f"not published: Prefect API at {server.api_url} became unreachable"), message
    assert "main is unchanged" in message and "prefect flow-run delete" in message, message
    assert "All connection attempts failed" not in message and "internal error" not in message, message
    assert elapsed < 60, f"took {elapsed:.1f}s after the server died"
    print(f"gate ended {elapsed:.1f} s after its Prefect server was killed")  # the figure for the README

    client = connect("local", lake)
    assert client.get_branch(MAIN).hash == head_before and not client.has_table("titanic", MAIN)
    assert not client.has_branch(BRANCH), "the rollback did not delete the gate's branch"
    assert not list((lake / "leases").glob("*.json")), "the lease outlived the run"


def _wait_stopped(pid: int) -> None:
    for _ in range(200):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    raise AssertionError("the gate did not stop itself")
