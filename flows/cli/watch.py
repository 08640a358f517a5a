"""`wap validate --watch`: say the verdict of each save, in one process that keeps GX loaded.

What is watched, when a save is over and whether the saved suites can run at all is `flows/suite/watch.py`;
this module only runs the loop and prints. Every line goes to stdout, numbered ``[n]`` by validation, so a
verdict can be matched to the save that caused it; nothing in the loop ends it but Ctrl-C (exit 0).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from rich.text import Text

from flows.cli.common import EXIT_BLOCKED, EXIT_INTERNAL, err, exit_code_for, one_line, out

if TYPE_CHECKING:
    from flows.audit import AuditResult


def watch_validate(dataset: str, source: str, validate: Callable[[], AuditResult]) -> None:
    """Validate now, then again after each save of a watched file, until Ctrl-C. An unknown dataset or a
    missing GX project raises before watching (exit 2); anything wrong later is one line and the loop goes on."""
    from flows.datasets import get_dataset
    from flows.suite.project import load_project
    from flows.suite.watch import SaveWatcher, describe_paths, watched_files

    get_dataset(dataset)
    files = watched_files(dataset, source, load_project())
    _say(f"watching {dataset}: {describe_paths(files)} (Ctrl-C stops)")
    watcher = SaveWatcher(files)
    count = 0
    try:
        while True:
            count += 1
            _answer(count, dataset, validate)
            saved = watcher.wait()
            # A checkpoint edit can name other suites: watch what it names now. A broken project keeps the files
            # watched so far; the next answer says what is wrong.
            with suppress(Exception):
                watcher.watch(watched_files(dataset, source, load_project()))
            _say(f"[{count + 1}] saved {describe_paths(saved)}")
    except KeyboardInterrupt:
        err.print(f"stopped watching {dataset}")


def _answer(count: int, dataset: str, validate: Callable[[], AuditResult]) -> None:
    """One validation's verdict as `wap validate` says it, on one line, then its data docs page."""
    from flows.suite.watch import deferred_data_docs, suite_problem

    started = time.perf_counter()
    try:
        problem = suite_problem(dataset)
        if problem is not None:  # GX would drop an unknown expectation silently, or fail on the JSON
            _say(f"[{count}] not validated: {problem}")
            return
        with deferred_data_docs() as docs:
            result = validate()
        _say(f"[{count}] {verdict_line(dataset, result)} ({time.perf_counter() - started:.2f} s)")
    except Exception as exc:
        code = exit_code_for(exc)
        prefix = {EXIT_BLOCKED: "blocked", EXIT_INTERNAL: "internal error"}.get(code, "error")
        _say(f"[{count}] {prefix}: {one_line(exc)}")
        return
    try:
        url = docs.finish()
    except Exception as exc:  # the page is a courtesy; the verdict is said
        _say(f"[{count}] data docs not built: {one_line(exc)}")
        return
    if url:
        from flows.reports.docs_site import docs_text

        _say(f"[{count}] data docs: {docs_text(url)}")


def verdict_line(dataset: str, result: AuditResult) -> str:
    """`wap validate`'s verdict: "passed: 37/37 expectations", "passed with warnings: ...: <rules>" or
    "blocked: <dataset>: <rules>"."""
    from flows.reports.text import summarize_failures, summarize_warnings

    if not result.success:
        return f"blocked: {dataset}: {summarize_failures(result)}"
    stats = result.statistics
    counted = f"{stats['successful']}/{stats['evaluated']} expectations"
    if result.warnings:
        return f"passed with warnings: {counted}: {summarize_warnings(result)}"
    return f"passed: {counted}"


def _say(line: str) -> None:
    out.print(Text(line), soft_wrap=True)
    sys.stdout.flush()  # a pipe (an editor's pane, a test) reads each verdict as it is said


__all__ = ["verdict_line", "watch_validate"]
