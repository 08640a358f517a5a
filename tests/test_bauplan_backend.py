"""Tests of the Bauplan pass-through backend.

The hosted service is unreachable from the test environment, so besides the `live` test (run only with
BAUPLAN_API_KEY set) the SDK is exercised in three ways: its installed signatures (contract), its real
exception classes (translation), and, for call forwarding only, a stand-in client that checks every call
against the installed SDK's signature before recording it.
"""

from __future__ import annotations

import ast
import inspect
import os
import pickle
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bauplan
import bauplan.exceptions as bx
import pyarrow as pa
import pytest

from flows.lakehouse import (
    AuthenticationError,
    BackendUnavailableError,
    Branch,
    BranchExistsError,
    BranchNotFoundError,
    ConcurrentUpdateError,
    ImportFailedError,
    ImportState,
    InvalidNameError,
    LakehouseError,
    MergeConflictError,
    PermissionDeniedError,
    QueryError,
    RefNotFoundError,
    SourceError,
    TableExistsError,
    TableInfo,
    TableNotFoundError,
    Tag,
    bauplan_backend,
    connect,
)
from flows.lakehouse.bauplan_backend import SDK_CALLS, SDK_CLIENT_OPTIONS, BauplanClient, translate_error
from flows.lakehouse.errors import (
    ImmutableTagError,
    NothingToRevertError,
    RefNameTakenError,
    TagExistsError,
    TagNotFoundError,
)
from flows.lakehouse.local import LocalClient

FAKE_KEY = "bpk-FAKE-SECRET-123"
# Public LocalClient methods with no Bauplan counterpart: the embedded SQL engine reads Parquet files directly.
# Optional capabilities: ReadsTableFiles (data_files, scan_data_files, fit_source), EvolvesTableSchema
# (add_new_columns).
LOCAL_ONLY = {"data_files", "scan_data_files", "fit_source", "add_new_columns"}


@pytest.fixture
def fake_key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BAUPLAN_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Bauplan credentials anywhere: empty HOME, no BAUPLAN_* variables."""
    for name in list(os.environ):
        if name.startswith("BAUPLAN_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


# ----------------------------------------------------------------------------- a stand-in SDK client


class FakeSDK:
    """Stand-in for `bauplan.Client` (the service is unreachable here).

    Every call is first bound to the installed SDK method's signature, so a keyword the real client would
    refuse fails here too; then it is recorded and answered from `responses` (a value, a callable taking the
    call's keywords, or an exception to raise).
    """

    def __init__(self, **responses: Any) -> None:
        self.responses = responses
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        signature = inspect.signature(getattr(bauplan.Client, name))  # AttributeError: not an SDK method

        def method(*args: Any, **kwargs: Any) -> Any:
            signature.bind(self, *args, **kwargs)
            self.calls.append((name, kwargs))
            response = self.responses[name]
            if isinstance(response, BaseException):
                raise response
            return response(**kwargs) if callable(response) else response

        return method

    def called(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for method, kwargs in self.calls if method == name]


def sdk_branch(name: str = "alice.feature", hash: str = "a" * 16) -> SimpleNamespace:
    return SimpleNamespace(name=name, hash=hash)


def sdk_table(name: str = "trips", namespace: str = "bauplan") -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        namespace=namespace,
        fields=[SimpleNamespace(name="id", type="long", required=True, doc=None, id=1)],
        records=42,
        metadata_location=f"s3://lake/{namespace}/{name}/metadata/00001.metadata.json",
        current_snapshot_id=7,
        id="2f1c",
        kind=None,
        size=1024,
        snapshots=1,
        last_updated_at=None,
        properties={},
        comment=None,
    )


def sdk_http_error(cls: type[bx.BauplanHTTPError], message: str, kind: Any = None) -> bx.BauplanHTTPError:
    # Their real constructor: BauplanHTTPError(code, type, message, kind=None).
    return cls(400, cls.__name__.removesuffix("Error"), message, kind)


def client_with(**responses: Any) -> tuple[BauplanClient, FakeSDK]:
    fake = FakeSDK(**responses)
    return BauplanClient(client=fake), fake


# ---------------------------------------------------------------------------------- (a) the contract


@pytest.mark.parametrize("method", sorted(SDK_CALLS))
def test_every_sdk_call_and_keyword_exists_on_the_installed_client(method: str) -> None:
    assert callable(getattr(bauplan.Client, method, None)), f"bauplan.Client has no method {method}"
    params = inspect.signature(getattr(bauplan.Client, method)).parameters
    for keyword in SDK_CALLS[method]:
        assert keyword in params, f"bauplan.Client.{method} has no parameter {keyword!r}"
        assert params[keyword].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    # Parameters we do not pass must be optional, or the SDK would refuse the call.
    required = {
        name
        for name, p in params.items()
        if name != "self" and p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    }
    assert required <= set(SDK_CALLS[method]), f"{method} requires {required - set(SDK_CALLS[method])}"


def test_client_options_exist_on_the_installed_client() -> None:
    params = inspect.signature(bauplan.Client).parameters
    assert set(SDK_CLIENT_OPTIONS) <= set(params)


def _sdk_calls_in_source() -> list[tuple[str, set[str], int]]:
    """Every `self._call("method", kw=...)` in bauplan_backend.py, found in its syntax tree."""
    tree = ast.parse(Path(bauplan_backend.__file__).read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_call":
            assert node.args and isinstance(node.args[0], ast.Constant), f"line {node.lineno}: method name not literal"
            assert all(k.arg for k in node.keywords), f"line {node.lineno}: **kwargs hides the keywords"
            found.append((node.args[0].value, {k.arg for k in node.keywords}, node.lineno))
    return found


def test_sdk_calls_table_matches_the_code() -> None:
    calls = _sdk_calls_in_source()
    for method, keywords, line in calls:
        assert method in SDK_CALLS, f"line {line}: {method} is not in SDK_CALLS"
        assert keywords == set(SDK_CALLS[method]), f"line {line}: {method}{sorted(keywords)} != SDK_CALLS"
    assert {m for m, _, _ in calls} == set(SDK_CALLS), "SDK_CALLS lists methods the code never calls"


def test_the_sdk_client_is_only_reached_through_the_checked_call() -> None:
    tree = ast.parse(Path(bauplan_backend.__file__).read_text())
    uses = {n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "_sdk"}
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BauplanClient")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    # Only __init__ (which sets it) and _call (which checks every call against SDK_CALLS) touch the SDK.
    spans = [(methods[name].lineno, methods[name].end_lineno or methods[name].lineno) for name in ("__init__", "_call")]
    allowed = {line for first, last in spans for line in range(first, last + 1)}
    assert uses <= allowed, f"direct SDK use outside _call at lines {sorted(uses - allowed)}"


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_public_methods_and_signatures_equal_local_client() -> None:
    local = _public_methods(LocalClient)
    remote = _public_methods(BauplanClient)
    assert set(remote) == set(local) - LOCAL_ONLY
    for name, local_sig in local.items():
        if name in LOCAL_ONLY:
            continue
        remote_sig = remote[name]
        shape = [(p.name, p.kind, p.default) for p in local_sig.parameters.values()]
        assert [(p.name, p.kind, p.default) for p in remote_sig.parameters.values()] == shape, name
        if name in LAZY_LISTINGS:  # the SDK's listings are lazy: Bauplan passes its iterator on, the embedded a list
            assert remote_sig.return_annotation == local_sig.return_annotation.replace("list[", "Iterator[", 1), name
        else:
            assert remote_sig.return_annotation == local_sig.return_annotation, name
    assert BauplanClient.backend == "bauplan"


LAZY_LISTINGS = {"get_branches", "get_commits"}


# ------------------------------------------------------------------------------ (b) error translation

HTTP_CASES: list[tuple[type[bx.BauplanHTTPError], str, type[LakehouseError]]] = [
    (bx.BranchExistsError, "create_branch", BranchExistsError),
    (bx.BranchNotFoundError, "get_branch", BranchNotFoundError),
    (bx.RefNotFoundError, "get_commits", RefNotFoundError),
    (bx.InvalidRefError, "get_commits", RefNotFoundError),
    (bx.TableNotFoundError, "get_table", TableNotFoundError),
    (bx.NamespaceNotFoundError, "get_table", TableNotFoundError),
    (bx.TableExistsError, "create_table", TableExistsError),
    (bx.MergeConflictError, "merge_branch", MergeConflictError),
    (bx.ConflictError, "merge_branch", MergeConflictError),
    (bx.ConflictError, "create_branch", ConcurrentUpdateError),
    (bx.BranchHeadChangedError, "delete_branch", ConcurrentUpdateError),
    (bx.UpdateConflictError, "import_data", ConcurrentUpdateError),
    (bx.NotAWriteBranchRefError, "import_data", InvalidNameError),
    (bx.NamespaceUnresolvedError, "get_table", InvalidNameError),
    (bx.UnauthorizedError, "has_branch", AuthenticationError),
    (bx.ForbiddenError, "has_branch", PermissionDeniedError),
    (bx.CreateBranchForbiddenError, "create_branch", PermissionDeniedError),
    (bx.ServiceUnavailableError, "has_branch", BackendUnavailableError),
    (bx.GatewayTimeoutError, "has_branch", BackendUnavailableError),
    (bx.BadGatewayError, "has_branch", BackendUnavailableError),
    (bx.TooManyRequestsError, "has_branch", BackendUnavailableError),
    (bx.InternalError, "has_branch", BackendUnavailableError),
    (bx.InvalidDataError, "import_data", SourceError),
    (bx.BadRequestError, "create_table", SourceError),
    (bx.BadRequestError, "query", QueryError),
    (bx.BadRequestError, "has_branch", LakehouseError),
    (bx.SameRefError, "get_commits", RefNotFoundError),  # only revert_table's SameRefError means "nothing to do"
    (bx.MethodNotAllowedError, "has_branch", LakehouseError),
    (bx.TagExistsError, "create_tag", TagExistsError),
    (bx.TagNotFoundError, "get_tag", TagNotFoundError),
    (bx.NotATagRefError, "get_tag", TagNotFoundError),
    (bx.RevertDestinationTableExistsError, "revert_table", TableExistsError),
    (bx.RevertIdenticalTableError, "revert_table", NothingToRevertError),
    (bx.SameRefError, "revert_table", NothingToRevertError),
    (bx.TableNotFoundError, "revert_table", TableNotFoundError),
    (bx.RevertTableForbiddenError, "revert_table", PermissionDeniedError),
    (bx.CreateTagForbiddenError, "create_tag", PermissionDeniedError),
]

# (TableCreatePlanStatusError / TableCreatePlanApplyStatusError are not constructible from Python: their
# `state` argument must be an SDK state object, which has no constructor.)
OTHER_CASES: list[tuple[BaseException, str, type[LakehouseError]]] = [
    (bx.BauplanQueryError(f"query failed for key {FAKE_KEY}"), "query", QueryError),
    (bx.NoResultsFoundError(f"no results ({FAKE_KEY})"), "query", QueryError),
    (bx.BauplanJobError(f"job timed out ({FAKE_KEY})"), "import_data", BackendUnavailableError),
    (bx.BauplanError(f"transport error: io: dns ({FAKE_KEY})"), "has_branch", BackendUnavailableError),
    (ConnectionError(f"connection reset ({FAKE_KEY})"), "has_branch", BackendUnavailableError),
    (TimeoutError(f"timed out ({FAKE_KEY})"), "has_branch", BackendUnavailableError),
    (ValueError(f"No API key found ({FAKE_KEY})"), "connect", AuthenticationError),
    (ValueError(f"invalid limit ({FAKE_KEY})"), "get_commits", InvalidNameError),
    (bx.InvalidPlanError(f"bad plan ({FAKE_KEY})"), "create_table", LakehouseError),
    (RuntimeError(f"surprise ({FAKE_KEY})"), "has_branch", LakehouseError),
]


def _assert_scrubbed(error: BaseException) -> None:
    rendered = "".join(traceback.format_exception(error))
    assert FAKE_KEY not in str(error)
    assert FAKE_KEY not in repr(error)
    assert FAKE_KEY not in rendered


@pytest.mark.parametrize(("sdk_cls", "operation", "expected"), HTTP_CASES)
def test_http_errors_translate(
    fake_key_env: str, sdk_cls: type[bx.BauplanHTTPError], operation: str, expected: type[LakehouseError]
) -> None:
    exc = sdk_http_error(sdk_cls, f"request refused; token={fake_key_env}")
    context = {
        "branch": "alice.x",
        "ref": "main",
        "table": "trips",
        "source_ref": "alice.x",
        "into_branch": "main",
        "tag": "v1",
    }
    error = translate_error(exc, operation=operation, context=context)
    assert type(error) is expected
    _assert_scrubbed(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(("exc", "operation", "expected"), OTHER_CASES)
def test_other_errors_translate(
    fake_key_env: str, exc: BaseException, operation: str, expected: type[LakehouseError]
) -> None:
    error = translate_error(exc, operation=operation)
    assert type(error) is expected
    _assert_scrubbed(error)
    assert "***" in str(error)  # the SDK's own detail is kept, minus the key


def test_translation_names_what_is_missing_from_the_error_kind() -> None:
    kind = bx.ApiErrorKind.BranchNotFound("bob.gone")
    error = translate_error(bx.BranchNotFoundError(404, "BranchNotFound", "not found", kind), operation="get_branch")
    assert isinstance(error, BranchNotFoundError) and error.branch == "bob.gone"
    kind = bx.ApiErrorKind.RefNotFound("main@deadbeef")
    error = translate_error(bx.RefNotFoundError(404, "RefNotFound", "not found", kind), operation="get_commits")
    assert isinstance(error, RefNotFoundError) and error.ref == "main@deadbeef"
    error = translate_error(
        sdk_http_error(bx.TableNotFoundError, "nope"), operation="get_table", context={"table": "t", "ref": "main"}
    )
    assert isinstance(error, TableNotFoundError) and error.table == "bauplan.t" and error.ref == "main"


def test_an_api_key_passed_in_is_scrubbed_and_not_chained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAUPLAN_API_KEY", raising=False)
    fake = FakeSDK(has_branch=sdk_http_error(bx.UnauthorizedError, f"bad key {FAKE_KEY}"))
    client = BauplanClient(api_key=FAKE_KEY, client=fake)
    with pytest.raises(AuthenticationError) as caught:
        client.has_branch("main")
    _assert_scrubbed(caught.value)
    assert caught.value.__cause__ is None  # the SDK exception holding the key is not chained


def test_errors_without_the_key_keep_the_sdk_exception_as_cause(fake_key_env: str) -> None:
    cause = sdk_http_error(bx.ServiceUnavailableError, "maintenance")
    client, _ = client_with(get_branches=cause)
    with pytest.raises(BackendUnavailableError) as caught:
        client.get_branches()
    assert caught.value.__cause__ is cause


def test_the_key_is_not_in_repr_vars_or_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAUPLAN_API_KEY", raising=False)
    client = BauplanClient(api_key=FAKE_KEY, client=FakeSDK())
    assert FAKE_KEY not in repr(client)
    assert FAKE_KEY not in repr(vars(client))
    with pytest.raises(TypeError):
        pickle.dumps(client)


# ------------------------------------------------------------------- (c) pass-through with a stand-in


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED", None])
def test_import_data_failed_job_state_raises(fake_key_env: str, status: str | None) -> None:
    state = SimpleNamespace(job_status=status, error=f"file s3://b/x.parquet unreadable ({FAKE_KEY})", job_id="j-1")
    client, fake = client_with(import_data=state)
    with pytest.raises(ImportFailedError) as caught:
        client.import_data("trips", "s3://b/*.parquet", branch="alice.wap")
    assert "unreadable" in str(caught.value) and "j-1" in str(caught.value)
    _assert_scrubbed(caught.value)
    assert fake.called("import_data") == [
        {"table": "trips", "search_uri": "s3://b/*.parquet", "branch": "alice.wap", "namespace": "bauplan"}
    ]


def test_import_data_success_without_error_text_but_bad_status_still_fails() -> None:
    client, _ = client_with(import_data=SimpleNamespace(job_status="FAILED", error=None, job_id=None))
    with pytest.raises(ImportFailedError, match="no error reported"):
        client.import_data("trips", "s3://b/*.parquet", branch="alice.wap")


def test_import_data_success_returns_import_state() -> None:
    client, _ = client_with(import_data=SimpleNamespace(job_status="SUCCESS", error=None, job_id="j-2"))
    state = client.import_data("raw.trips", "s3://b/*.parquet", branch="alice.wap")
    assert state == ImportState(job_status="SUCCESS", rows=None, table="raw.trips", branch="alice.wap", job_id="j-2")


def test_branch_methods_forward_keywords_and_convert() -> None:
    client, fake = client_with(
        create_branch=sdk_branch("alice.wap", "b" * 16),
        has_branch=True,
        get_branch=sdk_branch("main", "c" * 16),
        delete_branch=True,
        get_branches=lambda **_: iter([sdk_branch("main", "c" * 16), sdk_branch("alice.wap", "b" * 16)]),
    )
    assert client.create_branch("alice.wap", "main@" + "c" * 16) == Branch("alice.wap", "b" * 16)
    assert client.has_branch("alice.wap") is True
    assert client.get_branch("main") == Branch("main", "c" * 16)
    listed = client.get_branches(user="alice")
    assert list(listed) == [Branch("main", "c" * 16), Branch("alice.wap", "b" * 16)]
    assert client.delete_branch("alice.wap", if_exists=True) is True
    assert fake.calls == [
        ("create_branch", {"branch": "alice.wap", "from_ref": "main@" + "c" * 16, "if_not_exists": False}),
        ("has_branch", {"branch": "alice.wap"}),
        ("get_branch", {"branch": "main"}),
        ("get_branches", {"name": None, "user": "alice", "limit": None}),
        ("delete_branch", {"branch": "alice.wap", "if_exists": True}),
    ]


def test_tag_methods_forward_keywords_and_convert() -> None:
    client, fake = client_with(
        has_branch=False,
        create_tag=sdk_branch("v1", "b" * 16),  # bauplan.schema.Tag has the same name and hash as a Branch
        has_tag=True,
        get_tag=sdk_branch("v1", "b" * 16),
        get_tags=lambda: iter([sdk_branch("v2", "c" * 16), sdk_branch("v1", "b" * 16)]),
        delete_tag=True,
    )
    assert client.create_tag("v1", "main@" + "b" * 16) == Tag("v1", "b" * 16)
    assert client.has_tag("v1") is True
    assert client.get_tag("v1") == Tag("v1", "b" * 16)
    assert client.get_tags() == [Tag("v1", "b" * 16), Tag("v2", "c" * 16)]  # sorted by name, as the embedded
    assert client.delete_tag("v1") is True
    assert fake.calls == [
        ("has_branch", {"branch": "v1"}),
        ("create_tag", {"tag": "v1", "from_ref": "main@" + "b" * 16}),
        ("has_tag", {"tag": "v1"}),
        ("get_tag", {"tag": "v1"}),
        ("get_tags", {}),
        ("delete_tag", {"tag": "v1"}),
    ]


def test_a_tag_and_a_branch_never_share_a_name_on_bauplan() -> None:
    client, fake = client_with(has_branch=True)
    with pytest.raises(RefNameTakenError, match="cannot create tag alice.x: a branch of that name exists"):
        client.create_tag("alice.x", "main")
    assert fake.called("create_tag") == []
    # A branch named like a tag: the service refuses it; the name is then looked up to say why.
    client, fake = client_with(create_branch=sdk_http_error(bx.BranchExistsError, "exists"), has_tag=True)
    with pytest.raises(RefNameTakenError, match="cannot create branch v1: a tag of that name exists"):
        client.create_branch("v1", "main")
    client, fake = client_with(create_branch=sdk_http_error(bx.BranchExistsError, "exists"), has_tag=False)
    with pytest.raises(BranchExistsError):
        client.create_branch("alice.x", "main")
    assert ImmutableTagError.__mro__[1] is InvalidNameError  # writes to a tag: the SDK's NotAWriteBranchRef


def test_revert_and_delete_table_forward_keywords() -> None:
    client, fake = client_with(
        revert_table=sdk_branch("alice.r", "0" * 16),
        delete_table=sdk_branch("alice.r", "f" * 16),
        get_branch=sdk_branch("alice.r", "e" * 16),
    )
    reverted = client.revert_table(
        "raw.trips",
        source_ref="main@" + "a" * 16,
        into_branch="alice.r",
        replace=True,
        commit_body="revert trips",
        commit_properties={"wap.revert.reason": "bad batch"},
    )
    assert reverted == Branch("alice.r", "0" * 16)  # the SDK's reply, not the branch read again
    assert client.delete_table("trips", "alice.r", namespace="raw") == Branch("alice.r", "f" * 16)
    assert fake.calls == [
        (
            "revert_table",
            {
                "table": "trips",
                "namespace": "raw",
                "source_ref": "main@" + "a" * 16,
                "into_branch": "alice.r",
                "replace": True,
                "commit_body": "revert trips",
                "commit_properties": {"wap.revert.reason": "bad batch"},
            },
        ),
        ("delete_table", {"table": "trips", "branch": "alice.r", "namespace": "raw"}),
    ]
    with pytest.raises(InvalidNameError):  # into a past commit: refused before the SDK, as the embedded backend
        client.revert_table("trips", source_ref="main", into_branch="alice.r@" + "a" * 16)
    client, _ = client_with(revert_table=sdk_http_error(bx.RevertIdenticalTableError, "identical"))
    with pytest.raises(NothingToRevertError):
        client.revert_table("trips", source_ref="main", into_branch="alice.r", replace=True)


def test_get_commits_converts_sdk_commits() -> None:
    when = datetime(2025, 1, 2, tzinfo=UTC)
    commit = SimpleNamespace(
        ref=SimpleNamespace(hash="d" * 16),
        parent_hashes=["c" * 16],
        message="import trips",
        subject="import trips",
        author=SimpleNamespace(name="Alice", email="a@x"),
        committer=SimpleNamespace(name="svc", email=None),
        authored_date=when,
        properties={"wap.rows": "3"},
    )
    client, fake = client_with(get_commits=lambda **_: iter([commit]))
    [got] = client.get_commits("alice.wap", limit=5)
    assert (got.hash, got.parent_hashes, got.message, got.author, got.authored_date, got.properties) == (
        "d" * 16,
        ["c" * 16],
        "import trips",
        "Alice",
        when,
        {"wap.rows": "3"},
    )
    assert fake.called("get_commits") == [{"ref": "alice.wap", "filter_by_properties": None, "limit": 5}]


def test_merge_returns_the_head_the_sdk_replied() -> None:
    # Not main read again: under `wap run --all` another gate's merge may land between the two calls.
    client, fake = client_with(merge_branch=sdk_branch("main", "0" * 16), get_branch=sdk_branch("main", "e" * 16))
    assert client.merge_branch("alice.wap", "main", commit_properties={"wap.run": "1"}) == "0" * 16
    assert fake.calls == [
        (
            "merge_branch",
            {
                "source_ref": "alice.wap",
                "into_branch": "main",
                "commit_message": "merge alice.wap into main",
                "commit_body": None,
                "commit_properties": {"wap.run": "1"},
            },
        ),
    ]


def test_merge_with_nothing_to_merge_returns_the_unchanged_head() -> None:
    client, _ = client_with(
        merge_branch=sdk_http_error(bx.SameRefError, "same ref"), get_branch=sdk_branch("main", "e" * 16)
    )
    assert client.merge_branch("alice.wap", "main", commit_message="publish") == "e" * 16


def test_merge_conflict_names_both_refs() -> None:
    client, _ = client_with(merge_branch=sdk_http_error(bx.MergeConflictError, "conflict"))
    with pytest.raises(MergeConflictError) as caught:
        client.merge_branch("alice.wap", "main")
    assert (caught.value.source_ref, caught.value.into_branch) == ("alice.wap", "main")


def test_table_methods_forward_keywords_and_convert() -> None:
    client, fake = client_with(
        get_tables=lambda **_: iter([sdk_table("zeta"), sdk_table("alpha")]),
        has_table=True,
        get_table=sdk_table("trips", "raw"),
    )
    tables = client.get_tables("main", filter_by_namespace="bauplan")
    assert [t.name for t in tables] == ["alpha", "zeta"]
    assert client.has_table("raw.trips", "main") is True
    info = client.get_table("trips", "main", namespace="raw")
    assert isinstance(info, TableInfo)
    assert (info.fqn, info.records, info.snapshot_id, info.fields[0].name, info.fields[0].required) == (
        "raw.trips",
        42,
        7,
        "id",
        True,
    )
    assert info.metadata_location == "s3://lake/raw/trips/metadata/00001.metadata.json"
    assert fake.calls == [
        ("get_tables", {"ref": "main", "filter_by_namespace": "bauplan"}),
        ("has_table", {"table": "trips", "ref": "main", "namespace": "raw"}),
        ("get_table", {"table": "trips", "ref": "main", "namespace": "raw"}),
    ]


def test_missing_namespace_reads_as_no_table() -> None:
    missing = sdk_http_error(bx.NamespaceNotFoundError, "no namespace")
    client, _ = client_with(has_table=missing, get_tables=missing, get_table=missing)
    assert client.has_table("nope.trips", "main") is False
    assert client.get_tables("main", filter_by_namespace="nope") == []
    with pytest.raises(TableNotFoundError, match="nope.trips on main"):
        client.get_table("nope.trips", "main")


def test_create_table_creates_a_missing_namespace_then_the_table() -> None:
    client, fake = client_with(has_table=False, create_namespace=None, create_table=sdk_table("trips", "raw"))
    info = client.create_table("raw.trips", "s3://b/*.parquet", branch="alice.wap")
    assert info.fqn == "raw.trips"
    assert fake.calls[1:] == [
        # One call, no check-then-create: two runs making the namespace at once cannot race.
        ("create_namespace", {"namespace": "raw", "branch": "alice.wap", "if_not_exists": True}),
        (
            "create_table",
            {
                "table": "trips",
                "search_uri": "s3://b/*.parquet",
                "branch": "alice.wap",
                "namespace": "raw",
                "replace": False,
            },
        ),
    ]


def test_create_table_refuses_an_existing_table_unless_replace() -> None:
    client, fake = client_with(has_table=True, create_namespace=None, create_table=sdk_table())
    with pytest.raises(TableExistsError, match="bauplan.trips on alice.wap"):
        client.create_table("trips", "s3://b/*.parquet", branch="alice.wap")
    assert not fake.called("create_table")
    client.create_table("trips", "s3://b/*.parquet", branch="alice.wap", replace=True)
    assert fake.called("create_table")[0]["replace"] is True


def test_scan_and_query_forward_keywords() -> None:
    import pyarrow as pa

    result = pa.table({"n": [1]})
    client, fake = client_with(scan=result, query=result)
    assert client.scan("trips", ref="main", columns=["n"], filters="n > 0", limit=10) is result
    assert client.query("SELECT 1 AS n", ref="main", namespace="raw", max_rows=5) is result
    assert fake.calls == [
        (
            "scan",
            {
                "table": "trips",
                "ref": "main",
                "columns": ["n"],
                "filters": "n > 0",
                "limit": 10,
                "namespace": "bauplan",
            },
        ),
        ("query", {"query": "SELECT 1 AS n", "ref": "main", "namespace": "raw", "max_rows": 5}),
    ]


def test_query_errors_translate() -> None:
    client, _ = client_with(query=bx.BauplanQueryError("column x not found"))
    with pytest.raises(QueryError, match="column x not found"):
        client.query("SELECT x FROM t", ref="main")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.create_branch("bad name", "main"), InvalidNameError),
        (lambda c: c.create_branch("alice.x", "main@NOTHEX"), InvalidNameError),
        (lambda c: c.has_branch("../etc"), InvalidNameError),
        (lambda c: c.get_table("1bad", "main"), InvalidNameError),
        (lambda c: c.scan("t; DROP", ref="main"), InvalidNameError),
        (lambda c: c.delete_branch("main"), InvalidNameError),
        (lambda c: c.import_data("t", "s3://b/x", branch="alice.x@" + "a" * 16), InvalidNameError),
        (lambda c: c.query("DROP TABLE bauplan.t", ref="main"), QueryError),
        (lambda c: c.query("SELECT 1", ref="main", namespace="x-y"), InvalidNameError),
    ],
)
def test_invalid_input_is_refused_before_reaching_the_sdk(call: Any, error: type[LakehouseError]) -> None:
    client, fake = client_with()
    with pytest.raises(error):
        call(client)
    assert fake.calls == []


def test_the_stand_in_enforces_the_real_sdk_signature() -> None:
    fake = FakeSDK(has_branch=True)
    with pytest.raises(TypeError):
        fake.has_branch(bogus="main")
    with pytest.raises(AttributeError):
        fake.not_an_sdk_method  # noqa: B018


# ------------------------------------------------------------------------ the real SDK, no credentials


def test_connect_without_credentials_is_a_one_line_authentication_error(no_credentials: Path) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        connect("bauplan", client_timeout=5)
    message = str(caught.value)
    assert "\n" not in message and "BAUPLAN_API_KEY" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no SDK traceback attached
    assert time.monotonic() - started < 5


def test_connect_with_a_missing_profile_is_an_authentication_error(no_credentials: Path) -> None:
    with pytest.raises(AuthenticationError):
        connect("bauplan", profile="nope", client_timeout=5)


@pytest.mark.timeout(60)
def test_real_sdk_with_a_fake_key_fails_cleanly(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unreachable service (no network here) or a rejected key (with network): either way one lakehouse error.
    monkeypatch.setenv("BAUPLAN_API_KEY", FAKE_KEY)
    client = connect("bauplan", client_timeout=5)
    assert FAKE_KEY not in repr(client)
    with pytest.raises((BackendUnavailableError, AuthenticationError)) as caught:
        client.has_branch("main")
    _assert_scrubbed(caught.value)


# --------------------------------------------------------------------------------------- (d) live


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("BAUPLAN_API_KEY"), reason="needs BAUPLAN_API_KEY and network")
@pytest.mark.timeout(300)
def test_live_branch_round_trip() -> None:
    client = connect("bauplan", client_timeout=120)
    user = bauplan.Client(client_timeout=60).info().user.username  # the branch prefix Bauplan requires
    branch = f"{user}.wap_contract_{uuid.uuid4().hex[:12]}"
    created = client.create_branch(branch, "main")
    try:
        assert created.name == branch
        assert client.has_branch(branch)
        assert branch in {b.name for b in client.get_branches()}
        with pytest.raises(BranchExistsError):
            client.create_branch(branch, "main")
    finally:
        assert client.delete_branch(branch)
    assert not client.has_branch(branch)


LIVE_TITANIC = os.environ.get("WAP_LIVE_TITANIC_S3", "")


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("BAUPLAN_API_KEY"), reason="needs BAUPLAN_API_KEY and network")
@pytest.mark.skipif(
    not LIVE_TITANIC.startswith("s3://"), reason="needs WAP_LIVE_TITANIC_S3=s3://... (a Titanic CSV Bauplan can read)"
)
@pytest.mark.timeout(900)
def test_live_whole_gate_run_on_an_s3_titanic(prefect_api: str) -> None:
    """`wap run titanic` against the real service, on_success inspect so the user's main is never touched: the
    branch is written, audited by Bauplan's engine (server-side SQL), kept at the audited commit with its pending
    publish recorded; then deleted. The key never appears in the output."""
    import re

    from cli_runner import run_cli
    from gate_fixtures import latest_artifact

    result = run_cli(
        "run", "titanic", "--backend", "bauplan", "--source", LIVE_TITANIC, "--on-success", "inspect", timeout=800
    )
    output = result.stdout + result.stderr
    assert os.environ["BAUPLAN_API_KEY"] not in output
    kept = re.search(r"kept branch (\S+) at commit ([0-9a-f]+) for inspection", result.stdout)
    assert result.returncode == 0 and kept, output
    branch, commit = kept.groups()
    client = connect("bauplan", client_timeout=120)
    try:
        user = client.info().user.username
        assert branch.startswith(f"{user}.wap_titanic_")
        assert client.get_branch(branch).hash == commit
        rows = client.query("SELECT count(*) AS n FROM bauplan.titanic", ref=f"{branch}@{commit}")
        assert rows.column("n")[0].as_py() > 0
        report = latest_artifact("titanic-validation", prefect_api)
        assert report is not None and "computed by the lakehouse's SQL engine" in report["data"], report
    finally:
        client.delete_branch(branch, if_exists=True)
    assert not client.has_branch(branch)


# ------------------------------------------------------------------------------ appends: the staged batch


def _figures_row(ids: list[int], names: list[str], fares: list[float]) -> pa.Table:
    """What `check_staged_batch`'s aggregate returns for a table of these rows (columns id, name, fare)."""
    return pa.Table.from_pylist(
        [
            {
                "rows": len(ids),
                "n0": len(ids), "lo0": min(ids, default=None), "hi0": max(ids, default=None), "s0": sum(ids),
                "n1": len(names), "lo1": min(names, default=None), "hi1": max(names, default=None),
                "l1": sum(map(len, names)),
                "n2": len(fares), "lo2": min(fares, default=None), "hi2": max(fares, default=None),
                "f2": sum(fares), "z2": 0,
            }
        ]
    )  # fmt: skip


def _staging_sdk(batch_fares: list[float]) -> tuple[BauplanClient, FakeSDK]:
    table = sdk_table("titanic")
    table.fields = [
        SimpleNamespace(name="id", type="long", required=False, doc=None, id=1),
        SimpleNamespace(name="name", type="string", required=False, doc=None, id=2),
        SimpleNamespace(name="fare", type="double", required=False, doc=None, id=3),
    ]
    main = _figures_row([1, 2], ["ann", "bo"], [7.5, 8.0])
    staged = _figures_row([3], ["cy"], batch_fares)
    written = _figures_row([1, 2, 3], ["ann", "bo", "cy"], [7.5, 8.0, 9.25])
    answers = {"main": main, "alice.wap_titanic_0000beef_batch": staged, "alice.wap_titanic_0000beef": written}
    return client_with(
        create_branch=lambda **kw: sdk_branch(kw["branch"], "b" * 16),
        get_branch=lambda **kw: sdk_branch(kw["branch"], "c" * 16),
        create_namespace=None,
        create_table=table,
        import_data=SimpleNamespace(job_status="SUCCESS", error=None, job_id="j-9"),
        get_table=table,
        has_table=True,
        query=lambda **kw: answers[kw["ref"].partition("@")[0]],
    )


def test_an_append_stages_its_batch_through_the_sdk_and_checks_it_server_side() -> None:
    """The calls `flows.gate.staging` makes on Bauplan, each bound to the installed SDK's signature by FakeSDK:
    a staging branch from main's commit, the table there replaced by the source alone, and one aggregate per ref
    (main, the staged batch, the gate branch) sent as SQL to Bauplan's engine."""
    import dataclasses

    from flows.datasets import get_dataset
    from flows.gate.staging import isolate_batch

    client, fake = _staging_sdk([9.25])
    dataset = dataclasses.replace(get_dataset("titanic"), mode="append")
    branch = "alice.wap_titanic_0000beef"
    staged = isolate_batch(client, dataset, "s3://bucket/batch.parquet", branch, base="a" * 16, commit="d" * 16)
    assert staged == f"{branch}_batch@{'c' * 16}"
    assert fake.called("create_branch") == [
        {"branch": f"{branch}_batch", "from_ref": f"main@{'a' * 16}", "if_not_exists": True}
    ]
    [created] = fake.called("create_table")
    assert created["branch"] == f"{branch}_batch" and created["replace"] is True and created["table"] == "titanic"
    assert [c["branch"] for c in fake.called("import_data")] == [f"{branch}_batch"]
    refs = [c["ref"] for c in fake.called("query")]
    assert refs == [f"main@{'a' * 16}", staged, f"{branch}@{'d' * 16}"]
    assert all(c["query"].startswith("SELECT count(*) AS rows") for c in fake.called("query"))


def test_an_append_whose_staged_batch_differs_from_the_appended_rows_is_refused() -> None:
    import dataclasses

    from flows.datasets import get_dataset
    from flows.gate.staging import isolate_batch

    client, _ = _staging_sdk([10.0])  # the source changed between the two imports: another fare
    dataset = dataclasses.replace(get_dataset("titanic"), mode="append")
    with pytest.raises(ConcurrentUpdateError, match=r"differ in fare\)"):
        isolate_batch(client, dataset, "s3://b/x.parquet", "alice.wap_titanic_0000beef", base="a" * 16, commit="d" * 16)
