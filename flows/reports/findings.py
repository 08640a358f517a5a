"""What each failed expectation found, computed once from the audit result.

The CLI and the flow's error (`text.py`) and the markdown report (`markdown.py`) render these same
findings in their own words, so they can never disagree about what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from flows.audit import AuditResult, ExpectationOutcome

MAX_EXAMPLES = 5

FindingKind = Literal["error", "nulls", "unexpected", "mismatch", "observed"]


@dataclass(frozen=True)
class Finding:
    """One failed expectation's evidence.

    ``error``: GX could not evaluate it (``message``). ``nulls``: a null check, ``count`` nulls at
    ``rows``. ``unexpected``: ``count`` bad values, distinct ``examples`` of them. ``mismatch``: a schema
    check, ``mismatched`` maps a kind ("missing", "unexpected") to columns. ``observed``: anything else,
    with GX's ``observed`` value. ``percent`` is of all rows for nulls, of non-null rows otherwise.
    """

    outcome: ExpectationOutcome
    kind: FindingKind
    message: str | None = None
    count: int | None = None
    percent: float | None = None
    rows: list[int] = field(default_factory=list)
    examples: list[Any] = field(default_factory=list)
    mismatched: dict[str, Any] = field(default_factory=dict)
    observed: Any = None
    keys: list[dict[str, Any]] = field(default_factory=list)  # failing rows by the dataset's key (first few)

    @property
    def rows_by_key(self) -> str:
        """The failing rows by key: "PassengerId 5, 17" (one key column), "(order_id=1, line=2), ..." (several);
        "" without a key."""
        return row_keys_text(self.keys)


def row_keys_text(keys: list[dict[str, Any]]) -> str:
    """Rows named by their key values (see ``Finding.rows_by_key``)."""
    if not keys:
        return ""
    columns = list(keys[0])
    if len(columns) == 1:
        return f"{columns[0]} " + ", ".join(str(k[columns[0]]) for k in keys)
    return ", ".join("(" + ", ".join(f"{c}={k.get(c)}" for c in columns) + ")" for k in keys)


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # NaN is the only x != x


def finding(e: ExpectationOutcome, max_examples: int = MAX_EXAMPLES) -> Finding:
    if e.exception_message:
        return Finding(e, "error", message=e.exception_message)
    if e.unexpected_count is not None:
        keys = e.failing_row_keys[:max_examples]
        samples = list(e.partial_unexpected_list or [])
        if samples and all(is_null(v) for v in samples):
            # Null checks: the "bad values" are all null, so point at rows instead.
            rows = [] if keys else list((e.partial_unexpected_index_list or [])[:max_examples])
            return Finding(e, "nulls", count=e.unexpected_count, percent=e.unexpected_percent, rows=rows, keys=keys)
        return Finding(
            e,
            "unexpected",
            count=e.unexpected_count,
            percent=e.unexpected_percent,
            examples=_distinct(samples)[:max_examples],
            keys=keys,
        )
    mismatched = e.details.get("mismatched") if isinstance(e.details, dict) else None
    if isinstance(mismatched, dict) and mismatched:
        return Finding(e, "mismatch", mismatched=mismatched)
    return Finding(e, "observed", observed=e.observed_value)


def _distinct(values: list[Any]) -> list[Any]:
    """First occurrences, in order (values may be unhashable: lists, dicts)."""
    seen: set[str] = set()
    kept = []
    for value in values:
        key = repr(value)
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


WHAT_SUITES_VALIDATE = {
    "batch": "the batch",
    "table": "the table as it would be published",
    "group": "the group's tables as they would be published",
}


def scope(e: ExpectationOutcome, result: AuditResult) -> str:
    """Which suite a rule belongs to and what it validated ("titanic_table on the table as it would be
    published"); "" when the checkpoint has a single suite, where that says nothing."""
    if len(result.suites) < 2:
        return ""
    return f"{e.suite} on {WHAT_SUITES_VALIDATE.get(e.validates, e.validates)}"
