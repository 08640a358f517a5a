"""How far a long lakehouse operation (an import) has got, for whoever listens (the gate: a Prefect progress
artifact and log lines). Not part of the Bauplan-shaped interface: a listener is set around a call, and the
embedded backend reports to it after each chunk it writes. No listener, no cost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ImportListener = Callable[[int, int | None], None]  # (rows written so far, rows in the source if known)

_LISTENER: ContextVar[ImportListener | None] = ContextVar("wap_import_progress", default=None)


@contextmanager
def reporting_import_progress(listener: ImportListener) -> Iterator[None]:
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def import_progress(rows: int, total: int | None) -> None:
    listener = _LISTENER.get()
    if listener is not None:
        listener(rows, total)
