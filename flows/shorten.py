"""One way to cut a long value for a one-line message or a table cell: keep the head, mark the cut.

Used by every layer (lakehouse errors, suite checks, CLI tables, markdown reports), so it depends on nothing.
"""

from __future__ import annotations

__all__ = ["shorten"]


def shorten(text: str, limit: int, *, marker: str = "...") -> str:
    """`text` if it fits in `limit` characters, else its head and `marker`, `limit` characters in all."""
    return text if len(text) <= limit else text[: limit - len(marker)] + marker
