"""`wap validate DATASET --source FILE` judges a file against what `main` publishes, writing nothing.

The CLI in-process on the real embedded lakehouse and the real GX context (a copy of the shipped gx/). No
Prefect: `wap validate` runs no flow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from gate_fixtures import run_cli

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # each test builds GX contexts of its own


@pytest.fixture
def gx_env(tmp_path: Path) -> dict[str, str]:
    target = tmp_path / "gx"
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return {"WAP_GX_DIR": str(target)}


def _published(tmp_path: Path, table: pa.Table) -> Path:
    """A lakehouse whose main holds `table` as bauplan.titanic."""
    lake = tmp_path / "lake"
    client = connect("local", lake)
    source = str(write_csv(table, tmp_path / "main.csv"))
    client.create_branch("alice.load", from_ref=MAIN)
    client.create_table("titanic", source, branch="alice.load")
    client.import_data("titanic", source, branch="alice.load")
    client.merge_branch("alice.load", MAIN)
    client.delete_branch("alice.load")
    return lake


def _validate(source: Path, lake: Path, env: dict[str, str], *args: str):
    return run_cli("validate", "titanic", "--source", str(source), "--lakehouse", str(lake), *args, env=env)


def _unchanged(lake: Path, head: str) -> None:
    client = connect("local", lake)
    assert client.get_branch(MAIN).hash == head
    assert [b.name for b in client.get_branches()] == [MAIN]  # no branch was made


def test_an_append_is_judged_as_main_plus_the_file(tmp_path, gx_env):
    lake = _published(tmp_path, generate_titanic(200, seed=1))
    head = connect("local", lake).get_branch(MAIN).hash

    fresh = write_csv(generate_titanic(40, seed=2, first_id=201), tmp_path / "fresh.csv")
    passed = _validate(fresh, lake, gx_env, "--mode", "append")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "passed: 37/37 expectations" in passed.stdout

    colliding = write_csv(generate_titanic(40, seed=3, first_id=181), tmp_path / "colliding.csv")  # 181..200 on main
    blocked = _validate(colliding, lake, gx_env, "--mode", "append")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    last = blocked.stderr.strip().splitlines()[-1]
    assert last.startswith("blocked: titanic: 1 of 37 expectations failed: titanic_table on the table as it would")
    assert "'PassengerId': 40 unexpected value(s)" in last and "e.g. 181, 182, 183, 184, 185" in last
    # Replace mode (the dataset's own): the file alone is the table, so its ids collide with nothing.
    assert _validate(colliding, lake, gx_env).returncode == 0
    _unchanged(lake, head)


def test_the_drift_rule_compares_the_file_with_main(tmp_path, gx_env):
    """main's highest fare is 100: the shipped rule allows up to 200. Fares of 300 pass the batch suite (up to
    1000) and fail the drift rule; judged on its own (no lakehouse) the same file passes."""
    on_main = generate_titanic(200, seed=1)
    fares = on_main.column("Fare")
    on_main = on_main.set_column(
        on_main.schema.get_field_index("Fare"), "Fare", pc.multiply(fares, 100.0 / pc.max(fares).as_py())
    )
    lake = _published(tmp_path, on_main)
    head = connect("local", lake).get_branch(MAIN).hash
    pricey = generate_titanic(30, seed=2, first_id=201)
    pricey = pricey.set_column(pricey.schema.get_field_index("Fare"), "Fare", pa.array([300.0] * 30))
    source = write_csv(pricey, tmp_path / "pricey.csv")

    blocked = _validate(source, lake, gx_env)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    last = blocked.stderr.strip().splitlines()[-1]
    assert "titanic_table on the table as it would be published: expect_column_values_to_be_between on column" in last
    assert "'Fare' (min_value=0.0, max_value=200.0): 30 unexpected value(s)" in last, last
    _unchanged(lake, head)

    nowhere = tmp_path / "no-lakehouse"
    alone = _validate(source, nowhere, gx_env)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert not nowhere.exists()  # validate creates no lakehouse


def test_an_append_that_does_not_fit_main_is_blocked_by_the_schema_check(tmp_path, gx_env):
    lake = _published(tmp_path, generate_titanic(50, seed=1))
    head = connect("local", lake).get_branch(MAIN).hash
    batch = generate_titanic(10, seed=2, first_id=51).drop_columns(["Cabin"])
    result = _validate(write_csv(batch, tmp_path / "no_cabin.csv"), lake, gx_env, "--mode", "append")
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "missing columns Cabin" in last, last
    _unchanged(lake, head)
