"""Tests of the embedded Bauplan stand-in (tests/bauplan_standin.py): that it looks like the installed SDK
(signatures, return objects' attributes, exception classes) and behaves like the service (branch rules, S3
sources, namespaces, merges, commits, faults), in-process and in a subprocess."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import bauplan
import bauplan.exceptions as bx
import bauplan.schema as bs
import pyarrow as pa
import pytest
from bauplan_standin import (
    FAKE_API_KEY,
    IMPLEMENTED_METHODS,
    NO_EFFECT_KEYWORDS,
    REAL_CLIENT,
    STANDIN_CLASSES,
    TRANSPORT_ERROR,
    EmbeddedBauplanSDK,
    Faults,
    bauplan_standin,  # noqa: F401  (the fixture)
    http_error,
    public_attributes,
    put_s3_object,
    recorded_calls,
    s3_path,
    subprocess_env,
)

ROWS = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
MORE = pa.table({"id": [4, 5], "name": ["d", "e"]})
URI = "s3://lake/trips/part-0.parquet"
MORE_URI = "s3://lake/trips-more/part-1.parquet"


@pytest.fixture
def sdk(tmp_path: Path) -> EmbeddedBauplanSDK:
    return EmbeddedBauplanSDK(api_key=FAKE_API_KEY, root=tmp_path / "root")


@pytest.fixture
def seeded(sdk: EmbeddedBauplanSDK) -> EmbeddedBauplanSDK:
    """main holds shop.trips (3 rows); tester.dev branches from it; a tag v1 on main."""
    put_s3_object(sdk, URI, ROWS)
    put_s3_object(sdk, MORE_URI, MORE)
    admin = sdk.as_user("admin", admin=True)
    admin.create_namespace("shop", "main")
    admin.create_table("trips", URI, branch="main", namespace="shop")
    assert admin.import_data("trips", URI, branch="main", namespace="shop").job_status == "SUCCESS"
    sdk.create_branch("tester.dev", "main")
    sdk.create_tag("v1", "main")
    sdk.calls.clear()
    return sdk


def sdk_error(call: Any, cls: type[BaseException]) -> BaseException:
    with pytest.raises(cls) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__} raised, {cls.__name__} expected"
    return info.value


# ----------------------------------------------------------------------------- the SDK's shape


@pytest.mark.parametrize("name", IMPLEMENTED_METHODS)
def test_implemented_methods_carry_the_real_signature(name: str) -> None:
    assert inspect.signature(getattr(EmbeddedBauplanSDK, name)) == inspect.signature(getattr(REAL_CLIENT, name))


def test_every_public_client_method_exists_and_the_rest_do_not(sdk: EmbeddedBauplanSDK) -> None:
    real = {n for n in public_attributes(REAL_CLIENT) if callable(getattr(REAL_CLIENT, n))}
    assert real <= set(dir(sdk))
    assert {"create_branch", "merge_branch", "import_data", "query", "scan"} <= set(IMPLEMENTED_METHODS)
    with pytest.raises(NotImplementedError, match="bauplan.Client.run"):
        sdk.run("./project", ref="main")
    with pytest.raises(TypeError):  # still bound against the real signature first
        sdk.run("./project", no_such_keyword=1)
    with pytest.raises(AttributeError):
        sdk.no_such_method  # noqa: B018


def test_a_keyword_the_sdk_lacks_is_a_type_error(seeded: EmbeddedBauplanSDK) -> None:
    with pytest.raises(TypeError, match="namespace"):
        seeded.create_branch("tester.x", "main", namespace="shop")
    with pytest.raises(TypeError):
        seeded.get_branches("positional")  # keyword-only in the SDK
    with pytest.raises(TypeError):
        seeded.merge_branch("tester.dev")  # into_branch missing
    assert not seeded.has_branch("tester.x")


def test_a_keyword_the_stand_in_does_not_honour_is_refused_unless_it_has_no_effect(seeded: EmbeddedBauplanSDK) -> None:
    with pytest.raises(NotImplementedError, match="partitioned_by"):
        seeded.create_table("t2", URI, branch="tester.dev", namespace="shop", partitioned_by="id")
    with pytest.raises(NotImplementedError, match="filter_by_message"):
        seeded.get_commits("main", filter_by_message="x")
    assert "client_timeout" in NO_EFFECT_KEYWORDS
    assert seeded.query("SELECT 1 AS one", ref="main", client_timeout=5, priority=3, cache="off").num_rows == 1


def _calls(sdk: EmbeddedBauplanSDK) -> dict[str, Any]:
    """One call of every implemented method, by keyword (tester.dev holds shop.trips; v1 tags main)."""
    return {
        "info": lambda: sdk.info(client_timeout=10),
        "create_branch": lambda: sdk.create_branch(branch="tester.new", from_ref="main", if_not_exists=True),
        "has_branch": lambda: sdk.has_branch(branch="tester.dev"),
        "get_branch": lambda: sdk.get_branch(branch="tester.dev"),
        "get_branches": lambda: sdk.get_branches(name="dev", user="tester", limit=5),
        "create_tag": lambda: sdk.create_tag(tag="v2", from_ref="main", if_not_exists=True),
        "has_tag": lambda: sdk.has_tag(tag="v1"),
        "get_tag": lambda: sdk.get_tag(tag="v1"),
        "get_tags": lambda: sdk.get_tags(filter_by_name="v", limit=5),
        "get_commits": lambda: sdk.get_commits(ref="main", filter_by_properties={"a": "b"}, limit=2),
        "get_tables": lambda: sdk.get_tables(ref="main", filter_by_name="trips", filter_by_namespace="shop", limit=1),
        "has_table": lambda: sdk.has_table(table="trips", ref="main", namespace="shop"),
        "get_table": lambda: sdk.get_table(table="trips", ref="main", namespace="shop"),
        "has_namespace": lambda: sdk.has_namespace(namespace="shop", ref="main"),
        "get_namespace": lambda: sdk.get_namespace(namespace="shop", ref="main"),
        "get_namespaces": lambda: sdk.get_namespaces(ref="main", filter_by_name="s", limit=3),
        "create_namespace": lambda: sdk.create_namespace(
            namespace="lab", branch="tester.dev", commit_body="b", commit_properties={"k": "v"}, if_not_exists=True
        ),
        "create_table": lambda: sdk.create_table(
            table="more", search_uri=MORE_URI, branch="tester.dev", namespace="shop", replace=True
        ),
        "import_data": lambda: sdk.import_data(
            table="more", search_uri=MORE_URI, branch="tester.dev", namespace="shop"
        ),
        "merge_branch": lambda: sdk.merge_branch(
            source_ref="tester.dev",
            into_branch="main",
            commit_message="m",
            commit_body="body",
            commit_properties={"k": "v"},
        ),
        "revert_table": lambda: sdk.revert_table(
            table="trips",
            namespace="shop",
            source_ref="v1",
            into_branch="tester.dev",
            replace=True,
            commit_body="revert",
            commit_properties={"k": "v"},
        ),
        "scan": lambda: sdk.scan(
            table="trips", ref="main", columns=["id"], filters="id > 1", limit=5, namespace="shop"
        ),
        "query": lambda: sdk.query(query="SELECT id FROM trips", ref="main", max_rows=2, namespace="shop"),
        "delete_table": lambda: sdk.delete_table(
            table="more", branch="tester.dev", namespace="shop", if_exists=True, commit_body="x", commit_properties={}
        ),
        "delete_tag": lambda: sdk.delete_tag(tag="v2", if_exists=True),
        "delete_branch": lambda: sdk.delete_branch(branch="tester.new", if_exists=True),
    }


def test_every_implemented_method_runs_with_its_sdk_keywords(seeded: EmbeddedBauplanSDK) -> None:
    calls = _calls(seeded)
    assert sorted(calls) == sorted(IMPLEMENTED_METHODS)
    seeded.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop")  # so the revert has work to do
    for name, call in calls.items():
        result = call()
        if name in ("get_branches", "get_tags", "get_commits", "get_tables", "get_namespaces"):
            list(result)
    assert [name for name, _ in seeded.calls][-len(calls) :] == list(calls)


@pytest.mark.parametrize("standin, real", list(STANDIN_CLASSES.items()), ids=lambda c: c.__name__)
def test_return_classes_have_exactly_the_sdk_classes_public_attributes(standin: type, real: type) -> None:
    assert public_attributes(standin) == public_attributes(real)


def test_returned_objects_use_the_sdk_enums_and_shapes(seeded: EmbeddedBauplanSDK) -> None:
    branch = seeded.get_branch("tester.dev")
    assert branch.type == bs.RefType.BRANCH and branch.name == "tester.dev" and len(branch.hash) == 64
    assert seeded.get_tag("v1").type == bs.RefType.TAG
    table = seeded.get_table("shop.trips", "main")
    assert (table.fqn, table.records, table.kind, table.is_managed(), table.is_external()) == (
        "shop.trips",
        3,
        bs.TableKind.Table,
        True,
        False,
    )
    assert [f.name for f in table.fields] == ["id", "name"]
    commit = next(seeded.get_commits("main"))
    assert not hasattr(commit, "hash")
    assert commit.ref.type == bs.RefType.DETACHED and commit.ref.hash == seeded.get_branch("main").hash
    assert commit.author.name == "admin" and commit.parent_hashes
    info = seeded.info()
    assert info.user.username == "tester" and info.client_version


def test_list_methods_return_iterators(seeded: EmbeddedBauplanSDK) -> None:
    for result in (
        seeded.get_branches(),
        seeded.get_commits("main"),
        seeded.get_tables("main"),
        seeded.get_tags(),
        seeded.get_namespaces("main"),
    ):
        assert isinstance(result, types.GeneratorType)
    assert [t.fqn for t in seeded.get_tables("main")] == ["shop.trips"]
    assert [n.name for n in seeded.get_namespaces("main")] == ["bauplan", "shop"]


# ---------------------------------------------------------------------------- Bauplan's rules


def test_branches_must_be_named_for_the_user(sdk: EmbeddedBauplanSDK) -> None:
    for name in ("feature", "main2", "bob.feature", "tester.", "testerx.y"):
        error = sdk_error(lambda n=name: sdk.create_branch(n, "main"), bx.CreateBranchForbiddenError)
        assert error.code == 403 and "tester." in error.message
    assert sdk.create_branch("tester.feature", "main").name == "tester.feature"
    assert sdk.as_user("bob").create_branch("bob.feature", "main").name == "bob.feature"
    assert sdk.as_user("root", admin=True).create_branch("anything", "main").name == "anything"


def test_get_branches_filters_by_creator_name_and_limit(sdk: EmbeddedBauplanSDK) -> None:
    sdk.create_branch("tester.one", "main")
    sdk.create_branch("tester.two", "main")
    sdk.as_user("bob").create_branch("bob.one", "main")
    assert [b.name for b in sdk.get_branches(user="tester")] == ["tester.one", "tester.two"]
    assert [b.name for b in sdk.get_branches(user="bob")] == ["bob.one"]
    assert [b.name for b in sdk.get_branches(name="one")] == ["bob.one", "tester.one"]
    assert len(list(sdk.get_branches(limit=2))) == 2


def test_sources_must_be_s3_uris(seeded: EmbeddedBauplanSDK, tmp_path: Path) -> None:
    local_file = tmp_path / "rows.parquet"
    local_file.write_bytes(b"")
    for uri in ("https://example.org/rows.parquet", str(local_file), f"file://{local_file}", "s3://", "s3://x"):
        error = sdk_error(
            lambda u=uri: seeded.create_table("t2", u, branch="tester.dev", namespace="shop"), bx.InvalidDataError
        )
        assert "S3 URI" in error.message and error.code == 400
        sdk_error(
            lambda u=uri: seeded.import_data("trips", u, branch="tester.dev", namespace="shop"), bx.InvalidDataError
        )
    assert not seeded.has_table("t2", "tester.dev", namespace="shop")


def test_s3_uris_map_under_the_s3_root(sdk: EmbeddedBauplanSDK) -> None:
    path = put_s3_object(sdk, "s3://my-bucket/a/b/rows.csv", ROWS)
    assert path == sdk.root / "s3" / "my-bucket" / "a" / "b" / "rows.csv"
    assert path.read_text().splitlines()[0] == '"id","name"'
    assert s3_path(sdk.s3_root, "s3://my-bucket/a/*.parquet") == sdk.s3_root / "my-bucket" / "a" / "*.parquet"
    assert put_s3_object(sdk.root, "s3://other/x.parquet", path.with_suffix(".csv")).exists()  # copies a file
    admin = sdk.as_user("admin", admin=True)
    admin.create_table("rows", "s3://my-bucket/a/*/*.csv", branch="main")  # a glob, in the default namespace
    assert admin.import_data("rows", "s3://my-bucket/a/b/rows.csv", branch="main").job_status == "SUCCESS"
    assert sdk.get_table("rows", "main", namespace="bauplan").records == 3


def test_a_table_needs_its_namespace_and_a_merged_namespace_exists_on_main(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    sdk_error(lambda: sdk.create_table("t", URI, branch="tester.dev", namespace="lab"), bx.NamespaceNotFoundError)
    sdk_error(lambda: sdk.get_table("t", "tester.dev", namespace="lab"), bx.NamespaceNotFoundError)
    sdk_error(lambda: sdk.has_table("t", "tester.dev", namespace="lab"), bx.NamespaceNotFoundError)
    sdk_error(lambda: list(sdk.get_tables("main", filter_by_namespace="lab")), bx.NamespaceNotFoundError)
    assert sdk.has_namespace("bauplan", "main") and not sdk.has_namespace("lab", "tester.dev")
    assert sdk.create_namespace("lab", "tester.dev").name == "lab"
    sdk_error(lambda: sdk.create_namespace("lab", "tester.dev"), bx.NamespaceExistsError)
    assert sdk.create_namespace("lab", "tester.dev", if_not_exists=True).name == "lab"
    sdk_error(lambda: sdk.create_namespace("lab", "v1"), bx.NotAWriteBranchRefError)
    assert sdk.has_namespace("lab", "tester.dev") and not sdk.has_namespace("lab", "main")
    assert not sdk.has_table("t", "tester.dev", namespace="lab")
    sdk.merge_branch("tester.dev", "main")
    assert sdk.has_namespace("lab", "main") and sdk.get_namespace("lab", "main").name == "lab"


def test_branch_merge_round_trip_with_real_data(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    sdk.create_branch("tester.load", "main")
    sdk.create_namespace("sales", "tester.load")
    created = sdk.create_table("orders", "s3://lake/trips/*.parquet", branch="tester.load", namespace="sales")
    assert created.fqn == "sales.orders" and created.records == 0
    state = sdk.import_data("orders", URI, branch="tester.load", namespace="sales")
    assert (state.job_status, state.error, state.ctx.branch_name) == ("SUCCESS", None, "tester.load")
    assert state.job_id
    assert not sdk.has_namespace("sales", "main")
    merged = sdk.merge_branch("tester.load", "main", commit_message="publish orders", commit_properties={"run": "7"})
    main = sdk.get_branch("main")
    assert (merged.name, merged.hash) == ("main", main.hash)
    assert sdk.scan("orders", ref="main", namespace="sales").to_pylist() == ROWS.to_pylist()
    assert sdk.scan("sales.orders", ref="main", columns=["name"], filters="id >= 2").to_pylist() == [
        {"name": "b"},
        {"name": "c"},
    ]
    assert sdk.query("SELECT count(*) AS n FROM sales.orders", ref="main").to_pylist() == [{"n": 3}]
    top = next(sdk.get_commits("main"))
    assert top.subject == "publish orders" and top.properties["run"] == "7" and len(top.parent_hashes) == 2
    # A past commit and a tag read as refs.
    assert sdk.scan("shop.trips", ref=f"main@{top.parent_hashes[0]}").num_rows == 3
    assert sdk.get_table("trips", "v1", namespace="shop").records == 3
    assert sdk.scan("shop.trips", ref=top.ref).num_rows == 3  # a commit's own (detached) ref


def test_get_commits_filters_by_properties_and_limits(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    for run in ("1", "2", "3"):
        sdk.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop")
        sdk.merge_branch("tester.dev", "main", commit_properties={"wap.run": run, "kind": "publish"})
    found = list(sdk.get_commits("main", filter_by_properties={"kind": "publish"}))
    assert [c.properties["wap.run"] for c in found] == ["3", "2", "1"]
    assert [c.properties["wap.run"] for c in sdk.get_commits("main", filter_by_properties={"wap.run": "2"})] == ["2"]
    assert len(list(sdk.get_commits("main", filter_by_properties={"kind": "publish"}, limit=2))) == 2
    assert len(list(sdk.get_commits("main", limit=1))) == 1


def test_query_max_rows_truncates(seeded: EmbeddedBauplanSDK) -> None:
    assert seeded.query("SELECT * FROM shop.trips ORDER BY id", ref="main", max_rows=2).to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
    ]
    assert seeded.query("SELECT * FROM shop.trips", ref="main").num_rows == 3
    assert seeded.query("SELECT * FROM trips", ref="main", namespace="shop", max_rows=0).num_rows == 0


# ------------------------------------------------------------------------------------ errors


def test_branch_and_tag_errors_are_the_sdk_classes(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    assert sdk_error(lambda: sdk.create_branch("tester.dev", "main"), bx.BranchExistsError).code == 409
    assert sdk.create_branch("tester.dev", "main", if_not_exists=True).name == "tester.dev"
    missing = sdk_error(lambda: sdk.get_branch("tester.nope"), bx.BranchNotFoundError)
    assert (missing.code, missing.type, missing.kind.branch_name) == (404, "BranchNotFound", "tester.nope")
    assert sdk_error(lambda: sdk.create_branch("tester.x", "nope"), bx.RefNotFoundError).kind.input_ref == "nope"
    sdk_error(lambda: sdk.delete_branch("tester.nope"), bx.BranchNotFoundError)
    assert sdk.delete_branch("tester.nope", if_exists=True) is False
    sdk_error(lambda: sdk.as_user("root", admin=True).delete_branch("main"), bx.DeleteBranchForbiddenError)
    assert sdk.has_branch("tester.nope") is False and sdk.has_tag("nope") is False
    sdk_error(lambda: sdk.get_branch("v1"), bx.NotABranchRefError)
    sdk_error(lambda: sdk.delete_branch("v1"), bx.NotABranchRefError)
    sdk_error(lambda: sdk.get_tag("tester.dev"), bx.NotATagRefError)
    assert sdk_error(lambda: sdk.get_tag("v9"), bx.TagNotFoundError).kind.tag_name == "v9"
    sdk_error(lambda: sdk.create_tag("v1", "main"), bx.TagExistsError)
    assert sdk.create_tag("v1", "tester.dev", if_not_exists=True).name == "v1"
    assert sdk.delete_tag("v9", if_exists=True) is False
    sdk_error(lambda: sdk.delete_tag("v9"), bx.TagNotFoundError)
    sdk_error(lambda: sdk.get_commits("nope@" + "0" * 64), bx.RefNotFoundError)
    with pytest.raises(ValueError):
        sdk.has_branch("bad name")


def test_merge_errors(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    same = sdk_error(lambda: sdk.merge_branch("tester.dev", "main"), bx.SameRefError)
    assert same.code == 400
    sdk_error(lambda: sdk.merge_branch("tester.dev", "v1"), bx.NotAWriteBranchRefError)
    sdk_error(lambda: sdk.merge_branch("tester.dev", "tester.nope"), bx.BranchNotFoundError)
    sdk_error(lambda: sdk.merge_branch("tester.nope", "main"), bx.RefNotFoundError)
    admin = sdk.as_user("admin", admin=True)
    sdk.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop")
    admin.import_data("trips", MORE_URI, branch="main", namespace="shop")
    sdk_error(lambda: sdk.merge_branch("tester.dev", "main"), bx.MergeConflictError)


def test_table_errors(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    sdk_error(lambda: sdk.get_table("nope", "main", namespace="shop"), bx.TableNotFoundError)
    sdk_error(lambda: sdk.import_data("nope", URI, branch="tester.dev", namespace="shop"), bx.TableNotFoundError)
    sdk_error(lambda: sdk.create_table("trips", URI, branch="tester.dev", namespace="shop"), bx.TableExistsError)
    sdk_error(lambda: sdk.create_table("t", URI, branch="v1", namespace="shop"), bx.NotAWriteBranchRefError)
    head = sdk.get_branch("main").hash
    sdk_error(lambda: sdk.create_table("t", URI, branch=f"main@{head}", namespace="shop"), bx.NotAWriteBranchRefError)
    sdk_error(lambda: sdk.create_table("t", URI, branch="tester.nope", namespace="shop"), bx.BranchNotFoundError)
    sdk_error(lambda: sdk.get_table("shop.trips", "main", namespace="other"), bx.NamespaceUnresolvedError)
    sdk_error(lambda: sdk.delete_table("nope", "tester.dev", namespace="shop"), bx.TableNotFoundError)
    assert (
        sdk.delete_table("nope", "tester.dev", namespace="shop", if_exists=True).hash
        == sdk.get_branch("tester.dev").hash
    )
    deleted = sdk.delete_table("trips", "tester.dev", namespace="shop", commit_properties={"why": "test"})
    assert deleted.hash == sdk.get_branch("tester.dev").hash
    assert next(sdk.get_commits("tester.dev")).properties["why"] == "test"
    assert not sdk.has_table("trips", "tester.dev", namespace="shop")


def test_a_failed_import_job_is_reported_in_its_state(seeded: EmbeddedBauplanSDK) -> None:
    put_s3_object(seeded, "s3://lake/other/x.parquet", pa.table({"other": [1.5]}))
    before = seeded.get_branch("tester.dev").hash
    state = seeded.import_data("trips", "s3://lake/other/x.parquet", branch="tester.dev", namespace="shop")
    assert state.job_status == "FAILED" and state.error
    state = seeded.import_data("trips", "s3://lake/none/*.parquet", branch="tester.dev", namespace="shop")
    assert state.job_status == "FAILED" and state.error
    assert seeded.get_branch("tester.dev").hash == before
    sdk_error(
        lambda: seeded.create_table("t", "s3://lake/none/*.parquet", branch="tester.dev", namespace="shop"),
        bx.InvalidDataError,
    )


def test_revert_errors(seeded: EmbeddedBauplanSDK) -> None:
    sdk = seeded
    sdk_error(
        lambda: sdk.revert_table("trips", namespace="shop", source_ref="v1", into_branch="tester.dev"), bx.SameRefError
    )
    sdk.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop")
    exists = sdk_error(
        lambda: sdk.revert_table("trips", namespace="shop", source_ref="v1", into_branch="tester.dev"),
        bx.RevertDestinationTableExistsError,
    )
    assert exists.kind.destination_table_name == "shop.trips"
    reverted = sdk.revert_table("trips", namespace="shop", source_ref="v1", into_branch="tester.dev", replace=True)
    assert reverted.name == "tester.dev" and reverted.hash == sdk.get_branch("tester.dev").hash
    assert sdk.get_table("trips", "tester.dev", namespace="shop").records == 3
    sdk.create_branch("tester.other", "main")
    sdk.create_namespace("lab", "tester.other")
    sdk_error(
        lambda: sdk.revert_table(
            "trips", namespace="shop", source_ref="tester.other", into_branch="tester.dev", replace=True
        ),
        bx.RevertIdenticalTableError,
    )


def test_query_and_scan_failures_are_query_errors(seeded: EmbeddedBauplanSDK) -> None:
    sdk_error(lambda: seeded.query("SELECT nope FROM shop.trips", ref="main"), bx.BauplanQueryError)
    sdk_error(lambda: seeded.query("DELETE FROM shop.trips", ref="main"), bx.BauplanQueryError)
    sdk_error(lambda: seeded.scan("nope", ref="main", namespace="shop"), bx.BauplanQueryError)


def test_no_credentials_is_the_sdks_value_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAUPLAN_API_KEY", raising=False)
    monkeypatch.delenv("BAUPLAN_PROFILE", raising=False)
    with pytest.raises(ValueError, match="No API key found"):
        EmbeddedBauplanSDK(root=tmp_path)
    monkeypatch.setenv("BAUPLAN_API_KEY", "k")
    assert EmbeddedBauplanSDK(root=tmp_path).username == "tester"


# ------------------------------------------------------------------------------------ faults


def test_a_fault_before_the_call_has_no_effect(sdk: EmbeddedBauplanSDK) -> None:
    sdk.faults.fail("create_branch", http_error(bx.ServiceUnavailableError, "busy"), times=2)
    for _ in range(2):
        error = sdk_error(lambda: sdk.create_branch("tester.a", "main"), bx.ServiceUnavailableError)
        assert (error.code, error.type, error.message) == (503, "ServiceUnavailable", "busy")
        assert not sdk.has_branch("tester.a")
    assert sdk.create_branch("tester.a", "main").name == "tester.a"
    assert sdk.faults.pending == []
    assert [a["branch"] for a in sdk.called("create_branch")] == ["tester.a"] * 3


def test_a_fault_without_times_fires_until_cleared(sdk: EmbeddedBauplanSDK) -> None:
    sdk.faults.fail("has_branch", http_error(bx.GatewayTimeoutError, "slow"), times=None)
    for _ in range(3):
        assert sdk_error(lambda: sdk.has_branch("main"), bx.GatewayTimeoutError).code == 504
    sdk.faults.clear()
    assert sdk.has_branch("main")


def test_a_fault_can_match_arguments(sdk: EmbeddedBauplanSDK) -> None:
    sdk.faults.fail("create_branch", bx.ForbiddenError, when={"branch": "tester.b"})
    assert sdk.create_branch("tester.a", "main").name == "tester.a"
    assert sdk_error(lambda: sdk.create_branch("tester.b", "main"), bx.ForbiddenError).code == 403
    sdk.faults.fail("get_commits", ConnectionError("reset"))
    with pytest.raises(ConnectionError):
        sdk.get_commits("main")
    with pytest.raises(AttributeError):
        sdk.faults.fail("no_such_method", bx.ForbiddenError)


def test_a_lost_reply_happens_after_the_effect(seeded: EmbeddedBauplanSDK) -> None:
    from flows.lakehouse.bauplan_backend import translate_error
    from flows.lakehouse.errors import BackendUnavailableError

    seeded.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop")
    seeded.faults.lose_reply("merge_branch")
    with pytest.raises(bx.BauplanError) as info:
        seeded.merge_branch("tester.dev", "main")
    assert type(info.value) is bx.BauplanError and str(info.value) == TRANSPORT_ERROR
    assert isinstance(translate_error(info.value, operation="merge_branch"), BackendUnavailableError)
    assert seeded.get_table("trips", "main", namespace="shop").records == 5  # merged all the same
    sdk_error(lambda: seeded.merge_branch("tester.dev", "main"), bx.SameRefError)  # the retry: nothing left


@pytest.mark.parametrize("status", ["TIMEOUT", "HEARTBEAT_FAILURE", "FAILED", "CANCELLED"])
def test_an_import_job_can_end_in_a_failed_state(seeded: EmbeddedBauplanSDK, status: str) -> None:
    seeded.faults.import_status(status, f"job {status.lower()}")
    state = seeded.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop")
    assert (state.job_status, state.error) == (status, f"job {status.lower()}") and state.job_id
    assert seeded.get_table("trips", "tester.dev", namespace="shop").records == 3  # nothing imported
    assert seeded.import_data("trips", MORE_URI, branch="tester.dev", namespace="shop").job_status == "SUCCESS"


def test_calls_are_recorded_in_process_and_on_disk(seeded: EmbeddedBauplanSDK) -> None:
    seeded.get_tables(ref=seeded.get_branch("main"), filter_by_namespace="shop")
    assert seeded.calls[-1][0] == "get_tables"
    assert seeded.calls[-1][1]["filter_by_namespace"] == "shop"
    on_disk = recorded_calls(seeded.root)
    assert on_disk[-1] == ("get_tables", {"ref": "main", "filter_by_namespace": "shop"})


# ---------------------------------------------------------------------------------- injection


def test_the_fixture_replaces_bauplan_client(bauplan_standin: EmbeddedBauplanSDK) -> None:  # noqa: F811
    from flows.lakehouse import connect

    assert os.environ["WAP_BACKEND"] == "bauplan" and os.environ["BAUPLAN_API_KEY"] == FAKE_API_KEY
    other = bauplan.Client(api_key="another")
    assert isinstance(other, EmbeddedBauplanSDK) and other.root == bauplan_standin.root
    assert inspect.signature(bauplan.Client.create_branch) == inspect.signature(REAL_CLIENT.create_branch)
    other.create_branch("tester.seen", "main")
    assert bauplan_standin.has_branch("tester.seen")
    assert [name for name, _ in bauplan_standin.calls] == ["create_branch", "has_branch"]
    client = connect()
    assert client.backend == "bauplan" and client.has_branch("tester.seen")


def test_bauplan_client_round_trip_through_the_stand_in(sdk: EmbeddedBauplanSDK) -> None:
    from flows.lakehouse.bauplan_backend import BauplanClient

    put_s3_object(sdk, URI, ROWS)
    client = BauplanClient(client=sdk)
    branch = client.create_branch("tester.wap", from_ref="main")
    assert branch.name == "tester.wap"
    client.create_table("trips", URI, branch="tester.wap", namespace="shop")
    state = client.import_data("trips", URI, branch="tester.wap", namespace="shop")
    assert state.job_status == "SUCCESS"
    client.merge_branch("tester.wap", "main")
    info = client.get_table("trips", "main", namespace="shop")
    assert (info.fqn, info.records) == ("shop.trips", 3)


def test_a_subprocess_gets_the_stand_in_through_sitecustomize(tmp_path: Path) -> None:
    root = tmp_path / "root"
    Faults(root).fail("get_branches", http_error(bx.ServiceUnavailableError, "down"))
    script = """
import json, sys, bauplan, bauplan.exceptions as bx
client = bauplan.Client()
out = {"class": type(client).__mro__[1].__name__, "user": client.info().user.username}
try:
    list(client.get_branches())
except bx.ServiceUnavailableError as exc:
    out["fault"] = exc.message
out["branch"] = client.create_branch("bob.x", "main").name
print(json.dumps(out))
"""
    env = subprocess_env(root, username="bob")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"class": "EmbeddedBauplanSDK", "user": "bob", "fault": "down", "branch": "bob.x"}
    assert EmbeddedBauplanSDK(api_key=FAKE_API_KEY, root=root).has_branch("bob.x")
    assert [m for m, _ in recorded_calls(root)] == ["info", "get_branches", "create_branch", "has_branch"]
    assert Faults(root).pending == []


def test_the_site_hook_runs_the_next_sitecustomize_too(tmp_path: Path) -> None:
    other = tmp_path / "other_site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['CHAINED_SITECUSTOMIZE'] = 'ran'\n")
    env = subprocess_env(tmp_path / "root")
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(other)])
    script = "import os, bauplan; print(os.environ.get('CHAINED_SITECUSTOMIZE'), bauplan.Client.__mro__[1].__name__)"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ran", "EmbeddedBauplanSDK"]


def test_without_the_variable_the_site_hook_changes_nothing(tmp_path: Path) -> None:
    env = subprocess_env(tmp_path)
    del env["WAP_TEST_BAUPLAN_STANDIN"]
    script = "import bauplan, sys; print(type(bauplan.Client).__name__, 'bauplan_standin' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["type", "False"]
