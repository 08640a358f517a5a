"""Synthetic Titanic-shaped data for demos, tests and benchmarks (no real data is shipped).

``generate_titanic`` builds a table with the same columns and Arrow types the lakehouse gives for the
real Kaggle ``train.csv`` (read with ``pyarrow.csv`` and ``strings_can_be_null=True``), with similar
distributions and null patterns, so it passes the ``titanic`` suite at any size. Everything is
vectorised (numpy for numbers, Arrow compute for strings): 10M rows take a few seconds.

``corrupt(table, kind)`` injects one defect per kind from ``CORRUPTIONS``; each must be blocked by the
audit.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

# What pyarrow.csv.read_csv infers for the real file: ints int64, Age/Fare double, text `string`.
TITANIC_SCHEMA = pa.schema(
    [
        ("PassengerId", pa.int64()),
        ("Survived", pa.int64()),
        ("Pclass", pa.int64()),
        ("Name", pa.string()),
        ("Sex", pa.string()),
        ("Age", pa.float64()),
        ("SibSp", pa.int64()),
        ("Parch", pa.int64()),
        ("Ticket", pa.string()),
        ("Fare", pa.float64()),
        ("Cabin", pa.string()),
        ("Embarked", pa.string()),
    ]
)

# Frequencies below are taken from the real 891-row file.
_AGE_NULL_RATE = 177 / 891
_EMBARKED_NULLS_PER_891 = 2
_PCLASS_P = np.array([216, 184, 491]) / 891
_MALE_P = 577 / 891
# P(survived | sex, class): rows female/male, columns class 1..3.
_SURVIVAL_P = np.array([[0.968, 0.921, 0.500], [0.369, 0.157, 0.135]])
_CABIN_P = np.array([176 / 216, 16 / 184, 12 / 491])  # P(cabin known | class)
_SIBSP_VALUES = np.array([0, 1, 2, 3, 4, 5, 8])
_SIBSP_P = np.array([608, 209, 28, 16, 18, 5, 7]) / 891
_PARCH_VALUES = np.array([0, 1, 2, 3, 4, 5, 6])
_PARCH_P = np.array([678, 118, 80, 5, 4, 5, 1]) / 891
_EMBARKED_VALUES = ["S", "C", "Q"]
_EMBARKED_P = np.array([644, 168, 77]) / 889
# Median fare and log-spread by class (lognormal fits of the real fares).
_FARE_MEDIAN = np.array([60.29, 14.25, 8.05])
_FARE_SIGMA = np.array([0.75, 0.45, 0.40])
_FARE_MAX = 512.3292
_ZERO_FARE_P = 15 / 891

_SURNAMES = [
    "Andersson", "Sage", "Skoog", "Carter", "Goodwin", "Johnson", "Panula", "Rice", "Asplund", "Baclini",
    "Brown", "Fortune", "Harper", "Kelly", "Smith", "Williams", "Allison", "Becker", "Collyer", "Davies",
    "Elias", "Ford", "Graham", "Hart", "Jensen", "Laroche", "Moran", "Nasser", "Olsen", "Palsson",
    "Quick", "Richards", "Sandstrom", "Taussig", "Vander Planke", "West", "Yasbeck", "Zabour",
]  # fmt: skip
_MALE_FIRST = [
    "John", "William", "Henry", "James", "Charles", "George", "Thomas", "Edward", "Frederick", "Arthur",
    "Joseph", "Albert", "Robert", "Karl", "Johan", "Patrick", "Samuel", "Alfred", "Ernst", "Walter",
]  # fmt: skip
_FEMALE_FIRST = [
    "Mary", "Anna", "Margaret", "Elizabeth", "Ellen", "Alice", "Helen", "Catherine", "Bridget", "Emily",
    "Maria", "Edith", "Florence", "Annie", "Kate", "Ida", "Agnes", "Julia", "Ruth", "Marion",
]  # fmt: skip
_TICKET_PREFIXES = ["PC ", "C.A. ", "A/5 ", "STON/O 2. ", "W./C. ", "SOTON/O.Q. ", "CA. ", "S.O.C. "]
_DECKS = ["A", "B", "C", "D", "E", "F", "G"]


def _take(values: pa.Array | list[str], indices: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """Strings looked up by index in one vectorised Arrow ``take``; rows in ``null_mask`` become null."""
    dictionary = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return pc.take(dictionary, pa.array(indices.astype(np.int32, copy=False), mask=null_mask))


def _categorical(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """Indices 0..len(p)-1 drawn with probabilities p (several times faster than rng.choice(p=...))."""
    return np.searchsorted(np.cumsum(p[:-1]) / p.sum(), rng.random(n), side="right")


@functools.cache
def _name_pool() -> tuple[pa.Array, int]:
    """Every "Surname, Title. First Middle" combination, grouped by title (Master, Mr, Miss, Mrs).

    Rows pick from this pool with a single take: far cheaper than joining name parts row by row.
    """
    names = []
    for title, firsts in (
        ("Master", _MALE_FIRST),
        ("Mr", _MALE_FIRST),
        ("Miss", _FEMALE_FIRST),
        ("Mrs", _FEMALE_FIRST),
    ):
        names += [f"{s}, {title}. {f} {m}" for s in _SURNAMES for f in firsts for m in firsts if m != f]
    return pa.array(names, pa.string()), len(names) // 4


def generate_titanic(n_rows: int = 891, seed: int = 0, *, first_id: int = 1) -> pa.Table:
    """Deterministic Titanic-like passengers: same schema/null patterns as the real CSV read via Arrow.

    Ids run from `first_id` (a later batch of new passengers starts after the last id published)."""
    if n_rows < 0:
        raise ValueError("n_rows must be >= 0")
    rng = np.random.default_rng(seed)
    n = n_rows

    passenger_id = np.arange(first_id, first_id + n, dtype=np.int64)
    cls = _categorical(rng, _PCLASS_P, n)  # 0..2
    pclass = (cls + 1).astype(np.int64)
    male = rng.random(n) < _MALE_P
    survived = (rng.random(n) < _SURVIVAL_P[male.astype(np.int64), cls]).astype(np.int64)

    # Ages: ~10% children (infants have fractional ages like the real 0.42/0.83), adults ~N(32, 12);
    # whole years, with some "estimated" x.5 ages as in the source.
    child = rng.random(n) < 0.10
    age = np.where(child, rng.uniform(0.42, 14.0, n), np.clip(rng.normal(32.0, 12.0, n), 15.0, 80.0))
    age = np.where(age < 1.0, np.round(age, 2), np.floor(age) + np.where(rng.random(n) < 0.05, 0.5, 0.0))
    age_null = rng.random(n) < _AGE_NULL_RATE

    sibsp = _SIBSP_VALUES[_categorical(rng, _SIBSP_P, n)].astype(np.int64)
    parch = _PARCH_VALUES[_categorical(rng, _PARCH_P, n)].astype(np.int64)

    fare = _FARE_MEDIAN[cls] * np.exp(rng.normal(0.0, 1.0, n) * _FARE_SIGMA[cls])
    fare = np.round(np.clip(fare, 4.0, _FARE_MAX), 4)
    fare[rng.random(n) < _ZERO_FARE_P] = 0.0  # complimentary tickets

    # Names: title from sex and age (Master = boy, Mr, Miss = girl or unmarried, Mrs).
    title = np.where(male, np.where(child, 0, 1), np.where(child | (rng.random(n) < 0.45), 2, 3))
    names, per_title = _name_pool()
    name = _take(names, title * per_title + rng.integers(0, per_title, n))
    sex = _take(["female", "male"], male.astype(np.int64))

    # Tickets: ~25% carry an office prefix ("PC 17599"), the rest are bare numbers; families and
    # groups share tickets (681 distinct in 891): drawing n from a pool of 1.8 n gives ~77% distinct.
    pool_size = max(1, min(round(n * 1.8), 2_000_000))
    prefix_idx = np.where(rng.random(pool_size) < 0.25, rng.integers(1, len(_TICKET_PREFIXES) + 1, pool_size), 0)
    ticket_pool = pc.binary_join_element_wise(
        _take([""] + _TICKET_PREFIXES, prefix_idx),
        pc.cast(pa.array(rng.integers(1_000, 3_999_999, pool_size)), pa.string()),
        "",
    )
    ticket = _take(ticket_pool, rng.integers(0, pool_size, n))

    # Cabins ("C85"): mostly known for 1st class only (overall ~77% null); deck depends on class.
    cabin_pool = [f"{deck}{number}" for deck in _DECKS for number in range(1, 149)]
    deck = np.clip(cls * 2 + rng.integers(0, 3, n), 0, len(_DECKS) - 1)
    has_cabin = rng.random(n) < _CABIN_P[cls]
    cabin = _take(cabin_pool, deck * 148 + rng.integers(0, 148, n), null_mask=~has_cabin)

    # Embarked: exactly 2 nulls per 891 rows, as in the source.
    embarked_null = np.zeros(n, dtype=bool)
    n_embarked_null = round(n * _EMBARKED_NULLS_PER_891 / 891)
    if n_embarked_null:
        embarked_null[rng.choice(n, size=n_embarked_null, replace=False)] = True
    embarked = _take(_EMBARKED_VALUES, _categorical(rng, _EMBARKED_P, n), null_mask=embarked_null)

    return pa.table(
        {
            "PassengerId": pa.array(passenger_id),
            "Survived": pa.array(survived),
            "Pclass": pa.array(pclass),
            "Name": name,
            "Sex": sex,
            "Age": pa.array(age, pa.float64(), mask=age_null),
            "SibSp": pa.array(sibsp),
            "Parch": pa.array(parch),
            "Ticket": ticket,
            "Fare": pa.array(fare, pa.float64()),
            "Cabin": cabin,
            "Embarked": embarked,
        },
        schema=TITANIC_SCHEMA,
    )


CORRUPTIONS: dict[str, str] = {
    "null_passenger_id": "PassengerId is null in a few rows (the primary key must be complete)",
    "null_survived": "Survived is null in a few rows (a required column)",
    "null_name": "Name is null in a few rows (a required text column)",
    "age_null_rate": "Age is null in ~60% of rows (normal is ~20%)",
    "age_out_of_range": "a few ages are negative or above 100",
    "fare_out_of_range": "a few fares are negative or scaled x100 (above 1000)",
    "sibsp_out_of_range": "a few SibSp counts are negative or absurd (42)",
    "parch_out_of_range": "a few Parch counts are negative or absurd (42)",
    "unknown_sex": "a few Sex values are codes ('M', 'F', 'unknown') instead of male/female",
    "unknown_embarked": "a few Embarked ports are not C/Q/S ('X', 'Southampton')",
    "bad_survived": "a few Survived flags are 2 or -1",
    "bad_pclass": "a few Pclass values are 0 or 4",
    "age_as_string": "Age arrives as text (e.g. a CSV whose Age column no longer parses as numbers)",
    "fare_as_string": "Fare arrives as text ('£7.25')",
    "pclass_as_float": "Pclass arrives as floating point (1.0, 2.0, 3.0)",
    "duplicate_ids": "a slice of rows is loaded twice, so PassengerId repeats",
    "missing_column": "the Cabin column is dropped",
    "renamed_column": "Sex is renamed to Gender",
    "extra_column": "an unexpected Boat column is added",
    "empty": "the table has the right schema but no rows",
}


def _rows(n: int, k: int) -> np.ndarray:
    """k row positions spread over the table, deterministic."""
    return np.unique(np.linspace(0, max(n - 1, 0), num=min(k, n)).astype(np.int64))


def _set_values(table: pa.Table, column: str, value: object, rows: np.ndarray) -> pa.Table:
    """Replace ``column`` at ``rows`` with ``value`` (a scalar, or one value per row, None = null)."""
    col = table.column(column)
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    if isinstance(value, list):
        # Cycle through the given values over the chosen rows, vectorised via Arrow take.
        positions = np.zeros(table.num_rows, dtype=np.int32)
        positions[rows] = np.arange(len(rows)) % len(value)
        replacement = pc.take(pa.array(value, col.type), pa.array(positions))
    else:
        replacement = pa.scalar(value, col.type)
    new = pc.if_else(pa.array(mask), replacement, col.combine_chunks())
    return table.set_column(table.schema.get_field_index(column), column, new)


def corrupt(table: pa.Table, kind: str) -> pa.Table:
    """Return a copy of ``table`` with one defect of ``kind`` (see ``CORRUPTIONS``)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(CORRUPTIONS)}")
    n = table.num_rows
    few = _rows(n, max(3, n // 200))

    def idx(name: str) -> int:
        return table.schema.get_field_index(name)

    match kind:
        case "null_passenger_id":
            return _set_values(table, "PassengerId", None, few)
        case "null_survived":
            return _set_values(table, "Survived", None, few)
        case "null_name":
            return _set_values(table, "Name", None, few)
        case "age_null_rate":
            return _set_values(table, "Age", None, _rows(n, int(n * 0.6)))
        case "age_out_of_range":
            return _set_values(table, "Age", [-1.0, 150.0, 999.0], few)
        case "fare_out_of_range":
            return _set_values(table, "Fare", [-7.25, 51232.92, 1500.0], few)
        case "sibsp_out_of_range":
            return _set_values(table, "SibSp", [-1, 42], few)
        case "parch_out_of_range":
            return _set_values(table, "Parch", [-1, 42], few)
        case "unknown_sex":
            return _set_values(table, "Sex", ["M", "F", "unknown"], few)
        case "unknown_embarked":
            return _set_values(table, "Embarked", ["X", "Southampton"], few)
        case "bad_survived":
            return _set_values(table, "Survived", [2, -1], few)
        case "bad_pclass":
            return _set_values(table, "Pclass", [0, 4], few)
        case "age_as_string":
            return table.set_column(idx("Age"), "Age", pc.cast(table.column("Age"), pa.string()))
        case "fare_as_string":
            as_text = pc.binary_join_element_wise("£", pc.cast(table.column("Fare"), pa.string()), "")
            return table.set_column(idx("Fare"), "Fare", as_text)
        case "pclass_as_float":
            return table.set_column(idx("Pclass"), "Pclass", pc.cast(table.column("Pclass"), pa.float64()))
        case "duplicate_ids":
            return pa.concat_tables([table, table.slice(0, max(1, min(5, n)))])
        case "missing_column":
            return table.drop_columns(["Cabin"])
        case "renamed_column":
            return table.rename_columns(["Gender" if c == "Sex" else c for c in table.column_names])
        case "extra_column":
            return table.append_column("Boat", pa.array([None] * n, pa.string()))
        case "empty":
            return table.slice(0, 0)
    raise AssertionError(kind)  # pragma: no cover - every key of CORRUPTIONS is handled above


def write_csv(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` as CSV (nulls become empty fields, as in the real file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)
    return path
