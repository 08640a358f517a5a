"""More map-metric families in the pushdown, each with GX's own pandas results field by field: regex checks
(``match_regex``, ``not_match_regex`` and their lists: pandas' ``str.contains`` is Python's ``re.search``, answered
with DuckDB's RE2 ``regexp_matches`` only for patterns translated exactly, ``pushdown.re2_pattern``) and value
lengths (``len(str(value))``: code points, as DuckDB's ``length``).

The table (two files, so positions count across files) holds what the engines could read apart: unicode (é, 日本,
an emoji, a combining accent), strings ending in a newline (Python's ``$`` matches before it, RE2's does not), the
empty string, nulls, an all-null column; and an empty branch. The pushdown must have answered
(``row_metrics == "duckdb"``), and a pattern outside the translated subset must send the audit to pandas.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import duckdb
import great_expectations.expectations as gxe
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_audit_pushdown import NAMESPACE, audit_both, gx_dir, make_checkpoint, results_json  # noqa: F401
from test_audit_pushdown import WEIRD as EDGE_WEIRD
from test_audit_pushdown import lakehouse as edge_lakehouse  # noqa: F401

from flows.audit import pushdown
from flows.lakehouse import MAIN, connect

WORDS = ["Zoë", "日本語", "🎉 party", "abc\n", "Abc", "", "e\u0301", "x-1", "a.b", "O'Brien", "AB12", "line\nnext"]


def families_table(rows: int, start: int) -> pa.Table:
    text: list[str | None] = [WORDS[(start + i) % len(WORDS)] for i in range(rows)]
    for i in range(0, rows, 7):
        text[i] = None
    return pa.table(
        {
            "id": pa.array(range(start, start + rows), pa.int64()),
            "text": pa.array(text, pa.string()),
            "none_s": pa.array([None] * rows, pa.string()),
        }
    )


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lhfamilies")
    client = connect("local", root / "lakehouse")
    client.create_branch("edge.families", MAIN)
    for part, start in enumerate((0, 100)):
        source = root / f"part-{part}.parquet"
        pq.write_table(families_table(100, start), source)
        if part == 0:
            client.create_table("edge", str(source), branch="edge.families", namespace=NAMESPACE)
        client.import_data("edge", str(source), branch="edge.families", namespace=NAMESPACE)
    client.create_branch("edge.empty", MAIN)
    client.create_table("edge", str(root / "part-0.parquet"), branch="edge.empty", namespace=NAMESPACE)
    return client


PATTERNS = ["^[A-Z][a-z]+$", "c$", "^.{3}$", "[0-9]", "\\.", "^(?:x|a)", "日本", "b+?c", "^$", "[^a-z]", "e\u0301"]


def family_expectations() -> list:
    expectations: list = []
    for column in ("text", "none_s"):
        expectations += [gxe.ExpectColumnValuesToMatchRegex(column=column, regex=p, mostly=0.1) for p in PATTERNS]
        expectations += [gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=p) for p in PATTERNS]
        expectations += [
            gxe.ExpectColumnValuesToMatchRegexList(column=column, regex_list=["^A", "c$"], match_on="any"),
            gxe.ExpectColumnValuesToMatchRegexList(column=column, regex_list=["b", "c$"], match_on="all"),
            gxe.ExpectColumnValuesToNotMatchRegexList(column=column, regex_list=["🎉", "\\n"]),
            gxe.ExpectColumnValueLengthsToEqual(column=column, value=3),
            gxe.ExpectColumnValueLengthsToBeBetween(column=column, min_value=1, max_value=3),
            gxe.ExpectColumnValueLengthsToBeBetween(column=column, min_value=2, strict_min=True),
            gxe.ExpectColumnValueLengthsToBeBetween(column=column, max_value=7, strict_max=True),
        ]
    return expectations


@pytest.mark.parametrize("result_format", ["SUMMARY", "BASIC"])
@pytest.mark.parametrize("branch", ["edge.families", "edge.empty"])
def test_family_results_equal_gx_on_pandas(lakehouse, gx_dir: Path, branch: str, result_format: str) -> None:  # noqa: F811
    keyed = {"result_format": result_format, "unexpected_index_column_names": ["id"]}
    checkpoint = make_checkpoint(gx_dir, f"edge_families_{result_format}", family_expectations(), keyed)
    pushed, plain = audit_both(lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == "duckdb" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)
    if branch == "edge.families":
        # The cases discriminate: some rules fail, some pass.
        assert 0 < len(pushed.failed) < len(family_expectations())


REFUSED = ["\\d", "\\w+", "(?i)abc", "a(?=b)", "(a)\\1", "c$|^A", "\\bx", "[[:alpha:]]", "a{,3}"]


@pytest.mark.parametrize("regex", REFUSED)
def test_a_pattern_outside_the_exact_subset_goes_to_pandas(lakehouse, gx_dir: Path, regex: str) -> None:  # noqa: F811
    assert pushdown.re2_pattern(regex) is None
    checkpoint = make_checkpoint(
        gx_dir, "edge_regex_refused", [gxe.ExpectColumnValuesToMatchRegex(column="text", regex=regex)]
    )
    pushed, plain = audit_both(lakehouse, gx_dir, "edge.families", checkpoint)
    assert pushed.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)


def test_translated_patterns_match_what_python_matches() -> None:
    """Random patterns of the translated subset against random strings: RE2 in DuckDB and Python's re agree."""
    rng = random.Random(7)
    atoms = [
        "a",
        "b",
        "A",
        "1",
        ".",
        "\\.",
        "\\n",
        "[ab]",
        "[^a]",
        "[a-c]",
        "é",
        "日",
        "🎉",
        "[é-日]",
        "e\u0301",
        " ",
        "-",
        "\\-",
        "(a|b)",
        "(?:ab)",
    ]
    quantifiers = ["", "", "*", "+", "?", "{2}", "{1,3}", "{2,}", "*?"]
    alphabet = ["a", "b", "A", "1", "\n", ".", "-", "é", "日", "🎉", " ", "\\"]
    con = duckdb.connect()
    checked = 0
    for _ in range(1500):
        body = "".join(rng.choice(atoms) + rng.choice(quantifiers) for _ in range(rng.randint(0, 4)))
        regex = ("^" if rng.random() < 0.3 else "") + body + ("$" if rng.random() < 0.4 else "")
        translated = pushdown.re2_pattern(regex)
        if translated is None:
            continue
        checked += 1
        strings = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))) for _ in range(20)]
        strings += [s + "\n" for s in strings[:6]]
        got = [con.execute("SELECT regexp_matches(?, ?)", [s, translated]).fetchone()[0] for s in strings]
        assert got == [re.search(regex, s) is not None for s in strings], regex
    assert checked > 1000


def test_wap_suite_check_no_longer_names_these_families() -> None:
    """``rules_sent_to_pandas`` (``wap suite check``'s warning) follows ``unanswered``: these rules stay on SQL."""
    import great_expectations as gx

    from flows.audit import get_context

    get_context(Path(__file__).resolve().parents[1] / "gx")  # GX loaded, the pushdown installed
    suite = gx.ExpectationSuite(name="families", expectations=family_expectations())
    schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("none_s", pa.string())])
    keyed = {"result_format": "SUMMARY", "unexpected_index_column_names": ["id"]}
    assert pushdown.rules_sent_to_pandas(suite.expectation_configurations, schema, keyed) == []
    assert pushdown.rules_sent_to_pandas(suite.expectation_configurations, None, "SUMMARY") == []
    refused = [gxe.ExpectColumnValuesToMatchRegex(column="text", regex="\\d")]
    suite = gx.ExpectationSuite(name="refused", expectations=refused)
    assert pushdown.rules_sent_to_pandas(suite.expectation_configurations, schema, keyed) == [
        "expect_column_values_to_match_regex (text)"
    ]


def dtypes_table(rows: int, start: int, *, nulls: bool) -> pa.Table:
    """bool, date32, timestamps (naive and UTC) and decimals, repeating values; with nulls, or without."""
    import datetime as dt
    import decimal

    def maybe_null(values: list) -> list:
        return [None if nulls and (start + i) % 5 == 0 else v for i, v in enumerate(values)]

    days = [dt.date(2024, 1, 1) + dt.timedelta(days=(start + i) % 40) for i in range(rows)]
    stamps = [dt.datetime(2024, 1, 1, 12) + dt.timedelta(seconds=(start + i) % 90) for i in range(rows)]
    unique_stamps = [dt.datetime(2024, 1, 1) + dt.timedelta(microseconds=start + i) for i in range(rows)]
    return pa.table(
        {
            "id": pa.array(range(start, start + rows), pa.int64()),
            "flag": pa.array(maybe_null([(start + i) % 3 == 0 for i in range(rows)]), pa.bool_()),
            "day": pa.array(maybe_null(days), pa.date32()),
            "at": pa.array(maybe_null(stamps), pa.timestamp("us")),
            "at_once": pa.array(maybe_null(unique_stamps), pa.timestamp("us")),
            "at_utc": pa.array(maybe_null(stamps), pa.timestamp("us", tz="UTC")),
            "amount": pa.array(
                maybe_null([decimal.Decimal(f"{(start + i) % 7}.50") for i in range(rows)]), pa.decimal128(9, 2)
            ),
        }
    )


@pytest.fixture(scope="module")
def typed_lakehouse(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lhdtypes")
    client = connect("local", root / "lakehouse")
    for branch, nulls in (("edge.nulls", True), ("edge.full", False)):
        client.create_branch(branch, MAIN)
        for part, start in enumerate((0, 60)):
            source = root / f"{branch}-{part}.parquet"
            pq.write_table(dtypes_table(60, start, nulls=nulls), source)
            if part == 0:
                client.create_table("edge", str(source), branch=branch, namespace=NAMESPACE)
            client.import_data("edge", str(source), branch=branch, namespace=NAMESPACE)
    client.create_branch("edge.empty", MAIN)
    client.create_table("edge", str(root / "edge.nulls-0.parquet"), branch="edge.empty", namespace=NAMESPACE)
    return client


TYPED = ("flag", "day", "at", "at_once", "at_utc", "amount")


def dtype_expectations() -> list:
    expectations: list = [gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=0.5) for c in TYPED]
    expectations += [gxe.ExpectColumnValuesToBeUnique(column=c) for c in ("flag", "day", "at", "at_once")]
    expectations += [
        gxe.ExpectColumnValuesToBeInSet(column="flag", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="flag", value_set=[True, False]),
        gxe.ExpectColumnValuesToBeInSet(column="flag", value_set=[]),
    ]
    # The zero-row frame's dtypes are the full conversion's (a bool column's type check with nulls, object there,
    # is a per-value metric: pandas).
    for column, type_ in (("day", "object"), ("at", "datetime64"), ("at_utc", "datetime64"), ("amount", "object")):
        expectations.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_=type_))
    return expectations


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("branch", ["edge.nulls", "edge.full", "edge.empty"])
def test_other_dtypes_results_equal_gx_on_pandas(typed_lakehouse, gx_dir: Path, branch: str, keyed: bool) -> None:  # noqa: F811
    result_format = {"result_format": "SUMMARY", **({"unexpected_index_column_names": ["id"]} if keyed else {})}
    checkpoint = make_checkpoint(gx_dir, f"edge_dtypes_{keyed}", dtype_expectations(), result_format)
    pushed, plain = audit_both(typed_lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == "duckdb" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)
    pushed_values = [r.result.get("partial_unexpected_list") for r in pushed.validation_result.results]
    plain_values = [r.result.get("partial_unexpected_list") for r in plain.validation_result.results]
    # The sampled values are the objects pandas hands out (Timestamp, datetime.date, bool, None, NaT).
    assert [[type(v) for v in vs or []] for vs in pushed_values] == [[type(v) for v in vs or []] for vs in plain_values]
    if branch != "edge.empty":
        assert any(e.expectation_type == "expect_column_values_to_be_unique" for e in pushed.failed)


TYPED_FALLBACKS = {
    "between_on_a_timestamp": gxe.ExpectColumnValuesToBeBetween(
        column="at", min_value="2024-01-01", max_value="2025-01-01"
    ),
    "unique_decimals": gxe.ExpectColumnValuesToBeUnique(column="amount"),
    "set_of_numbers_on_bools": gxe.ExpectColumnValuesToBeInSet(column="flag", value_set=[1]),
    "unique_utc_timestamps": gxe.ExpectColumnValuesToBeUnique(column="at_utc"),
    "a_bool_row_key": gxe.ExpectColumnValuesToNotBeNull(column="day"),
}


@pytest.mark.parametrize("case", sorted(TYPED_FALLBACKS))
def test_other_dtypes_the_pushdown_cannot_reproduce_go_to_pandas(typed_lakehouse, gx_dir: Path, case: str) -> None:  # noqa: F811
    result_format = {"result_format": "SUMMARY", "unexpected_index_column_names": ["flag" if "key" in case else "id"]}
    checkpoint = make_checkpoint(gx_dir, f"edge_dtypes_{case}", [TYPED_FALLBACKS[case]], result_format)
    pushed, plain = audit_both(typed_lakehouse, gx_dir, "edge.nulls", checkpoint)
    assert pushed.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)


@pytest.mark.parametrize("nulls", [True, False])
def test_the_zero_row_frame_has_the_full_conversions_dtypes(nulls: bool) -> None:
    from flows.audit.checkpoint import table_to_dataframe

    table = dtypes_table(30, 0, nulls=nulls)
    source = pushdown._SchemaOnly(table.schema)
    source._null_counts = {name: table.column(name).null_count for name in table.schema.names}
    assert source.frame().dtypes.to_dict() == table_to_dataframe(table).dtypes.to_dict()


def row_conditions() -> dict:
    from great_expectations.expectations.row_conditions import Column

    return {
        "greater": Column("id") > 1500,
        "equal_string": Column("name") == "x",
        "not_equal_with_nan": Column("score") != 0.5,
        "in_or_less": Column(EDGE_WEIRD).is_in(["a"]) | (Column("id") < 10),
        "not_in_with_nulls": Column(EDGE_WEIRD).is_not_in(["a"]),
        "is_null": Column("score").is_null(),
        "and_of_three": Column("id").is_not_null() & (Column("name") <= "say") & (Column("score") >= 0.2),
        "empty_set": Column("name").is_in([]),
    }


def conditioned_expectations(condition) -> list:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="score", row_condition=condition, mostly=0.5),
        gxe.ExpectColumnValuesToNotBeNull(column=EDGE_WEIRD, row_condition=condition),
        gxe.ExpectColumnValuesToBeUnique(column="id", row_condition=condition),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0.1, max_value=0.8, row_condition=condition),
        gxe.ExpectColumnValuesToBeInSet(column="name", value_set=["x", "O'Brien"], row_condition=condition),
        gxe.ExpectColumnValuesToMatchRegex(column="name", regex="^[xO]", row_condition=condition),
        gxe.ExpectColumnValueLengthsToBeBetween(column="name", min_value=2, row_condition=condition),
    ]


@pytest.mark.parametrize("case", sorted(row_conditions()))
@pytest.mark.parametrize("branch", ["edge.bad", "edge.empty"])
def test_row_conditions_results_equal_gx_on_pandas(edge_lakehouse, gx_dir: Path, branch: str, case: str) -> None:  # noqa: F811
    result_format = {"result_format": "SUMMARY", "unexpected_index_column_names": ["id"]}
    expectations = conditioned_expectations(row_conditions()[case])
    checkpoint = make_checkpoint(gx_dir, f"edge_condition_{case}", expectations, result_format)
    pushed, plain = audit_both(edge_lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == "duckdb" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)


def refused_conditions() -> dict:
    from great_expectations.expectations.row_conditions import Column

    return {
        "a_number_against_strings": Column("name") > 5,
        "a_column_the_table_lacks": Column("nope") == 1,
        "beyond_exact_floats": Column("id") == 2**60,
    }


@pytest.mark.parametrize("case", sorted(refused_conditions()))
def test_row_conditions_not_reproduced_go_to_pandas(edge_lakehouse, gx_dir: Path, case: str) -> None:  # noqa: F811
    condition = refused_conditions()[case]
    expectations = [gxe.ExpectColumnValuesToNotBeNull(column="score", row_condition=condition)]
    checkpoint = make_checkpoint(gx_dir, f"edge_condition_refused_{case}", expectations)
    pushed, plain = audit_both(edge_lakehouse, gx_dir, "edge.bad", checkpoint)
    assert pushed.row_metrics == "pandas"
    assert [r.success for r in pushed.validation_result.results] == [r.success for r in plain.validation_result.results]


def compound_expectations() -> list:
    from great_expectations.expectations.row_conditions import Column

    return [
        # name x weird repeats; id x score repeats where the bad files repeat an id (nulls and NaN among them).
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["name", EDGE_WEIRD]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["id", "score"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["score", EDGE_WEIRD], ignore_row_if="any_value_is_missing"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["score", EDGE_WEIRD], ignore_row_if="never", mostly=0.1),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["id", "name"], row_condition=Column("id") > 1500),
    ]


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("branch", ["edge.good", "edge.bad", "edge.empty"])
def test_compound_uniqueness_equals_gx_on_pandas(edge_lakehouse, gx_dir: Path, branch: str, keyed: bool) -> None:  # noqa: F811
    result_format = {"result_format": "SUMMARY", **({"unexpected_index_column_names": ["id"]} if keyed else {})}
    checkpoint = make_checkpoint(gx_dir, f"edge_compound_{keyed}", compound_expectations(), result_format)
    pushed, plain = audit_both(edge_lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == "duckdb" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)
    failed = [e for e in pushed.failed if e.expectation_type == "expect_compound_columns_to_be_unique"]
    # The cases discriminate: the id pairs hold on the good branch, every rule fails on the bad one.
    expected = {"edge.good": 3, "edge.bad": 5, "edge.empty": 0}[branch]
    assert len(failed) == expected


@pytest.fixture(scope="module")
def nan_lakehouse(tmp_path_factory: pytest.TempPathFactory):
    """A float column whose NaN and null partner the same value: one repeated tuple to pandas (both missing)."""
    root = tmp_path_factory.mktemp("lhnan")
    client = connect("local", root / "lakehouse")
    client.create_branch("edge.nan", MAIN)
    source = root / "nan.parquet"
    x = pa.array([float("nan"), None, 1.0, 1.0, 2.0, -0.0, 0.0], pa.float64())  # NaN stays NaN in the file
    pq.write_table(pa.table({"id": pa.array(range(7), pa.int64()), "x": x, "y": list("aabcdee")}), source)
    client.create_table("edge", str(source), branch="edge.nan", namespace=NAMESPACE)
    client.import_data("edge", str(source), branch="edge.nan", namespace=NAMESPACE)
    return client


def test_compound_uniqueness_takes_nan_and_null_alike(nan_lakehouse, gx_dir: Path) -> None:  # noqa: F811
    rules = [gxe.ExpectCompoundColumnsToBeUnique(column_list=["x", "y"], ignore_row_if="never")]
    checkpoint = make_checkpoint(gx_dir, "edge_compound_nan", rules, {"result_format": "SUMMARY"})
    pushed, plain = audit_both(nan_lakehouse, gx_dir, "edge.nan", checkpoint)
    assert pushed.row_metrics == "duckdb"
    assert results_json(pushed) == results_json(plain)
    assert pushed.failed[0].partial_unexpected_index_list[:2] == [0, 1]
