"""The one truncation helper: every message, table cell and report cell is cut the same way."""

from __future__ import annotations

import pytest

from flows.shorten import shorten


@pytest.mark.parametrize(
    ("text", "limit", "marker", "expected"),
    [
        ("abc", 3, "...", "abc"),  # fits exactly: not cut
        ("abcd", 3, "...", "..."),
        ("abcdefghij", 8, "...", "abcde..."),
        ("abcdefghij", 8, "…", "abcdefg…"),
        ("", 5, "...", ""),
    ],
)
def test_shorten_keeps_the_head_and_the_limit(text, limit, marker, expected):
    result = shorten(text, limit, marker=marker)
    assert result == expected
    assert len(result) <= limit


def test_every_layer_cuts_with_the_same_helper():
    from flows.cli.suite import _cell
    from flows.lakehouse.errors import InvalidNameError
    from flows.lakehouse.names import validate_identifier
    from flows.reports.markdown import _cell as markdown_cell
    from flows.suite.check import short

    assert str(_cell("x" * 400)) == "x" * 297 + "..."
    assert markdown_cell("y" * 200) == "y" * 119 + "…"
    assert short("z" * 100) == '"' + "z" * 56 + "..."
    with pytest.raises(InvalidNameError) as info:
        validate_identifier("-" * 200, "table")
    assert "'" + "-" * 76 + "..." in str(info.value)
