"""What every `wap` command shares: the Typer app, exit codes, option types, the error-to-exit-code mapping
(one line on stderr, never a traceback), and table/JSON printing.

Exit codes: 0 ok / published, 1 blocked by the audit, 2 bad usage or input, 3 not published for another
reason (merge conflict, concurrent update, backend unavailable, damaged or unwritable storage), 4 unexpected
internal error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from flows.lakehouse import LakehouseClient

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT, EXIT_NOT_PUBLISHED, EXIT_INTERNAL = 0, 1, 2, 3, 4

app = typer.Typer(
    help="Write-Audit-Publish gate: new data lands on a branch, is audited by Great Expectations, "
    "and is merged into main only if the audit passes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

Backend = Annotated[
    str, typer.Option("--backend", envvar="WAP_BACKEND", help="Lakehouse backend: local (embedded) or bauplan.")
]
LakehousePath = Annotated[
    str, typer.Option("--lakehouse", envvar="WAP_LAKEHOUSE", help="Directory of the embedded lakehouse.")
]
Ref = Annotated[str, typer.Option("--ref", help="Branch, tag, or branch@commit for a past state.")]


def fail(message: str, code: int) -> NoReturn:
    if isinstance(sys.stderr, LineTrackingStream) and not sys.stderr.at_line_start:
        sys.stderr.write("\n")  # e.g. Prefect's "--- Error logging to API ---" ends without one
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class LineTrackingStream:
    """A text stream (sys.stderr) that remembers whether what was last written to it ended a line.

    Prefect's API log worker writes its own failure to ``sys.stderr`` without a newline; our one-line error
    must start a line of its own, not be glued to "All connection attempts failed".
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def track_stderr() -> None:
    if not isinstance(sys.stderr, LineTrackingStream):
        sys.stderr = LineTrackingStream(sys.stderr)


def exit_code_for(exc: BaseException) -> int:
    from flows.audit import AuditConfigError
    from flows.datasets import DatasetError
    from flows.lakehouse import (
        BackendContractError,
        BackendUnavailableError,
        CatalogUnusableError,
        ConcurrentUpdateError,
        LakehouseError,
        MergeConflictError,
        SchemaMismatchError,
        StorageError,
    )

    # Only a gate run raises AuditFailedError, so only look for it once the flow module is loaded:
    # an error exit of a cheap command should not pay for importing Prefect.
    wap_module = sys.modules.get("flows.gate.outcome")
    if wap_module is not None and isinstance(exc, wap_module.AuditFailedError):
        return EXIT_BLOCKED
    if isinstance(exc, BackendContractError):  # the SDK changed under this code: ours to fix, not the input
        return EXIT_INTERNAL
    if isinstance(exc, SchemaMismatchError):  # a batch that does not fit the published table: a verdict
        return EXIT_BLOCKED
    if isinstance(
        exc, MergeConflictError | ConcurrentUpdateError | BackendUnavailableError | CatalogUnusableError | StorageError
    ):
        return EXIT_NOT_PUBLISHED
    if isinstance(exc, LakehouseError | DatasetError | AuditConfigError | ValueError):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def cli_errors(*, gate: bool = False) -> Iterator[None]:
    """Expected failures become one line on stderr and a documented exit code, never a traceback.

    Only the commands that publish (`run`, `demo`: ``gate=True``) say "not published" for exit 3; a command
    that publishes nothing (`query`, `tables`, `gc`, ...) says "error" for the same causes.
    """
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        code = exit_code_for(exc)
        if code == EXIT_INTERNAL and os.environ.get("WAP_DEBUG"):
            raise
        prefix = {EXIT_BLOCKED: "blocked", EXIT_INTERNAL: "internal error"}
        if gate:
            prefix[EXIT_NOT_PUBLISHED] = "not published"
        message = f"{prefix.get(code, 'error')}: {one_line(exc)}"
        if _prefect_is_gone(exc):
            _exit_now(message, code)
        _drain_prefect_services()
        _silence_prefect_after_this()
        fail(message, code)


def _exit_now(message: str, code: int) -> NoReturn:
    """Print the error line and end the process at once, skipping interpreter shutdown.

    Only for a gate whose Prefect server has gone: everything the gate owns is settled by then (the rollback
    ran, the lease file is removed, every SQLite commit is durable), and all that shutdown would still do is
    let Prefect's events worker try to deliver each queued event to the dead server, ~7 s per event.
    """
    _silence_prefect_after_this()
    with suppress(Exception):
        sys.stdout.flush()
    if isinstance(sys.stderr, LineTrackingStream) and not sys.stderr.at_line_start:
        sys.stderr.write("\n")
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    with suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def _prefect_is_gone(exc: BaseException) -> bool:
    wap_module = sys.modules.get("flows.gate.outcome")
    return wap_module is not None and isinstance(exc, wap_module.PrefectUnavailableError)


def _drain_prefect_services() -> None:
    """Let Prefect's background workers (events, logs) finish first, so our message is the last line."""
    if "prefect" not in sys.modules:
        return
    # Public path to QueueService.drain_all: the registry of service instances is one dict shared by every
    # Prefect queue service, so this drains the log worker too, not only the events worker.
    from prefect.events.worker import EventsWorker

    with suppress(Exception):  # best effort: never mask the real error
        EventsWorker.drain_all(timeout=10)


def _silence_prefect_after_this() -> None:
    """Our error line is the last line on stderr: Prefect's services may still complain at exit (about a
    server that has gone, say) once it is printed, so its logging and its API log worker's own messages
    (printed only while ``logging.raiseExceptions``) are switched off first."""
    if "prefect" not in sys.modules:
        return
    import logging

    logging.raiseExceptions = False
    logging.disable(logging.CRITICAL)


def lakehouse_client(backend: str, lakehouse: str) -> LakehouseClient:
    from flows.lakehouse import connect

    return connect(backend, lakehouse)


def quiet_prefect_tracebacks() -> None:
    """Prefect logs failed task runs with their traceback; on the console, the message is enough."""
    import logging

    class DropTraceback(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.exc_info = None
            record.exc_text = None
            return True

    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, DropTraceback) for f in handler.filters
            ):
                handler.addFilter(DropTraceback())


# ----------------------------------------------------------------------------------------- inspection
JsonOutput = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document (an array of objects, keys as the table's columns) on stdout, nothing else.",
    ),
]


def print_table(table: Table) -> None:
    """Print a table whose every value can be copied: never cut with "…".

    At a terminal, long values fold onto the next line of their cell. Anywhere else (a pipe, a file) the
    table is as wide as its longest value: the width of the terminal the user may not even have is no
    reason to cut a metadata location or a flow run id.
    """
    for column in table.columns:
        column.overflow = "fold"
    if out.is_terminal:
        out.print(table)
        return
    wide = Console(file=out.file, width=1_000_000, color_system=None, highlight=False)
    natural = wide.measure(table).maximum  # the widest any row needs, box and padding included
    Console(file=out.file, width=max(natural, 1), color_system=None, highlight=False).print(table)


def print_json(document: object) -> None:
    """One JSON document on stdout (plain `print`: Rich would wrap long lines and highlight)."""
    import json

    print(json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2))
