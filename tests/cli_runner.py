"""`wap ARGS` in this test process: the same Typer app as the console script, minus a Python start-up.

A `wap` subprocess spends 5-10 s importing GX and Prefect before it does anything; most CLI tests check
what a command prints and its exit code, which the in-process call shows just as well. Tests of what only a
real process shows (signals, crashes, concurrency, a Prefect server that dies, the process's own
environment at start-up) use `run_cli_process`.

What the call isolates, so that one command cannot leak into the next test:
- stdout and stderr, including Prefect's console log handlers (re-pointed for the call);
- the environment (`env` is applied for the call and removed after), Prefect settings given in `env`
  (PREFECT_*), the working directory;
- logging switched off by the CLI's error path (`logging.disable`), and `sys.stderr` wrapped by it.
A command that would end the process with `os._exit` fails the test: it needs `run_cli_process`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_ONE_AT_A_TIME = threading.Lock()  # sys.stdout, os.environ and the cwd are the process's


class ProcessExitCalled(AssertionError):
    """The command called os._exit: in-process, that would end the test worker."""


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _prefect_settings(env: dict[str, str]) -> Iterator[None]:
    """PREFECT_* values of `env` as Prefect settings: Prefect read the environment when it was imported."""
    names = [name for name in env if name.startswith("PREFECT_")]
    if not names:
        yield
        return
    import prefect.settings
    from prefect.settings import temporary_settings

    updates = {getattr(prefect.settings, name): env[name] for name in names if hasattr(prefect.settings, name)}
    with temporary_settings(updates=updates):
        yield


@contextlib.contextmanager
def _captured(stdout: io.StringIO, stderr: io.StringIO) -> Iterator[None]:
    """sys.stdout/sys.stderr and every console log handler write into the buffers for the call."""

    def stream_handlers() -> list[logging.StreamHandler]:
        found = []
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    found.append(handler)
        return found

    def point(handler: logging.StreamHandler, stream) -> None:
        handler.setStream(stream)
        console = getattr(handler, "console", None)  # Prefect's handler prints through a Rich console
        if console is not None and hasattr(console, "file"):
            console.file = stream

    saved_streams = sys.stdout, sys.stderr
    before = {handler: handler.stream for handler in stream_handlers()}
    for handler, stream in before.items():
        point(handler, stdout if stream in (saved_streams[0], sys.__stdout__) else stderr)
    sys.stdout, sys.stderr = stdout, stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved_streams
        for handler in stream_handlers():
            if handler in before:
                point(handler, before[handler])
            elif handler.stream in (stdout, stderr):  # created during the call (Prefect's logging set up)
                point(handler, saved_streams[0] if handler.stream is stdout else saved_streams[1])


def _refuse_process_exit(code: int) -> None:
    raise ProcessExitCalled(f"the command called os._exit({code}): test it with run_cli_process")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`wap ARGS` in this process; returns what a subprocess run would (exit code, stdout, stderr)."""
    from flows.cli import app

    del timeout  # a subprocess's limit; an in-process call that hangs is caught by pytest-timeout
    stdout, stderr = io.StringIO(), io.StringIO()
    env = {"COLUMNS": "250", **(env or {})}
    with _ONE_AT_A_TIME:
        cwd = os.getcwd()
        raise_exceptions, disabled = logging.raiseExceptions, logging.root.manager.disable
        real_exit = os._exit
        os._exit = _refuse_process_exit  # type: ignore[assignment]
        try:
            os.chdir(REPO)
            with _environment(env), _prefect_settings(env), _captured(stdout, stderr):
                try:
                    app(args=list(args), prog_name="wap", standalone_mode=True)
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except ProcessExitCalled:
                    raise
                except BaseException:  # what Python does with an uncaught exception: traceback, exit 1
                    traceback.print_exc()
                    code = 1
        finally:
            os._exit = real_exit
            os.chdir(cwd)
            logging.raiseExceptions = raise_exceptions
            logging.disable(disabled)
    return subprocess.CompletedProcess(["wap", *args], code, stdout.getvalue(), stderr.getvalue())


def run_cli_process(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`wap ARGS` as a real subprocess (the installed console script's module)."""
    # Wide enough that Rich does not wrap table cells mid-sentence.
    full_env = {**os.environ, "COLUMNS": "250", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )
