"""Profiling a source for `wap suite init`: one streaming pass over the rows, per-column statistics and the
bounds a starter rule can use. Margins are deliberately generous: a starter suite that blocks the next
normal load teaches people to ignore the gate; they tighten it once they know their data."""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

# Profiling (`init`) knobs. Margins are deliberately generous: a starter suite that blocks the next
# normal load teaches people to ignore the gate; they tighten it once they know their data.
MAX_CATEGORIES = 20  # a text column with at most this many distinct values gets a value set
MAX_INT_CATEGORIES = 5  # integer codes (flags, classes) get a value set; wider integer domains get a range
# Numeric bounds are widened by half the observed span on each side: a sample's extremes understate the
# real ones (heavy tails), and the bounds are meant to catch sign, unit and scale errors (x10, x100).
RANGE_MARGIN = 0.5
ROW_COUNT_FACTOR = 10  # the row-count range allows 10x fewer or more rows than profiled
UNIQUE_SAMPLE_ROWS = 2_000_000  # uniqueness of id columns is judged on at most this many rows (memory bound)

# Column names that look like identifiers: `id`, `order_id`, `ORDER_ID`, `PassengerId`, `userUUID`.
_ID_NAME = re.compile(r"(?i:^(?:id|uuid|key)$|_(?:id|uuid|key)$)|[a-z0-9](?:Id|ID|Uuid|UUID|Key)$")

ColumnKind = Literal["integer", "float", "string", "boolean", "date", "timestamp", "timestamptz", "decimal", "other"]


@dataclass
class ColumnProfile:
    name: str
    arrow_type: str
    kind: ColumnKind
    bit_width: int = 64  # numeric columns: int32/int64, float32/float64
    rows: int = 0
    nulls: int = 0
    min: float | int | None = None  # numeric columns only
    max: float | int | None = None
    values: list[Any] | None = None  # the distinct non-null values when there are few (else None)
    unique: bool | None = None  # id-like columns: every value distinct (None: not checked)
    unique_rows_checked: int = 0  # how many rows the uniqueness verdict is based on

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def id_like(self) -> bool:
        return bool(_ID_NAME.search(self.name)) and self.kind in ("integer", "string")


@dataclass
class Profile:
    source: str
    rows: int
    columns: list[ColumnProfile]


def _kind(t: pa.DataType) -> ColumnKind:
    import pyarrow as pa

    checks: list[tuple[Any, ColumnKind]] = [
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "integer"),
        (pa.types.is_floating, "float"),
        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x), "string"),
        (pa.types.is_date, "date"),
        (lambda x: pa.types.is_timestamp(x) and x.tz is None, "timestamp"),
        (pa.types.is_timestamp, "timestamptz"),
        (pa.types.is_decimal, "decimal"),
    ]
    return next((kind for check, kind in checks if check(t)), "other")


def profile_source(uri: str, *, max_categories: int = MAX_CATEGORIES) -> Profile:
    """Stream the source once (bounded memory, whatever its size) and collect what the starter suite needs.

    Types are those the gate will see: the source's normalized schema, which the lakehouse keeps
    through the Iceberg round trip (CSV read with pyarrow, empty strings as nulls).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from flows.lakehouse.sources import open_source

    with open_source(uri) as source:
        columns = []
        for f in source.schema:
            kind = _kind(f.type)
            column = ColumnProfile(f.name, str(f.type), kind, f.type.bit_width if kind in ("integer", "float") else 64)
            column.values = [] if kind in ("integer", "string", "boolean") else None  # [] = still counting
            columns.append(column)
        id_chunks: dict[str, list[pa.Array]] = {c.name: [] for c in columns if c.id_like}
        rows = 0
        for batch in source.batches():
            rows += batch.num_rows
            for i, column in enumerate(columns):
                _accumulate(column, batch.column(i), id_chunks, max_categories)
    for column in columns:
        column.rows = rows
        chunks = id_chunks.get(column.name)
        if chunks is not None and column.unique is None:
            checked = sum(len(c) for c in chunks)
            distinct = pc.count_distinct(pa.chunked_array(chunks, type=chunks[0].type)).as_py() if chunks else 0
            column.unique, column.unique_rows_checked = checked > 0 and distinct == checked, checked
    return Profile(uri, rows, columns)


def _accumulate(
    column: ColumnProfile, array: pa.Array, id_chunks: dict[str, list[pa.Array]], max_categories: int
) -> None:
    import pyarrow.compute as pc

    column.nulls += array.null_count
    if column.kind in ("integer", "float") and array.null_count < len(array):
        bounds = pc.min_max(array)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
            column.min = lo if column.min is None else min(column.min, lo)
            column.max = hi if column.max is None else max(column.max, hi)
    if column.values is not None:
        distinct = pc.unique(array.drop_null())
        merged = set(column.values) | set(distinct.to_pylist()) if len(distinct) <= max_categories else None
        column.values = sorted(merged) if merged is not None and len(merged) <= max_categories else None
    chunks = id_chunks.get(column.name)
    if chunks is not None and column.unique is None:
        if array.null_count:
            column.unique = False  # an id with gaps is not an id
            return
        kept = sum(len(c) for c in chunks)
        if kept < UNIQUE_SAMPLE_ROWS:
            chunks.append(array.slice(0, UNIQUE_SAMPLE_ROWS - kept))


# ============================================================================================ init: suite
def gate_dtypes(column: ColumnProfile) -> list[str] | None:
    """The pandas dtype(s) `audit.table_to_dataframe` gives this column, as GX type names.

    Plain ``to_pandas()``: ints stay intN but become float64 when they hold nulls, floats stay floatN,
    strings are pandas 3's ``str`` dtype, booleans ``bool`` (object of bools with nulls), dates and
    decimals object columns of ``date`` / ``Decimal``, timestamps ``datetime64`` (``Timestamp`` with a
    time zone). GX checks object columns value by value, so ``bool``/``date``/``Decimal`` work for them.
    """
    bits = column.bit_width
    match column.kind:
        case "integer":
            # A later load with nulls in this column arrives as float64; the completeness check
            # decides whether nulls are acceptable, so the type check allows it only if they were seen.
            return [f"int{bits}"] + (["float64"] if column.nulls else [])
        case "float":
            # CSV type inference reads a batch whose values happen to be whole numbers as int64.
            return [f"float{bits}", "int64"]
        case "string":
            return ["str"]
        case "boolean":
            return ["bool"]
        case "date":
            return ["date"]
        case "timestamp":
            return ["datetime64"]
        case "timestamptz":
            return ["Timestamp"]
        case "decimal":
            return ["Decimal"]
    return None


def _nice_step(span: float) -> float:
    """A rounding step one order of magnitude below ``span`` (span 79.6 -> 1, 512 -> 10)."""
    return 10.0 ** (math.floor(math.log10(span)) - 1) if span > 0 else 1.0


def numeric_bounds(column: ColumnProfile) -> tuple[float | int, float | int | None] | None:
    """(min_value, max_value) with a margin; id-like columns get no upper bound (new ids grow).

    None when the column cannot be bounded (no finite values, or infinities).
    """
    bounds, _ = range_bounds(column)
    return bounds


def range_bounds(column: ColumnProfile) -> tuple[tuple[float | int, float | int | None] | None, str | None]:
    if column.min is None or column.max is None:
        only_nan = column.kind == "float" and column.nulls < column.rows
        return None, "it held no number other than NaN" if only_nan else None
    lo, hi = float(column.min), float(column.max)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None, (
            f"it held infinite values ({fmt(column.min)} .. {fmt(column.max)}), which a range rule would reject; "
            "if they are errors, add expect_column_values_to_be_between with the real valid range"
        )
    try:
        low, high = _float_bounds(column, lo, hi)
    except (OverflowError, ValueError, ZeroDivisionError):  # a span that overflows, or a step that underflows to 0
        low, high = _exact_bounds(column, lo, hi)
    else:
        if not (math.isfinite(low) and math.isfinite(high) and low <= lo and high >= hi):
            low, high = _exact_bounds(column, lo, hi)
    return (low, None if column.id_like else high), None


def _float_bounds(column: ColumnProfile, lo: float, hi: float) -> tuple[float | int, float | int]:
    """The bounds in float arithmetic: what init has always written for ordinary data (keep it stable)."""
    span = hi - lo
    margin = span * RANGE_MARGIN if span > 0 else max(abs(hi) * RANGE_MARGIN, 1.0)
    low, high = lo - margin, hi + margin
    if lo >= 0:
        low = max(low, 0.0)  # non-negative data stays non-negative: negative amounts/counts are classic defects
    step = _nice_step(span if span > 0 else max(abs(hi), 1.0))
    digits = max(0, -math.floor(math.log10(step)))
    low = round(math.floor(low / step) * step, digits)
    high = round(math.ceil(high / step) * step, digits)
    if column.kind == "integer":
        return math.floor(low), math.ceil(high)
    if low.is_integer() and high.is_integer():
        return int(low), int(high)  # 0 and 570 read better than 0.0 and 570.0 in the JSON
    return low, high


def _exact_bounds(column: ColumnProfile, lo: float, hi: float) -> tuple[float | int, float | int]:
    """The same rule in exact rational arithmetic, for spans floats cannot widen or round.

    Values near the float limits (a span of 2e308 overflows) and subnormal spans (a step of 1e-325
    underflows to 0) still get bounds: widened and rounded exactly, then rounded to the nearest float,
    which cannot cross the observed extremes. Bounds past the largest float are capped there: they still
    catch infinities.
    """
    from fractions import Fraction

    flo, fhi = Fraction(lo), Fraction(hi)
    span = fhi - flo
    margin = span * Fraction(RANGE_MARGIN) if span > 0 else max(abs(fhi) * Fraction(RANGE_MARGIN), Fraction(1))
    low, high = flo - margin, fhi + margin
    if lo >= 0:
        low = max(low, Fraction(0))
    basis = span if span > 0 else max(abs(fhi), Fraction(1))
    exponent = math.floor(math.log10(basis.numerator) - math.log10(basis.denominator))  # ints: no overflow
    while Fraction(10) ** exponent > basis:  # the float estimate can be off by one at exact powers of ten
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= basis:
        exponent += 1
    step = Fraction(10) ** (exponent - 1)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    if column.kind == "integer":
        return math.floor(low), math.ceil(high)
    biggest = Fraction(sys.float_info.max)
    low_f, high_f = float(max(low, -biggest)), float(min(high, biggest))
    if all(v.is_integer() and abs(v) < 2**53 for v in (low_f, high_f)):
        return int(low_f), int(high_f)
    return low_f, high_f


def mostly_for(column: ColumnProfile) -> float | None:
    """``mostly`` for the completeness check: observed completeness minus a margin, rounded down.

    The margin is half the smaller of the null and non-null rates, at least one point: 19.9% nulls
    gives 0.70 (block above ~30% nulls), 0.2% nulls gives 0.98. None when nothing useful remains.
    """
    complete = 1.0 - column.null_rate
    margin = max(0.01, min(column.null_rate, complete) / 2)
    value = math.floor((complete - margin) * 100 + 1e-9) / 100  # 1e-9: 0.7 * 100 is 69.99999999999999
    return value if value >= 0.01 else None


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def is_categorical(column: ColumnProfile) -> bool:
    if column.values is None or not column.values or column.id_like:
        return False
    distinct, present = len(column.values), column.rows - column.nulls
    limit = MAX_INT_CATEGORIES if column.kind == "integer" else MAX_CATEGORIES
    # Each value must recur (seen at least twice on average): a handful of rows is not a domain.
    return column.kind in ("integer", "string") and distinct <= limit and present >= 2 * distinct
