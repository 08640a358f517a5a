"""The starter suite `wap suite init` writes: each rule derived from the profile, with a note saying from what.

Severities (GX's: critical blocks a publish, warning reports and publishes): every rule of the batch suite is a
data contract (schema, row count, completeness, types, value sets, ranges, unique ids), critical, GX's default;
the table suite's drift rule (no fewer rows than main) is a warning, as a snapshot may shrink on purpose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
from .profile import RANGE_MARGIN, ROW_COUNT_FACTOR, Profile, fmt, gate_dtypes, is_categorical, mostly_for, range_bounds


def build_suite(dataset: str, profile: Profile) -> ExpectationSuite:
    """The starter suite for ``profile``: every expectation carries a note saying what it was derived from."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def notes(text: str) -> dict[str, Any]:
        return {"notes": {"format": "markdown", "content": [text]}}

    n = profile.rows
    low_rows, high_rows = max(1, n // ROW_COUNT_FACTOR), max(n * ROW_COUNT_FACTOR, 1000)
    exps: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[c.name for c in profile.columns],
            exact_match=True,
            meta=notes(
                f"Schema contract: exactly these {len(profile.columns)} columns (order not enforced). A missing, "
                "renamed or extra column fails the audit; edit the list when the schema changes on purpose."
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=low_rows,
            max_value=high_rows,
            meta=notes(
                f"Profiled {n:,} rows; the range allows {ROW_COUNT_FACTOR}x fewer or more. An empty or tiny "
                "load is usually a failed extract; set the bounds to what your loads really look like."
            ),
        ),
    ]
    skipped: list[str] = []
    unbounded: list[str] = []  # numeric columns without a range rule, and why
    for c in profile.columns:
        if c.nulls == c.rows:
            skipped.append(c.name)
            continue
        # --- completeness
        if c.nulls == 0:
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=c.name,
                    meta=notes(f"{c.name} was complete when profiled (0 nulls in {n:,} rows): any null is a defect."),
                )
            )
        elif (mostly := mostly_for(c)) is not None:
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=c.name,
                    mostly=mostly,
                    meta=notes(
                        f"{c.name} had {c.nulls:,} nulls in {n:,} rows ({c.null_rate:.1%}). mostly={mostly} blocks "
                        f"a load where more than {1 - mostly:.0%} of the values are null."
                    ),
                )
            )
        # --- type, as the gate sees it after the lakehouse round trip
        dtypes = gate_dtypes(c)
        if dtypes:
            type_note = notes(
                f"{c.name} is Arrow {c.arrow_type} in the lakehouse, which the audit sees as pandas "
                f"{' or '.join(dtypes)}."
                + (" (float64 when the column holds nulls)." if c.kind == "integer" and c.nulls else "")
            )
            if len(dtypes) == 1:
                exps.append(gxe.ExpectColumnValuesToBeOfType(column=c.name, type_=dtypes[0], meta=type_note))
            else:
                exps.append(gxe.ExpectColumnValuesToBeInTypeList(column=c.name, type_list=dtypes, meta=type_note))
        # --- domain: a value set for a few categories, else a range for numbers
        if is_categorical(c):
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=c.name,
                    value_set=list(c.values or []),
                    meta=notes(
                        f"{c.name} had {len(c.values or [])} distinct values when profiled; a new value fails the "
                        "audit. Add it here when it is legitimate."
                    ),
                )
            )
        elif c.kind in ("integer", "float"):
            bounds, reason = range_bounds(c)
            if bounds is None:
                if reason:
                    unbounded.append(f"{c.name} ({reason})")
            else:
                low, high = bounds
                why = (
                    f"{c.name} ranged {fmt(c.min)} .. {fmt(c.max)} when profiled; the bounds add a margin of "
                    f"{RANGE_MARGIN:.0%} of that span" + (" and stay non-negative" if (c.min or 0) >= 0 else "") + ". "
                    "They catch sign, unit and scale errors; set them to the real valid range."
                )
                if high is None:
                    why += " No upper bound: new ids grow."
                exps.append(
                    gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=low, max_value=high, meta=notes(why))
                )
        # --- identity
        if c.id_like and c.unique:
            sampled = "" if c.unique_rows_checked >= n else f" (checked on the first {c.unique_rows_checked:,} rows)"
            exps.append(
                gxe.ExpectColumnValuesToBeUnique(
                    column=c.name,
                    meta=notes(
                        f"{c.name} looks like an id and was unique when profiled{sampled}: duplicates mean a "
                        "double load or a bad join."
                    ),
                )
            )
    summary = (
        f"Starter suite generated by `wap suite init` from {profile.source} ({n:,} rows). Review it: tighten "
        "ranges and sets to what is valid (not just what was seen), and explain each rule in its notes."
    )
    if skipped:
        summary += f" Entirely null when profiled, so only the schema contract covers: {', '.join(skipped)}."
    if unbounded:
        summary += f" No range rule for: {'; '.join(unbounded)}."
    # Expectations go to the constructor: add_expectation() would write through to a stored suite.
    return gx.ExpectationSuite(name=dataset, expectations=exps, meta=notes(summary))


def build_table_suite(dataset: str, profile: Profile) -> ExpectationSuite:
    """The starter table suite: rules on the table as it would be published (main's rows plus the batch)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    def notes(text: str) -> dict[str, Any]:
        return {"notes": {"format": "markdown", "content": [text]}}

    exps: list[Any] = [
        gxe.ExpectTableRowCountToBeBetween(
            min_value={"$PARAMETER": "main_row_count"},
            severity=FailureSeverity.WARNING,
            meta=notes(
                "Drift against main: the published table has fewer rows than main has now (a truncated snapshot, a"
                " lost batch?). main_row_count is a fact of main the gate passes as a suite parameter. Severity"
                " warning: reported, published anyway, as a snapshot may shrink on purpose; make it critical for a"
                " table that must never shrink."
            ),
        )
    ]
    for c in profile.columns:
        if c.id_like and c.unique and c.nulls < c.rows:
            exps.append(
                gxe.ExpectColumnValuesToBeUnique(
                    column=c.name,
                    meta=notes(
                        f"{c.name} looks like an id: unique across the whole published table, so a batch must not "
                        "reuse an id main already has (the batch suite only sees the batch)."
                    ),
                )
            )
    summary = (
        f"Starter table suite generated by `wap suite init` from {profile.source}: rules on the table as it would "
        f"be published, main's rows plus the batch (the batch suite {dataset!r} sees the batch alone). Rules may "
        "compare with main through suite parameters (main_row_count, main_<column>_max, ...; see the README)."
    )
    return gx.ExpectationSuite(name=f"{dataset}_table", expectations=exps, meta=notes(summary))
