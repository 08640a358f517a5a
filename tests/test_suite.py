"""Suite authoring (`wap suite list/show/check/init/diff`): real files, real GX contexts, the real CLI.

Every test works on its own copy of the repo's gx/ (WAP_GX_DIR / WAP_DATASETS point the commands at it),
so the committed suites are never touched. The commands users type run through the Typer app in-process
(`run_cli`: a `wap` process would spend most of its time importing GX), the many corrupted copies are
audited with `run_checkpoint`. CLI tests are marked slow: each builds GX contexts of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from gate_fixtures import REPO, run_cli
from reliability_helpers import assert_one_line_error

from flows.audit import run_checkpoint, table_to_dataframe
from flows.demo.data import CORRUPTIONS, corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, SourceError, connect
from flows.lakehouse.sources import read_source
from flows.suite import (
    ColumnProfile,
    check_suites,
    diff_expectations,
    init_suite,
    load_project,
    numeric_bounds,
    profile_source,
    show_suite,
)

ORDER_STATUSES = ["new", "paid", "shipped", "cancelled"]
COUNTRIES = ["DE", "FR", "IT", "ES", "NL", "US"]


def generate_orders(n: int, seed: int = 0) -> pa.Table:
    """A non-titanic dataset: ids, money, categories, a timestamp, a boolean and columns with nulls."""
    rng = np.random.default_rng(seed)
    created = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 86400 * 365, n).astype("timedelta64[s]")
    return pa.table(
        {
            "order_id": pa.array(np.arange(10_000, 10_000 + n)),
            "customer_id": pa.array(rng.integers(1, n // 3 + 2, n)),
            "amount": pa.array(np.round(rng.uniform(1, 500, n), 2)),
            "discount": pa.array(np.round(rng.uniform(0, 50, n), 2), mask=rng.random(n) < 0.3),
            "quantity": pa.array(rng.integers(1, 10, n)),
            "status": pa.array(np.array(ORDER_STATUSES)[rng.integers(0, 4, n)]),
            "country": pa.array(np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)]),
            "created_at": pa.array(created, pa.timestamp("s")),
            "coupon": pa.array(np.array(["SPRING", "VIP"])[rng.integers(0, 2, n)], mask=rng.random(n) < 0.8),
            "gift": pa.array(rng.random(n) < 0.1),
        }
    )


def _set(table: pa.Table, column: str, values: list, rows: list[int]) -> pa.Table:
    array = table.column(column).to_pylist()
    for row, value in zip(rows, values, strict=False):
        array[row] = value
    return table.set_column(
        table.schema.get_field_index(column), column, pa.array(array, table.schema.field(column).type)
    )


# Each corruption, and the (expectation, column) that must block it.
ORDER_CORRUPTIONS = {
    "null_amount": (lambda t: _set(t, "amount", [None] * 3, [1, 50, 900]), "not_be_null", "amount"),
    "amount_out_of_range": (lambda t: _set(t, "amount", [-5.0, 99_999.0], [3, 7]), "be_between", "amount"),
    "unknown_status": (lambda t: _set(t, "status", ["lost", "PAID"], [2, 4]), "be_in_set", "status"),
    "unknown_country": (lambda t: _set(t, "country", ["Germany"], [9]), "be_in_set", "country"),
    "amount_as_string": (
        lambda t: t.set_column(2, "amount", pc.cast(t.column("amount"), pa.string())),
        "type_list",
        "amount",
    ),
    "quantity_as_float": (
        lambda t: t.set_column(4, "quantity", pc.cast(t.column("quantity"), pa.float64())),
        "of_type",
        "quantity",
    ),
    "duplicate_ids": (lambda t: pa.concat_tables([t, t.slice(0, 5)]), "be_unique", "order_id"),
    "missing_column": (lambda t: t.drop_columns(["country"]), "match_set", None),
    "extra_column": (lambda t: t.append_column("note", pa.array(["x"] * t.num_rows)), "match_set", None),
    "discount_mostly_null": (
        lambda t: _set(t, "discount", [None] * int(t.num_rows * 0.8), list(range(int(t.num_rows * 0.8)))),
        "not_be_null",
        "discount",
    ),
    "empty": (lambda t: t.slice(0, 0), "row_count", None),
}


def copy_gx(target: Path) -> Path:
    """A private copy of the repo's gx/ (without generated docs/results)."""
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def gx_env(gx: Path) -> dict[str, str]:
    return {"WAP_GX_DIR": str(gx), "WAP_DATASETS": str(gx / "datasets.yml")}


def assert_exit(result: subprocess.CompletedProcess, code: int) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("suite-data")
    orders = generate_orders(2000, seed=1)
    titanic = generate_titanic(891, seed=4)
    files = {
        "sales": write_csv(orders, folder / "orders.csv"),
        "orders_other_day": write_csv(generate_orders(1500, seed=9), folder / "orders_other_day.csv"),
        "titanic": write_csv(titanic, folder / "titanic.csv"),
        "titanic_other": write_csv(generate_titanic(1500, seed=11), folder / "titanic_other.csv"),
    }
    # Parquet keeps the corrupted Arrow types (a CSV would be re-inferred on the way in).
    for kind, (damage, _, _) in ORDER_CORRUPTIONS.items():
        pq.write_table(damage(orders), folder / f"orders_{kind}.parquet")
        files[f"orders_{kind}"] = folder / f"orders_{kind}.parquet"
    for kind in CORRUPTIONS:
        pq.write_table(corrupt(titanic, kind), folder / f"titanic_{kind}.parquet")
        files[f"titanic_{kind}"] = folder / f"titanic_{kind}.parquet"
    return files


@pytest.fixture(scope="module")
def orders_gx(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """A gx/ copy where `wap suite init sales` (the real command) declared and bootstrapped `sales`."""
    gx = copy_gx(tmp_path_factory.mktemp("sales") / "gx")
    result = run_cli("suite", "init", "sales", "--source", str(data["sales"]), env=gx_env(gx))
    assert_exit(result, 0)
    assert "wrote" in result.stdout and "declared dataset sales" in result.stdout
    return gx


def _audit(path: Path, checkpoint: str, gx: Path):
    return run_checkpoint(table_to_dataframe(read_source(str(path))), checkpoint, gx_dir=gx)


# ------------------------------------------------------------------------------------------------ init
@pytest.mark.slow
def test_init_declares_and_bootstraps_everything_wap_run_needs(orders_gx: Path, data: dict[str, Path]):
    declared = yaml.safe_load((orders_gx / "datasets.yml").read_text())["datasets"]
    assert declared["sales"] == {
        "source": str(data["sales"]),
        "table": "sales",
        "namespace": "bauplan",
        "checkpoint": "sales",
        "schedule": None,
        "mode": "replace",  # declared explicitly, so that users see the option
        "key": ["order_id"],  # proposed by the profile: id-like, unique, never null
    }
    assert "titanic" in declared  # the other declarations are kept...
    assert (orders_gx / "datasets.yml").read_text().startswith("# Datasets the WAP gate knows")  # ...and the docs
    for folder in ("expectations", "validation_definitions", "checkpoints"):
        assert (orders_gx / folder / "sales.json").is_file()
    assert "sales:" in (orders_gx / "great_expectations.yml").read_text()  # the dataframe asset
    # A starter table suite, validated by the same checkpoint on the table as it would be published.
    table_suite = json.loads((orders_gx / "expectations" / "sales_table.json").read_text())
    rules = {(e["type"], e["kwargs"].get("column")) for e in table_suite["expectations"]}
    row_count = next(e for e in table_suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    assert row_count["kwargs"]["min_value"] == {"$PARAMETER": "main_row_count"}
    unique_in_batch = {
        e["kwargs"]["column"]
        for e in json.loads((orders_gx / "expectations" / "sales.json").read_text())["expectations"]
        if e["type"] == "expect_column_values_to_be_unique"
    }
    assert unique_in_batch and {("expect_column_values_to_be_unique", c) for c in unique_in_batch} <= rules
    definition = json.loads((orders_gx / "validation_definitions" / "sales_table.json").read_text())
    assert definition["data"]["batch_definition"]["name"] == "published_table"
    checkpoint = json.loads((orders_gx / "checkpoints" / "sales.json").read_text())
    assert [vd["name"] for vd in checkpoint["validation_definitions"]] == ["sales", "sales_table"]


def test_init_proposes_a_key_only_where_the_profile_proves_one(tmp_path: Path, data: dict[str, Path]):
    """A new dataset is declared with its key; one declared without a key keeps its declaration (the user's) and is
    told the proposal; no id-like column that is unique and never null: no key."""
    gx = copy_gx(tmp_path / "gx")
    before = yaml.safe_load((gx / "datasets.yml").read_text())["datasets"]["titanic"]
    before.pop("key", None)
    declared = yaml.safe_load((gx / "datasets.yml").read_text())
    declared["datasets"]["titanic"] = before
    (gx / "datasets.yml").write_text(yaml.safe_dump(declared, sort_keys=False))
    titanic = run_cli("suite", "init", "titanic", "--source", str(data["titanic"]), "--force", env=gx_env(gx))
    assert_exit(titanic, 0)
    assert "proposed key: add `key: PassengerId` to dataset titanic" in titanic.stdout
    assert "key" not in yaml.safe_load((gx / "datasets.yml").read_text())["datasets"]["titanic"]
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("order_id,amount\n1,2.5\n1,3.5\n2,4.0\n")
    plain = run_cli("suite", "init", "repeated", "--source", str(repeated), env=gx_env(gx))
    assert_exit(plain, 0)
    assert "key" not in yaml.safe_load((gx / "datasets.yml").read_text())["datasets"]["repeated"]
    assert "proposed key" not in plain.stdout and ", key " not in plain.stdout


@pytest.mark.slow
def test_init_keeps_an_edited_table_suite(tmp_path: Path, data: dict[str, Path]):
    """The table suite is the user's once written: a forced init regenerates the batch suite, not it."""
    gx = copy_gx(tmp_path / "gx")
    assert_exit(run_cli("suite", "init", "sales", "--source", str(data["sales"]), env=gx_env(gx)), 0)
    path = gx / "expectations" / "sales_table.json"
    edited = json.loads(path.read_text())
    edited["expectations"] = edited["expectations"][:1]
    path.write_text(json.dumps(edited, indent=2))
    before = path.read_bytes()
    forced = run_cli("suite", "init", "sales", "--source", str(data["sales"]), "--force", env=gx_env(gx))
    assert_exit(forced, 0)
    assert path.read_bytes() == before
    assert "starter table suite" not in forced.stdout


@pytest.mark.slow
def test_init_writes_the_expected_starter_rules(orders_gx: Path):
    suite = json.loads((orders_gx / "expectations" / "sales.json").read_text())
    rules = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    assert rules[("expect_table_columns_to_match_set", None)]["column_set"][0] == "order_id"
    assert rules[("expect_table_row_count_to_be_between", None)] == {"min_value": 200, "max_value": 20000}
    assert ("expect_column_values_to_be_unique", "order_id") in rules
    assert ("expect_column_values_to_be_unique", "customer_id") not in rules  # id-like but repeats
    assert rules[("expect_column_values_to_be_between", "order_id")].get("max_value") is None  # ids grow
    assert rules[("expect_column_values_to_be_between", "amount")] == {
        "column": "amount",
        "min_value": 0.0,
        "max_value": 750.0,
    }
    assert sorted(rules[("expect_column_values_to_be_in_set", "status")]["value_set"]) == sorted(ORDER_STATUSES)
    assert ("expect_column_values_to_be_in_set", "quantity") not in rules  # 9 integer values: a range instead
    # Complete columns: not null without mostly; columns with nulls: mostly below the observed completeness.
    assert rules[("expect_column_values_to_not_be_null", "amount")] == {"column": "amount"}
    assert 0.45 <= rules[("expect_column_values_to_not_be_null", "discount")]["mostly"] < 0.7
    assert 0.05 <= rules[("expect_column_values_to_not_be_null", "coupon")]["mostly"] < 0.2
    # Types as the gate sees them after the lakehouse round trip (pandas 3).
    assert rules[("expect_column_values_to_be_of_type", "order_id")]["type_"] == "int64"
    assert rules[("expect_column_values_to_be_of_type", "status")]["type_"] == "str"
    assert rules[("expect_column_values_to_be_of_type", "created_at")]["type_"] == "datetime64"
    assert rules[("expect_column_values_to_be_of_type", "gift")]["type_"] == "bool"
    assert rules[("expect_column_values_to_be_in_type_list", "amount")]["type_list"] == ["float64", "int64"]
    assert all(e["meta"]["notes"]["content"] for e in suite["expectations"])  # every rule says where it came from


@pytest.mark.slow
def test_init_suite_passes_clean_orders_and_blocks_each_corruption(orders_gx: Path, data: dict[str, Path]):
    for clean in ("sales", "orders_other_day"):  # the profiled file and another day's load
        result = _audit(data[clean], "sales", orders_gx)
        assert result.success, [(e.expectation_type, e.column, e.observed_value) for e in result.failed]
    for kind, (_, expectation, column) in ORDER_CORRUPTIONS.items():
        result = _audit(data[f"orders_{kind}"], "sales", orders_gx)
        assert not result.success, kind
        assert any(expectation in e.expectation_type and e.column == column for e in result.failed), (
            kind,
            [(e.expectation_type, e.column) for e in result.failed],
        )


@pytest.mark.soak
def test_init_on_titanic_shaped_data_blocks_every_demo_corruption(tmp_path: Path, data: dict[str, Path]):
    gx = copy_gx(tmp_path / "gx")
    result = init_suite("passengers", str(data["titanic"]), gx_root=gx, datasets_path=gx / "datasets.yml")
    assert result.declaration == "added" and result.profile.rows == 891
    for clean in ("titanic", "titanic_other"):
        outcome = _audit(data[clean], "passengers", gx)
        assert outcome.success, [(e.expectation_type, e.column, e.observed_value) for e in outcome.failed]
    passed = [kind for kind in CORRUPTIONS if _audit(data[f"titanic_{kind}"], "passengers", gx).success]
    assert passed == []


@pytest.mark.slow
def test_init_refuses_to_overwrite_without_force(tmp_path: Path, data: dict[str, Path]):
    gx = copy_gx(tmp_path / "gx")
    before = (gx / "expectations" / "titanic.json").read_text()
    result = run_cli("suite", "init", "titanic", "--source", str(data["titanic"]), env=gx_env(gx))
    assert_exit(result, 2)
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (gx / "expectations" / "titanic.json").read_text() == before

    # The same errors in-process (each `wap` error exit pays for importing Prefect, so one is enough).
    kwargs = {"gx_root": gx, "datasets_path": gx / "datasets.yml"}
    with pytest.raises(ValueError, match="invalid dataset name"):
        init_suite("Bad-Name", str(data["titanic"]), **kwargs)
    with pytest.raises(SourceError, match="source not found"):
        init_suite("fresh", str(tmp_path / "missing.csv"), **kwargs)
    assert not (gx / "expectations" / "fresh.json").exists()


def test_init_force_regenerates_and_keeps_ids(tmp_path: Path, data: dict[str, Path]):
    gx = copy_gx(tmp_path / "gx")
    kwargs = {"gx_root": gx, "datasets_path": gx / "datasets.yml"}
    init_suite("sales", str(data["sales"]), **kwargs)
    first = (gx / "expectations" / "sales.json").read_text()
    # A rerun on the same source finds exactly what it generates: it succeeds and writes nothing
    # (so a rerun after an interrupted or unsure init needs no --force)...
    rerun = init_suite("sales", str(data["sales"]), **kwargs)
    assert rerun.written == [] and rerun.overwritten == [] and rerun.declaration == "unchanged"
    # ...but a suite someone edited, or another day's data, is not replaced without --force.
    with pytest.raises(ValueError, match="already exists"):
        init_suite("sales", str(data["orders_other_day"]), **kwargs)
    assert (gx / "expectations" / "sales.json").read_text() == first
    edited = first.replace("Starter suite generated", "Reviewed suite, first generated", 1)
    assert edited != first
    (gx / "expectations" / "sales.json").write_text(edited)
    with pytest.raises(ValueError, match="already exists"):
        init_suite("sales", str(data["sales"]), **kwargs)
    again = init_suite("sales", str(data["sales"]), force=True, **kwargs)
    assert again.declaration == "unchanged" and again.overwritten
    # Same data, same suite, same expectation ids: regenerating leaves git clean.
    assert (gx / "expectations" / "sales.json").read_text() == first


def test_init_types_match_what_the_gate_sees_after_the_lakehouse(tmp_path: Path):
    """Dates, decimals, zoned timestamps, nullable ints/bools, 32-bit numbers: through Iceberg and to_pandas."""
    import datetime as dt
    import decimal

    n = 60
    rng = np.random.default_rng(5)
    some_nulls = rng.random(n) < 0.2
    table = pa.table(
        {
            "event_id": pa.array(np.arange(n), pa.int32()),
            "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n)]),
            "price": pa.array([decimal.Decimal(f"{x:.2f}") for x in rng.uniform(1, 99, n)], pa.decimal128(8, 2)),
            "seen_at": pa.array(rng.integers(1.7e9, 1.8e9, n) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "score": pa.array(rng.uniform(0, 1, n), pa.float32()),
            "level": pa.array(rng.integers(1, 4, n), mask=some_nulls),
            "flag": pa.array(rng.random(n) < 0.5, mask=some_nulls),
        }
    )
    source = tmp_path / "events.parquet"
    pq.write_table(table, source)
    gx = copy_gx(tmp_path / "gx")
    init_suite("events", str(source), gx_root=gx, datasets_path=gx / "datasets.yml")
    suite = json.loads((gx / "expectations" / "events.json").read_text())
    types = {
        e["kwargs"]["column"]: e["kwargs"].get("type_") or e["kwargs"].get("type_list")
        for e in suite["expectations"]
        if "type" in e["type"]
    }
    assert types == {
        "event_id": "int32",
        "day": "date",
        "price": "Decimal",
        "seen_at": "Timestamp",
        "score": ["float32", "int64"],
        "level": ["int64", "float64"],
        "flag": "bool",
    }
    client = connect("local", tmp_path / "lake")
    client.create_table("events", str(source), branch=MAIN)
    client.import_data("events", str(source), branch=MAIN)
    round_trip = table_to_dataframe(client.scan("events", ref=MAIN))
    result = run_checkpoint(round_trip, "events", gx_dir=gx)
    assert result.success, [(e.expectation_type, e.column, e.observed_value) for e in result.failed]


def test_init_bounds_extreme_floats_or_says_why_not(tmp_path: Path):
    """inf, -inf, values near the float limits and subnormal spans: init succeeds, every bound is finite
    and holds what was profiled, and a column it cannot bound gets no range rule and a note saying why."""
    inf, n = float("inf"), 40
    ramp = np.linspace(0.0, 1.0, n)
    columns = {
        "with_inf": [*ramp[:-1], inf],
        "with_neg_inf": [-inf, *ramp[1:]],
        "only_inf": [inf, -inf] * (n // 2),
        "huge": [-1e308, 1e308] * (n // 2),
        "near_max": [1e308, 1.7e308] * (n // 2),
        "subnormal": [0.0, 5e-324] * (n // 2),
        "tiny_span": [1e-310, 3e-310] * (n // 2),
        "negative_subnormal": [-5e-324, 0.0] * (n // 2),
        "normal": list(ramp * 80),
    }
    source = tmp_path / "extremes.parquet"
    pq.write_table(pa.table({k: pa.array(v, pa.float64()) for k, v in columns.items()}), source)
    gx = copy_gx(tmp_path / "gx")
    init_suite("extremes", str(source), gx_root=gx, datasets_path=gx / "datasets.yml")
    raw = (gx / "expectations" / "extremes.json").read_text()
    assert "Infinity" not in raw and "NaN" not in raw  # nothing JSON cannot hold
    suite = json.loads(raw)
    ranges = {
        e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between"
    }
    assert set(ranges) == {"huge", "near_max", "subnormal", "tiny_span", "negative_subnormal", "normal"}
    for name, (low, high) in ranges.items():
        finite = [v for v in columns[name] if np.isfinite(v)]
        assert np.isfinite(low) and np.isfinite(high) and low <= min(finite) and max(finite) <= high, name
    assert ranges["normal"] == (0, 120)  # ordinary data: the bounds init always wrote
    assert ranges["subnormal"][0] == 0 and 5e-324 <= ranges["subnormal"][1] < 1e-300  # not "0 .. 1"
    assert ranges["negative_subnormal"][0] < 0 < ranges["negative_subnormal"][1] < 1e-300
    notes = suite["meta"]["notes"]["content"][0]
    for name in ("with_inf", "with_neg_inf", "only_inf"):
        assert f"{name} (it held infinite values" in notes, notes
    # The starter suite passes the data it was profiled on.
    result = _audit(source, "extremes", gx)
    assert result.success, [(e.expectation_type, e.column, e.observed_value) for e in result.failed]


@pytest.mark.slow
def test_init_refuses_types_the_lakehouse_cannot_store(tmp_path: Path):
    """A duration column cannot be stored in an Iceberg table: a one-line exit 2 naming it, nothing written."""
    source = tmp_path / "waits.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "wait": pa.array([5, 6, 7], pa.duration("s"))}), source)
    gx = copy_gx(tmp_path / "gx")
    before = {p: p.read_bytes() for p in gx.rglob("*") if p.is_file()}
    result = run_cli("suite", "init", "waits", "--source", str(source), env=gx_env(gx))
    assert_one_line_error(result, (2,), "wait", "duration")
    assert {p: p.read_bytes() for p in gx.rglob("*") if p.is_file() and "uncommitted" not in p.parts} == before
    # A timestamp with a named zone is stored (as UTC, like every zoned timestamp): the gate sees Timestamp.
    zoned = tmp_path / "zoned.parquet"
    stamps = pa.array([1_700_000_000_000_000 + i for i in range(30)], pa.timestamp("us", tz="Europe/Berlin"))
    pq.write_table(pa.table({"seen_at": stamps}), zoned)
    init_suite("zoned", str(zoned), gx_root=gx, datasets_path=gx / "datasets.yml")
    suite = json.loads((gx / "expectations" / "zoned.json").read_text())
    assert {"type": "expect_column_values_to_be_of_type", "column": "seen_at", "type_": "Timestamp"} in [
        {"type": e["type"], **e["kwargs"]} for e in suite["expectations"]
    ]


def test_profile_streams_and_bounds_have_margins(tmp_path: Path):
    path = tmp_path / "many.parquet"
    pq.write_table(generate_orders(30_000, seed=3), path, row_group_size=4_000)  # several batches
    profile = profile_source(str(path))
    by_name = {c.name: c for c in profile.columns}
    assert profile.rows == 30_000
    assert by_name["order_id"].unique and by_name["order_id"].unique_rows_checked == 30_000
    assert by_name["customer_id"].unique is False
    assert sorted(by_name["status"].values or []) == sorted(ORDER_STATUSES)
    assert by_name["amount"].values is None  # floats never get a value set

    def bounds(lo: float, hi: float, kind: str = "float", name: str = "x") -> tuple:
        return numeric_bounds(ColumnProfile(name, "double", kind, min=lo, max=hi))  # type: ignore[arg-type]

    assert bounds(0.42, 80) == (0, 120)  # titanic ages: non-negative data stays non-negative
    assert bounds(0, 512.33) == (0, 770)
    assert bounds(-10, 30) == (-30, 50)
    assert bounds(5, 5, "integer") == (2, 8)  # a constant still gets room
    assert bounds(1, 891, "integer", "PassengerId") == (0, None)


# ---------------------------------------------------------------------------------------------- check
def _break(gx: Path) -> None:
    """A misspelled column, an unknown expectation type, bad arguments and a dangling checkpoint."""
    path = gx / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    exps = suite["expectations"]
    exps[2]["kwargs"]["column"] = "PassengerID"  # expect_column_values_to_be_unique
    exps[3]["type"] = "expect_column_values_to_not_be_nul"
    exps[4]["kwargs"]["mostly"] = 1.5
    exps[5]["kwargs"]["bogus"] = True
    path.write_text(json.dumps(suite, indent=2))
    checkpoint = json.loads((gx / "checkpoints" / "titanic.json").read_text())
    checkpoint["name"] = "titanic_daily"
    checkpoint["validation_definitions"] = [{"id": "0f0e7d1e-0000-4000-8000-000000000000", "name": "titanic_daily"}]
    (gx / "checkpoints" / "titanic_daily.json").write_text(json.dumps(checkpoint, indent=2))


@pytest.mark.slow
def test_check_reports_every_problem_with_file_and_expectation(tmp_path: Path, data: dict[str, Path]):
    gx = copy_gx(tmp_path / "gx")
    _break(gx)
    # The table on main gives the schema the columns are checked against.
    lake = tmp_path / "lake"
    client = connect("local", lake)
    client.create_table("titanic", str(data["titanic"]), branch=MAIN)
    client.import_data("titanic", str(data["titanic"]), branch=MAIN)

    result = run_cli("suite", "check", "--lakehouse", str(lake), env=gx_env(gx))
    assert_exit(result, 1)
    lines = result.stdout.splitlines()

    def line(*needles: str) -> str:
        found = [x for x in lines if all(n in x for n in needles)]
        assert found, (needles, result.stdout)
        return found[0]

    suite_file = str(gx / "expectations" / "titanic.json")
    assert "did you mean 'PassengerId'" in line(
        suite_file, "expectations[2] expect_column_values_to_be_unique", "'PassengerID' does not exist"
    )
    assert "did you mean 'expect_column_values_to_not_be_null'" in line(
        suite_file, "expectations[3]", "unknown expectation type 'expect_column_values_to_not_be_nul'"
    )
    line(suite_file, "expectations[4] expect_column_values_to_not_be_null (column 'Survived')", "mostly=1.5")
    line(suite_file, "expectations[5]", "(column 'Pclass')", "unknown argument 'bogus'")
    line(str(gx / "checkpoints" / "titanic_daily.json"), "validation definition 'titanic_daily', which does not exist")
    line("columns of titanic checked against table bauplan.titanic on main")
    assert "check failed: 5 problem(s) in 2 file(s)" in result.stderr


@pytest.mark.slow
def test_shipped_titanic_suite_passes_check(data: dict[str, Path], tmp_path: Path):
    result = run_cli(
        "suite", "check", "titanic", "--source", str(data["titanic"]), env=gx_env(copy_gx(tmp_path / "gx"))
    )
    assert_exit(result, 0)
    assert "columns of titanic checked against source" in result.stdout
    assert "ok: no problems found" in result.stdout


def test_check_library_catches_reference_and_argument_problems(tmp_path: Path, data: dict[str, Path]):
    gx = copy_gx(tmp_path / "gx")
    suite_path = gx / "expectations" / "titanic.json"
    suite = json.loads(suite_path.read_text())
    between = next(
        e for e in suite["expectations"] if e["kwargs"].get("column") == "Age" and "max_value" in e["kwargs"]
    )
    between["kwargs"].update(min_value=200, max_value=100)
    in_set = next(e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set")
    del in_set["kwargs"]["value_set"]
    suite["expectations"].append({"type": "expect_column_values_to_be_between", "kwargs": {"column": "Fare"}})
    suite["expectations"].append({"kwargs": {"column": "Fare"}})
    suite_path.write_text(json.dumps(suite))
    vd_path = gx / "validation_definitions" / "titanic.json"
    vd = json.loads(vd_path.read_text())
    vd["data"]["asset"]["name"] = "no_such_asset"
    vd_path.write_text(json.dumps(vd))

    project = load_project(gx, gx / "datasets.yml")
    report = check_suites("titanic", source=str(data["titanic"]), project=project)
    messages = [str(p) for p in report.errors]
    expected = [
        "min_value 200 is greater than max_value 100: no value can pass",
        "missing required argument 'value_set'",
        "min_value and max_value cannot both be None",
        "type missing in expectation configuration",
        "asset 'no_such_asset' is not in datasource 'pandas'",
    ]
    for needle in expected:
        assert any(needle in m for m in messages), (needle, messages)
    assert len(report.errors) == len(expected), messages

    # A validation definition pointing to a deleted suite; without a schema, columns are not checked.
    vd["data"]["asset"]["name"] = "titanic"
    vd["suite"]["name"] = "deleted_suite"
    vd_path.write_text(json.dumps(vd))
    report = check_suites(project=load_project(gx, gx / "datasets.yml"), lakehouse=str(tmp_path / "none"))
    assert any("points to suite 'deleted_suite', which does not exist" in str(p) for p in report.errors)
    assert any("columns of suite titanic not checked" in n for n in report.notes)


@pytest.mark.slow
def test_check_bad_usage_exits_2(tmp_path: Path):
    gx = copy_gx(tmp_path / "gx")
    for args, needle in [
        (["check", "--source", "x.csv"], "--source needs a DATASET"),
        (["check", "nosuch"], "unknown dataset 'nosuch'"),
    ]:
        result = run_cli("suite", *args, env=gx_env(gx))
        assert_exit(result, 2)
        assert needle in result.stderr.strip().splitlines()[-1]
    project = load_project(gx, gx / "datasets.yml")
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        check_suites("titanic", backend="nope", project=project)
    with pytest.raises(ValueError, match="unknown dataset 'nosuch'"):
        show_suite("nosuch", project)


# ----------------------------------------------------------------------------------------- list / show
@pytest.mark.slow
def test_list_and_show(orders_gx: Path):
    env = gx_env(orders_gx)
    listed = run_cli("suite", "list", env=env)
    assert_exit(listed, 0)
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") >= 5}
    assert {"sales", "titanic"} <= set(rows)
    titanic_row = [cell.strip() for cell in rows["titanic"].split("│")[1:-1]]
    assert titanic_row[:4] == ["titanic", "titanic", "35", "titanic"]

    shown = run_cli("suite", "show", "titanic", env=env)
    assert_exit(shown, 0)
    age_null = next(x for x in shown.stdout.splitlines() if "expect_column_values_to_not_be_null" in x and "Age" in x)
    assert "0.7" in age_null and "legitimately missing" in age_null
    assert '["C", "Q", "S"]' in shown.stdout  # value sets are shown as written, not eaten as Rich markup
    assert "35 expectations" in shown.stdout
    # Then the table suite of the same checkpoint; named directly, it is shown alone.
    assert shown.stdout.index("suite titanic (") < shown.stdout.index("suite titanic_table (")
    assert '{"$PARAMETER": "main_fare_max * 2"}' in shown.stdout and "2 expectations" in shown.stdout
    alone = run_cli("suite", "show", "titanic_table", env=env)
    assert_exit(alone, 0)
    assert "suite titanic (" not in alone.stdout and "2 expectations" in alone.stdout


# ---------------------------------------------------------------------------------------------------- diff
def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.mark.slow
def test_diff_against_the_last_commit(tmp_path: Path):
    repo = tmp_path / "repo"
    gx = copy_gx(repo / "gx")
    _git(repo, "init", "-q")
    _git(repo, "add", "gx")
    _git(repo, "commit", "-q", "-m", "suites")
    env = gx_env(gx)
    unchanged = run_cli("suite", "diff", "titanic", env=env).stdout
    assert unchanged.count("no changes") == 2  # the batch suite and the table suite
    assert "suite titanic_table:" in unchanged

    path = gx / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    exps = suite["expectations"]
    age = next(e for e in exps if e["kwargs"].get("column") == "Age" and "mostly" in e["kwargs"])
    age["kwargs"]["mostly"] = 0.8
    embarked = next(e for e in exps if e["kwargs"].get("column") == "Embarked" and "value_set" in e["kwargs"])
    embarked["kwargs"]["value_set"] = ["C", "Q", "S", "X"]
    removed = next(e for e in exps if e["type"] == "expect_column_values_to_be_unique")
    exps.remove(removed)
    exps.append({"type": "expect_column_values_to_be_between", "kwargs": {"column": "Fare", "max_value": 600}})
    path.write_text(json.dumps(suite, indent=2))

    result = run_cli("suite", "diff", "titanic", env=env)
    assert_exit(result, 0)
    out = result.stdout
    assert "against HEAD" in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any("changed" in r and "Age" in r and "mostly: 0.7 -> 0.8" in r for r in rows), out
    assert any("changed" in r and "Embarked" in r and 'value_set: +["X"]' in r for r in rows), out
    assert any("removed" in r and "expect_column_values_to_be_unique" in r and "PassengerId" in r for r in rows), out
    assert any("added" in r and "expect_column_values_to_be_between" in r and "Fare" in r for r in rows), out
    assert "1 added, 1 removed, 2 changed" in out
    assert out.count("no changes") == 1  # the table suite did not change

    # A suite that was never committed, and a gx dir outside any repository.
    new = gx / "expectations" / "drafted.json"
    new.write_text(json.dumps({"name": "drafted", "expectations": [removed]}))
    drafted = run_cli("suite", "diff", "drafted", env=env)
    assert_exit(drafted, 0)
    assert "is new" in drafted.stdout and "1 added" in drafted.stdout
    outside = run_cli("suite", "diff", "titanic", env=gx_env(copy_gx(tmp_path / "plain" / "gx")))
    assert_exit(outside, 0)
    assert "not in a git repository" in outside.stdout


def test_diff_matches_by_id_then_by_type_and_column():
    old = [
        {"id": "a", "type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "y", "min_value": 0}},
    ]
    new = [
        # Same id, column renamed: one change, not a removal plus an addition.
        {"id": "a", "type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x2"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "y", "min_value": 1}},
    ]
    changes = diff_expectations(old, new)
    assert [(c.kind, c.column, c.details) for c in changes] == [
        ("changed", "x2", ['column: "x" -> "x2"']),
        ("changed", "y", ["min_value: 0 -> 1"]),
    ]


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_dataset_declared_by_init_runs_end_to_end(orders_gx: Path, prefect_api: str, tmp_path: Path):
    lake = tmp_path / "lake"
    env = {**gx_env(orders_gx), "PREFECT_API_URL": prefect_api}
    result = run_cli("run", "sales", "--lakehouse", str(lake), env=env)
    assert_exit(result, 0)
    assert "published sales: 2000 rows" in result.stdout
    client = connect("local", lake)
    assert client.get_table("sales", MAIN, namespace="bauplan").records == 2000
    assert [b.name for b in client.get_branches()] == [MAIN]
    # Now the table exists, `check` takes the columns from it.
    report = check_suites("sales", lakehouse=str(lake), project=load_project(orders_gx, orders_gx / "datasets.yml"))
    assert report.errors == []
    assert any("checked against table bauplan.sales on main" in n for n in report.notes)
