"""The row-metric pushdown through the lakehouse's own SQL (``client.query``) gives GX's own pandas results.

On a backend that does not hand out its Parquet files (Bauplan) the audit sends the pushdown's SQL to the
backend's engine (``flows.audit.pushdown.QueryTableMetrics``) instead of pulling the table into pandas. The
hosted service is unreachable here, so ``QueryOnlyClient`` stands in for it: the real embedded lakehouse seen
only through the ``LakehouseClient`` protocol (no ``ReadsTableFiles``), counting what its ``scan`` and
``query`` hand back. Each case audits one table twice, through the stand-in (``row_metrics == "query"``) and
with GX on the full pandas frame (``pushdown=False``), and compares every expectation's full result JSON.

Row positions (GX's ``partial_unexpected_index_list``) are the engine's scan order on the query path
(``row_number() OVER ()``), which no SQL engine promises to be ``scan``'s order. The tables compared field by
field, positions included, are therefore each held in a single data file, where that order is defined; the
one table of two files (an append's table suite) is compared with the positions left out.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import duckdb
import great_expectations.expectations as gxe
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_audit_pushdown import make_checkpoint

from flows.audit import AuditResult, audit_table
from flows.audit.gx_project import BATCH, TABLE
from flows.lakehouse import MAIN, LakehouseClient, ReadsTableFiles, connect
from flows.lakehouse.protocol import LakehouseClient as LakehouseProtocol

NAMESPACE = "bauplan"
WEIRD = 'weird "col"'
UMLAUT = "größe"  # a column name pyiceberg stores under another name
ROWS = 60
# Every name of the lakehouse protocol: what a backend without data files offers (Bauplan's).
PROTOCOL = frozenset(name for name in vars(LakehouseProtocol) if not name.startswith("_"))


class QueryOnlyClient:
    """The embedded lakehouse through the ``LakehouseClient`` protocol only, recording what crosses from it:
    the rows of every ``scan`` and, per ``query``, its ref and the rows it returned."""

    def __init__(self, inner: LakehouseClient) -> None:
        self._inner = inner
        self.scans: list[int] = []
        self.queries: list[tuple[str, str, int]] = []  # (ref, sql, rows returned)

    def scan(self, table: str, **kwargs: Any) -> pa.Table:
        result = self._inner.scan(table, **kwargs)
        self.scans.append(result.num_rows)
        return result

    def query(self, query: str, **kwargs: Any) -> pa.Table:
        result = self._inner.query(query, **kwargs)
        self.queries.append((kwargs["ref"], query, result.num_rows))
        return result

    def __getattr__(self, name: str) -> Any:
        if name not in PROTOCOL:
            raise AttributeError(name)  # data_files, scan_data_files, fit_source, add_new_columns, root
        return getattr(self._inner, name)

    def reset(self) -> None:
        self.scans.clear()
        self.queries.clear()


def edge_table(rows: int, *, bad: bool) -> pa.Table:
    ids: list[int | None] = list(range(rows))
    scores: list[float | None] = [(i % 10) / 10 for i in range(rows)]
    words = ["O'Brien", 'say "hi"', "Zoë", "日本語", "🎉 party", "why?", ""]
    names: list[str | None] = [words[i % len(words)] for i in range(rows)]
    weird: list[str | None] = ["a" if i % 2 else "b" for i in range(rows)]
    sizes: list[float | None] = [float(i) for i in range(rows)]
    if bad:
        ids[5] = ids[9] = None
        ids[7] = ids[40] = 3  # duplicates
        ids[11] = 99_999  # out of range
        scores[3] = scores[30] = float("nan")  # NaN: null to pandas, a number to DuckDB
        scores[4] = None
        scores[8] = 1.0  # strict_max excludes it
        names[6] = "Zoe"  # unicode: not the same as Zoë
        names[13] = None
        names[20] = "日本"
        weird[10] = None
        weird[12] = "c"
        sizes[2] = float("nan")
        sizes[50] = -0.5
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "score": pa.array(scores, pa.float64()),
            "name": pa.array(names, pa.string()),
            WEIRD: pa.array(weird, pa.string()),
            UMLAUT: pa.array(sizes, pa.float64()),
            "none_i": pa.array([None] * rows, pa.int64()),  # all null: float64 in pandas
            "none_f": pa.array([None] * rows, pa.float64()),
            "none_s": pa.array([None] * rows, pa.string()),
        }
    )


def edge_expectations() -> list:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="id", mostly=0.5),
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToNotBeNull(column="name"),
        gxe.ExpectColumnValuesToNotBeNull(column=WEIRD),
        gxe.ExpectColumnValuesToNotBeNull(column="none_i"),
        gxe.ExpectColumnValuesToNotBeNull(column="none_f"),
        gxe.ExpectColumnValuesToNotBeNull(column="none_s"),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeUnique(column="name"),
        gxe.ExpectColumnValuesToBeUnique(column="none_i"),
        gxe.ExpectColumnValuesToBeBetween(column="id", min_value=0, max_value=5000),
        gxe.ExpectColumnValuesToBeBetween(column="id", min_value=-1.5, max_value=2**62),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1.0, strict_max=True),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0.05, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column=UMLAUT, min_value=0.1, max_value=1e300),
        gxe.ExpectColumnValuesToBeBetween(column="none_f", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="name", value_set=["O'Brien", 'say "hi"', "Zoë", "日本語", "why?", ""]),
        gxe.ExpectColumnValuesToBeInSet(column=WEIRD, value_set=["a", "b"]),
        gxe.ExpectColumnValuesToBeInSet(column="id", value_set=[1.0, 2, 3, 0.1], mostly=0.0),
        gxe.ExpectColumnValuesToBeInSet(column="none_s", value_set=["x"]),
        gxe.ExpectColumnValuesToBeOfType(column="id", type_="float64"),
        gxe.ExpectColumnValuesToBeOfType(column="name", type_="str"),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["id", "score", "name", WEIRD, UMLAUT, "none_i", "none_f", "none_s"]
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=10_000),
        gxe.ExpectColumnToExist(column="missing"),
    ]


@pytest.fixture(scope="module")
def gx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's GX project, for this module's checkpoints."""
    repo_gx = Path(__file__).resolve().parents[1] / "gx"
    return Path(
        shutil.copytree(
            repo_gx, tmp_path_factory.mktemp("gxquery") / "gx", ignore=shutil.ignore_patterns("uncommitted")
        )
    )


def report(result: AuditResult) -> str:
    """The gate's markdown report of a blocked run audited with ``result``."""
    from flows.gate.outcome import GateOutcome
    from flows.reports.markdown import render_markdown

    outcome = GateOutcome(
        dataset="edge", branch="b", source="s", rows=ROWS, audited_commit="c", published_commit=None, audit=result
    )
    return render_markdown(outcome)


def _import(client, branch: str, table: pa.Table, path: Path, *, rows: bool = True) -> None:
    pq.write_table(table, path)
    client.create_branch(branch, MAIN)
    client.create_table("edge", str(path), branch=branch, namespace=NAMESPACE)
    if rows:
        client.import_data("edge", str(path), branch=branch, namespace=NAMESPACE)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    """One embedded lakehouse: a branch per case, each table in one data file (see the module docstring)."""
    root = tmp_path_factory.mktemp("lhquery")
    client = connect("local", root / "lakehouse")
    _import(client, "edge.good", edge_table(ROWS, bad=False), root / "good.parquet")
    _import(client, "edge.bad", edge_table(ROWS, bad=True), root / "bad.parquet")
    _import(client, "edge.empty", edge_table(ROWS, bad=True), root / "empty.parquet", rows=False)
    _import(client, "edge.big", edge_table(3000, bad=True), root / "big.parquet")
    return client


@pytest.fixture
def remote(local) -> QueryOnlyClient:
    return QueryOnlyClient(local)


def results_json(result: AuditResult, role: str = BATCH, *, positions: bool = True) -> list[str]:
    rows = []
    for r in result.suite_audit(role).validation_result.results:
        d = r.to_json_dict()
        d.pop("meta", None)
        if not positions:
            d.get("result", {}).pop("partial_unexpected_index_list", None)
        rows.append(json.dumps(d, sort_keys=True, default=str))
    return rows


def audit_both(remote, local, gx_dir: Path, branch: str, checkpoint: str, **options: Any):
    kwargs = dict(ref=branch, namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    return (
        audit_table(remote, "edge", run_name=f"query-{branch}", **kwargs, **options),
        audit_table(local, "edge", pushdown=False, run_name=f"plain-{branch}", **kwargs),
    )


def test_the_stand_in_has_no_data_files(local, remote) -> None:
    assert isinstance(local, ReadsTableFiles) and not isinstance(remote, ReadsTableFiles)
    for branch in ("edge.good", "edge.bad", "edge.big"):
        assert len(local.data_files("edge", ref=branch, namespace=NAMESPACE)[1]) == 1  # positions are defined
    assert local.data_files("edge", ref="edge.empty", namespace=NAMESPACE)[1] == []


RESULT_FORMATS = {
    "basic": {"result_format": "BASIC"},
    "summary": {"result_format": "SUMMARY", "partial_unexpected_count": 7},
}


@pytest.mark.parametrize("result_format", sorted(RESULT_FORMATS))
@pytest.mark.parametrize("branch", ["edge.good", "edge.bad", "edge.empty"])
def test_query_results_equal_gx_on_pandas(remote, local, gx_dir: Path, branch: str, result_format: str) -> None:
    checkpoint = make_checkpoint(gx_dir, f"edge_q_{result_format}", edge_expectations(), RESULT_FORMATS[result_format])
    pushed, plain = audit_both(remote, local, gx_dir, branch, checkpoint)  # auto mode: pushed down at any size
    assert pushed.row_metrics == "query" and plain.row_metrics == "pandas"
    assert pushed.suite_audit(BATCH).row_metrics_fallback is None
    assert results_json(pushed) == results_json(plain)
    assert pushed.statistics == plain.statistics
    assert remote.scans and max(remote.scans) <= 1  # only the schema was scanned (one row)
    if branch == "edge.bad":
        failed = {(e.expectation_type, e.column) for e in pushed.failed}
        assert failed >= {
            ("expect_column_values_to_not_be_null", "score"),
            ("expect_column_values_to_not_be_null", "none_s"),
            ("expect_column_values_to_be_unique", "id"),
            ("expect_column_values_to_be_between", "id"),
            ("expect_column_values_to_be_between", "score"),
            ("expect_column_values_to_be_between", UMLAUT),
            ("expect_column_values_to_be_in_set", "name"),
            ("expect_column_values_to_be_in_set", WEIRD),
        }
        unique = next(e for e in pushed.failed if e.expectation_type.endswith("_be_unique") and e.column == "id")
        assert unique.unexpected_count == 3
        assert unique.partial_unexpected_index_list == ([3, 7, 40] if result_format == "summary" else [])
        nan = next(e for e in pushed.failed if e.expectation_type.endswith("_not_be_null") and e.column == "score")
        assert nan.unexpected_count == 3  # two NaNs and a null
    if branch == "edge.empty":
        assert pushed.suite_audit(BATCH).rows == 0


def test_the_batch_markers_name_the_ref_not_a_zero_row_frame(remote, local, gx_dir: Path) -> None:
    checkpoint = make_checkpoint(gx_dir, "edge_q_markers", edge_expectations())
    pushed, _ = audit_both(remote, local, gx_dir, "edge.good", checkpoint)
    markers = pushed.validation_result.meta["batch_markers"]
    assert "pandas_data_fingerprint" not in markers and "parquet_files_fingerprint" not in markers
    assert len(markers["table_ref_fingerprint"]) == 32


def test_no_table_crosses_only_counts_and_samples(remote, local, gx_dir: Path) -> None:
    checkpoint = make_checkpoint(gx_dir, "edge_q_big", edge_expectations())
    pushed, plain = audit_both(remote, local, gx_dir, "edge.big", checkpoint)
    assert pushed.row_metrics == "query" and not pushed.success
    assert results_json(pushed) == results_json(plain)
    assert remote.scans == [1]  # the schema, from one row
    audit_queries = [(sql, n) for _, sql, n in remote.queries if "row_number() OVER ()" in sql or "FILTER" in sql]
    assert audit_queries  # the aggregate pass and the samples went to the engine
    assert max(n for _, _, n in remote.queries) <= 20  # GX's partial_unexpected_count: never more rows than a sample
    assert sum(n for _, _, n in remote.queries) < 300  # of a table of 3000 rows

    remote.reset()
    never = audit_table(remote, "edge", ref="edge.big", namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir,
                        pushdown=False)  # fmt: skip
    assert never.row_metrics == "pandas" and remote.scans == [3000]  # what the query path saves


FALLBACKS = {
    "aggregate_metric": (
        [gxe.ExpectColumnValuesToNotBeNull(column="id"), gxe.ExpectColumnMeanToBeBetween(column="score", max_value=1)],
        None,
        "expect_column_mean_to_be_between (score)",
    ),
    "complete_result_format": (
        [gxe.ExpectColumnValuesToBeInSet(column="name", value_set=["x"])],
        {"result_format": "COMPLETE"},
        "expect_column_values_to_be_in_set (name)",
    ),
    "value_with_no_literal": (  # client.query binds no parameters, and SQL has no literal for a string holding NUL
        [gxe.ExpectColumnValuesToBeInSet(column=WEIRD, value_set=["a", "b", "a\x00b"])],
        None,
        f"expect_column_values_to_be_in_set ({WEIRD})",
    ),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_what_the_query_path_cannot_compute_runs_on_pandas_and_says_why(remote, local, gx_dir: Path, case: str) -> None:
    expectations, result_format, why = FALLBACKS[case]
    checkpoint = make_checkpoint(gx_dir, f"edge_q_{case}", expectations, result_format)
    pushed, plain = audit_both(remote, local, gx_dir, "edge.bad", checkpoint)
    assert pushed.row_metrics == "pandas"
    fallback = pushed.suite_audit(BATCH).row_metrics_fallback
    assert fallback is not None and fallback.startswith("the pushdown cannot answer: ") and why in fallback
    assert results_json(pushed) == results_json(plain)
    assert remote.scans[-1] == ROWS  # the table, pulled as before
    assert f"- **Row metrics**: computed by GX on the table read into pandas, because {fallback}" in report(pushed)


def test_the_report_says_the_lakehouse_engine_computed_the_row_metrics(remote, local, gx_dir: Path) -> None:
    checkpoint = make_checkpoint(gx_dir, "edge_q_report", edge_expectations())
    pushed = audit_table(remote, "edge", ref="edge.bad", namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    assert "- **Row metrics**: computed by the lakehouse's SQL engine on the audited commit" in report(pushed)


def test_modes_on_the_query_path(remote, gx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """auto pushes down at any size (pulling the table is the expensive part), never pulls it, always pushes."""
    checkpoint = make_checkpoint(gx_dir, "edge_q_modes", edge_expectations())
    kwargs = dict(ref="edge.good", namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    assert audit_table(remote, "edge", **kwargs).row_metrics == "query"  # 60 rows, far below PUSHDOWN_MIN_ROWS
    for mode, expected in (("never", "pandas"), ("always", "query"), ("auto", "query")):
        monkeypatch.setenv("WAP_AUDIT_PUSHDOWN", mode)
        result = audit_table(remote, "edge", **kwargs)
        assert result.row_metrics == expected and result.suite_audit(BATCH).row_metrics_fallback is None


def test_an_append_queries_the_staged_batch_and_the_table(tmp_path: Path, shipped_gx: Path) -> None:
    """An append on a backend without data files: the batch suite queries the staging branch holding only the batch
    (``gate/staging.py``), the table suite the gate branch; both as GX on pandas says (the table, of two files,
    without its row positions: see the module docstring)."""
    from flows.datasets import get_dataset
    from flows.demo.data import corrupt, generate_titanic
    from flows.gate.staging import stage_batch

    local = connect("local", tmp_path / "lake")
    local.create_branch("setup", from_ref=MAIN)
    main_rows = str(tmp_path / "main.parquet")
    pq.write_table(generate_titanic(300, seed=1, first_id=1), main_rows)
    local.create_table("titanic", main_rows, branch="setup")
    local.import_data("titanic", main_rows, branch="setup")
    local.merge_branch("setup", MAIN)
    batch = corrupt(generate_titanic(50, seed=2, first_id=290), "fare_out_of_range")  # ids 290..300 collide
    source = str(tmp_path / "batch.parquet")
    pq.write_table(batch, source)
    remote = QueryOnlyClient(local)
    base = remote.create_branch("alice.wap_titanic_0000beef", from_ref=MAIN).hash
    remote.import_data("titanic", source, branch="alice.wap_titanic_0000beef")
    commit = remote.get_branch("alice.wap_titanic_0000beef").hash
    dataset = dataclasses.replace(get_dataset("titanic"), mode="append")
    staged = stage_batch(remote, dataset, source, "alice.wap_titanic_0000beef", base)
    ref = f"alice.wap_titanic_0000beef@{commit}"
    assert len(local.data_files("titanic", ref=staged)[1]) == 1 and len(local.data_files("titanic", ref=ref)[1]) == 2

    kwargs = dict(ref=ref, checkpoint="titanic", gx_dir=shipped_gx, appended=True, published=f"{MAIN}@{base}")
    remote.reset()
    pushed = audit_table(remote, "titanic", batch_ref=staged, **kwargs)
    plain = audit_table(local, "titanic", pushdown=False, **kwargs)
    assert not pushed.success and not plain.success
    assert {s.validates: s.row_metrics for s in pushed.suites} == {BATCH: "query", TABLE: "query"}
    assert pushed.suite_audit(BATCH).rows == 50 and pushed.suite_audit(TABLE).rows == 350
    assert results_json(pushed, BATCH) == results_json(plain, BATCH)
    assert results_json(pushed, TABLE, positions=False) == results_json(plain, TABLE, positions=False)
    unique = next(e for e in pushed.expectations if e.validates == TABLE and e.expectation_type.endswith("_unique"))
    assert not unique.success and unique.unexpected_count == 22  # 11 ids on main and again in the batch
    sampled = {r for r, sql, _ in remote.queries if "row_number() OVER ()" in sql}
    assert sampled == {staged, ref}  # each suite's failing samples, from its own ref
    assert max(remote.scans) <= 1


@pytest.mark.parametrize(
    "value",
    [0, -7, 2**63 - 1, -(2**63), 0.1, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 2.5, 1 / 3, "", "O'Brien",
     'say "hi"', "Zoë 日本語 🎉", "why?", "back\\slash", "line\nbreak"],
)  # fmt: skip
def test_values_are_inlined_as_exact_literals(value: Any) -> None:
    from flows.audit.pushdown import _sql_value

    literal = _sql_value(value)
    assert literal is not None
    got = duckdb.connect().execute(f"SELECT {literal}").fetchall()[0][0]
    assert got == value and type(got) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, value)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), -float("inf"), 2**63, -(2**63) - 1, True, None, "a\x00b"]
)
def test_values_without_an_exact_literal_are_not_inlined(value: Any) -> None:
    from flows.audit.pushdown import _sql_value

    assert _sql_value(value) is None


# ------------------------------------------------------------ through the Bauplan backend, on its stand-in SDK


@pytest.fixture(scope="module")
def bauplan(tmp_path_factory: pytest.TempPathFactory):
    """``BauplanClient`` over ``EmbeddedBauplanSDK`` (tests/bauplan_standin.py): the real backend's code, the SDK
    played by the embedded lakehouse; a branch per case, each imported from one S3 object (one data file)."""
    from bauplan_standin import FAKE_API_KEY, EmbeddedBauplanSDK, put_s3_object

    from flows.lakehouse.bauplan_backend import BauplanClient

    sdk = EmbeddedBauplanSDK(api_key=FAKE_API_KEY, root=tmp_path_factory.mktemp("bauplan") / "root")
    client = BauplanClient(client=sdk)
    for case, rows, imported in (("good", ROWS, True), ("bad", ROWS, True), ("empty", ROWS, False)):
        uri = f"s3://lake/edge/{case}.parquet"
        put_s3_object(sdk, uri, edge_table(rows, bad=case != "good"))
        branch = f"{sdk.username}.edge_{case}"
        client.create_branch(branch, from_ref=MAIN)
        client.create_table("edge", uri, branch=branch, namespace=NAMESPACE)
        if imported:
            client.import_data("edge", uri, branch=branch, namespace=NAMESPACE)
    return sdk, client


@pytest.mark.parametrize("case", ["good", "bad", "empty"])
def test_through_the_bauplan_backend_results_equal_gx_on_pandas(bauplan, gx_dir: Path, case: str) -> None:
    sdk, client = bauplan
    assert not isinstance(client, ReadsTableFiles)
    branch = f"{sdk.username}.edge_{case}"
    ref = f"{branch}@{client.get_branch(branch).hash}"
    assert len(sdk.local.data_files("edge", ref=ref, namespace=NAMESPACE)[1]) == (0 if case == "empty" else 1)
    checkpoint = make_checkpoint(gx_dir, "edge_q_bauplan", edge_expectations(), RESULT_FORMATS["summary"])
    kwargs = dict(ref=ref, namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    sdk.calls.clear()
    pushed = audit_table(client, "edge", run_name=f"bauplan-{case}", **kwargs)
    plain = audit_table(sdk.local, "edge", pushdown=False, run_name=f"plain-{case}", **kwargs)
    assert pushed.row_metrics == "query" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)
    assert pushed.statistics == plain.statistics and pushed.success is plain.success is False
    scans = [arguments for method, arguments in sdk.calls if method == "scan"]
    assert scans and all(arguments.get("limit") == 1 for arguments in scans)  # the schema only
    assert any(method == "query" for method, _ in sdk.calls)
