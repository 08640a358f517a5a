"""A stand-in for `bauplan.Client` backed by the embedded engine: real branches, merges and data, for tests.

The hosted Bauplan service is unreachable from the tests, so `EmbeddedBauplanSDK` plays it: it has the
installed SDK's methods with their exact signatures (every call is bound against `bauplan.Client`'s own
signature first: a keyword the real SDK would refuse is a TypeError here too), returns objects with the real
SDK classes' public attributes, raises the real `bauplan.exceptions` classes, and keeps its data in a
`flows.lakehouse.local.LocalClient` lakehouse, so a merge really merges and a query reads the rows imported.

It enforces the rules real users hit:

* a non-admin user may only create branches named `<username>.<something>` (`CreateBranchForbiddenError`);
* `search_uri` must be an S3 URI: `s3://bucket/key` (globs allowed) reads `<s3_root>/bucket/key`; write
  objects there with `put_s3_object`. Anything else is an `InvalidDataError`;
* a table's namespace must exist (`create_namespace`, one commit on the branch, merged like any change;
  `bauplan` always exists) or the call raises `NamespaceNotFoundError`;
* `get_branches(user=)` lists the branches that user created; `query(max_rows=)` returns at most that many;
* a failed import job does not raise: `import_data` returns a state with `job_status="FAILED"` and `error`;
* `scan`/`query` failures are `BauplanQueryError` (what the SDK documents for them).

Layout of a stand-in root (one per test): `lakehouse/` (the embedded lakehouse), `s3/<bucket>/<key>` (the
objects `search_uri` names), `standin/` (`faults.json`, `branches.json`: who created each branch,
`calls.jsonl`: every call made, by any process).

Injection
    In-process: the `bauplan_standin` fixture patches `bauplan.Client` with a factory (`client_class(root)`)
    making stand-ins on one root, sets `WAP_BACKEND=bauplan` and a fake `BAUPLAN_API_KEY`, and yields one
    stand-in: `.root`, `.username`, `.faults`, `.calls`, `.s3_root`, `.local` (the LocalClient underneath).
    Subprocesses: `subprocess_env(root)` returns an environment whose `PYTHONPATH` starts with
    `tests/standin_site`; its `sitecustomize` replaces `bauplan.Client` when `bauplan` is imported, configured
    by `WAP_TEST_BAUPLAN_STANDIN=<root>` (required), `WAP_TEST_BAUPLAN_USER`, `WAP_TEST_BAUPLAN_ADMIN=1`,
    `WAP_TEST_BAUPLAN_S3_ROOT`.

Faults (off by default) live in `<root>/standin/faults.json`, read at each call and consumed under a file
lock, so they hold across every client and process on the root ("once" means once in all). Add them with
`sdk.faults` (or `Faults(root)` from another process):

    sdk.faults.fail("merge_branch", http_error(bx.ServiceUnavailableError, "busy"), times=2)  # before effect
    sdk.faults.lose_reply("merge_branch")   # merges, then raises BauplanError("transport error: ...")
    sdk.faults.import_status("TIMEOUT", "job timed out")  # import_data imports nothing, returns that state
    sdk.faults.fail("create_branch", http_error(bx.ForbiddenError, "no"), when={"branch": "tester.x"})

`when=` matches the call's arguments (refs as their names). Every call is recorded, before any fault, as
`(method, arguments passed)` in `sdk.calls` (this process) and in `calls.jsonl` (`recorded_calls(root)`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bauplan
import bauplan.exceptions as bx
import bauplan.schema as bs
import pyarrow as pa

try:  # the module is also loaded outside pytest, by standin_site/sitecustomize.py
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]


def _real_client_class() -> type:
    """`bauplan.Client` as the SDK defines it, even if a stand-in factory has replaced it already."""
    client = bauplan.Client
    return getattr(client, "_real_client", client)


REAL_CLIENT: type = _real_client_class()
TESTS_DIR = Path(__file__).resolve().parent
SITE_DIR = TESTS_DIR / "standin_site"
REPO_ROOT = TESTS_DIR.parent

ROOT_ENV = "WAP_TEST_BAUPLAN_STANDIN"
USER_ENV = "WAP_TEST_BAUPLAN_USER"
ADMIN_ENV = "WAP_TEST_BAUPLAN_ADMIN"
S3_ROOT_ENV = "WAP_TEST_BAUPLAN_S3_ROOT"
FAKE_API_KEY = "bpk-standin-not-a-real-key"
DEFAULT_USER = "tester"
MAIN = "main"
DEFAULT_NAMESPACE = "bauplan"
# The commit property recording a namespace's creation (what `has_namespace` looks for in a ref's history).
NAMESPACE_PROPERTY = "bauplan.standin.create_namespace"
# Keywords that change nothing the stand-in can show (timeouts, scheduling, caching): accepted, ignored.
NO_EFFECT_KEYWORDS = frozenset({"client_timeout", "priority", "cache"})
TRANSPORT_ERROR = "transport error: connection reset by peer"
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,62})/(?P<key>[^\s]+)$")
_HTTP_CODES: tuple[tuple[type[bx.BauplanHTTPError], int], ...] = (
    (bx.BadRequestError, 400),
    (bx.UnauthorizedError, 401),
    (bx.ForbiddenError, 403),
    (bx.NotFoundError, 404),
    (bx.MethodNotAllowedError, 405),
    (bx.ConflictError, 409),
    (bx.TooManyRequestsError, 429),
    (bx.InternalError, 500),
    (bx.BadGatewayError, 502),
    (bx.ServiceUnavailableError, 503),
    (bx.GatewayTimeoutError, 504),
)


# ------------------------------------------------------------------ the SDK's return objects
# Plain classes with exactly the public attributes of the compiled SDK classes (which cannot be constructed);
# tests/test_bauplan_standin.py compares each with its SDK class, so an SDK upgrade that changes them fails there.


@dataclass(frozen=True, slots=True)
class Ref:
    name: str
    hash: str
    type: Any  # a bauplan.schema.RefType
    _branch: str | None = field(default=None, repr=False, compare=False)  # a detached ref's branch, to read it

    def __str__(self) -> str:
        return self.hash if self.type == bs.RefType.DETACHED else f"{self.name}@{self.hash}"


@dataclass(frozen=True, slots=True)
class Branch(Ref):
    pass


@dataclass(frozen=True, slots=True)
class Tag(Ref):
    pass


@dataclass(frozen=True, slots=True)
class DetachedRef(Ref):
    pass


def _branch_ref(name: str, commit: str) -> Branch:
    return Branch(name, commit, bs.RefType.BRANCH)


def _tag_ref(name: str, commit: str) -> Tag:
    return Tag(name, commit, bs.RefType.TAG)


def _detached(commit: str, branch: str | None) -> DetachedRef:
    return DetachedRef(commit, commit, bs.RefType.DETACHED, branch)


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    ref: DetachedRef  # the commit's own hash is `ref.hash` (a real Commit has no `hash`)
    message: str | None
    subject: str | None
    body: str | None
    author: Actor | None
    authors: list[Actor]
    committer: Actor
    signed_off_by: list[Actor]
    authored_date: datetime
    committed_date: datetime
    parent_hashes: list[str]
    parent_ref: Ref | None
    parent_merge_ref: Ref | None
    properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class TableField:
    id: int
    name: str
    type: str
    required: bool
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionField:
    name: str
    transform: str


@dataclass(frozen=True, slots=True)
class Table:
    id: uuid.UUID
    name: str
    namespace: str
    kind: Any  # a bauplan.schema.TableKind
    fields: list[TableField]
    records: int | None
    size: int | None
    snapshots: int | None
    current_snapshot_id: int | None
    current_schema_id: int | None
    metadata_location: str
    last_updated_at: datetime
    partitions: list[PartitionField]
    properties: dict[str, str]
    comment: str | None = None

    @property
    def fqn(self) -> str:
        return f"{self.namespace}.{self.name}"

    def is_managed(self) -> bool:
        return self.kind == bs.TableKind.Table

    def is_external(self) -> bool:
        return self.kind == bs.TableKind.ExternalTable


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str


@dataclass(frozen=True, slots=True)
class TableDataImportContext:
    table_name: str
    namespace: str
    branch_name: str
    search_string: str
    preview: str
    best_effort: bool = False
    continue_on_error: bool = False
    import_duplicate_files: bool = False
    transformation_query: str | None = None


@dataclass(frozen=True, slots=True)
class TableDataImportState:
    ctx: TableDataImportContext
    job_id: str | None
    job_status: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    username: str
    first_name: str
    last_name: str
    full_name: str


@dataclass(frozen=True, slots=True)
class OrganizationInfo:
    id: str
    name: str
    slug: str
    default_parameter_secret_key: str | None = None
    default_parameter_secret_public_key: str | None = None


@dataclass(frozen=True, slots=True)
class RunnerNodeInfo:
    hostname: str


@dataclass(frozen=True, slots=True)
class InfoState:
    client_version: str
    organization: OrganizationInfo
    runners: list[RunnerNodeInfo]
    user: UserInfo


# Each stand-in class and the SDK class whose public attributes it must have.
STANDIN_CLASSES: dict[type, type] = {
    Ref: bs.Ref,
    Branch: bs.Branch,
    Tag: bs.Tag,
    DetachedRef: bs.DetachedRef,
    Actor: bs.Actor,
    Commit: bs.Commit,
    TableField: bs.TableField,
    PartitionField: bs.PartitionField,
    Table: bs.Table,
    Namespace: bs.Namespace,
    TableDataImportContext: bauplan.state.TableDataImportContext,
    TableDataImportState: bauplan.state.TableDataImportState,
    UserInfo: bauplan.UserInfo,
    OrganizationInfo: bauplan.OrganizationInfo,
    RunnerNodeInfo: bauplan.RunnerNodeInfo,
    InfoState: bauplan.InfoState,
}


def public_attributes(cls: type) -> list[str]:
    return sorted(a for a in dir(cls) if not a.startswith("_"))


# ------------------------------------------------------------------------------ errors


def http_error(
    cls: type[bx.BauplanHTTPError], message: str, kind: Any = None, *, code: int | None = None
) -> bx.BauplanHTTPError:
    """A real SDK HTTP error, constructed as the SDK constructs it: `cls(code, type, message, kind)`."""
    if code is None:
        code = next((c for base, c in _HTTP_CODES if issubclass(cls, base)), 500)
    return cls(code, cls.__name__.removesuffix("Error"), message, kind)


def error_kind(name: str, **fields: Any) -> Any:
    """`bx.ApiErrorKind.<name>(**fields)`, or None where the SDK cannot build it (kinds holding a real Ref)."""
    try:
        return getattr(bx.ApiErrorKind, name)(**fields)
    except (AttributeError, TypeError):
        return None


def _text(value: Any) -> str:
    """A ref, branch, tag, namespace or table argument as its name (the SDK accepts str or its objects)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Ref) and value.type == bs.RefType.DETACHED:
        return f"{value._branch}@{value.hash}" if value._branch else value.hash
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    raise ValueError(f"invalid argument {value!r}: expected a name")


def _plain(value: Any) -> Any:
    """An argument as JSON (refs as their names), for `calls.jsonl` and fault matching."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    with contextlib.suppress(ValueError):
        return _text(value)
    return repr(value)


def _error_spec(error: BaseException | type[BaseException]) -> dict[str, Any]:
    """An exception to raise later, in any process, as JSON (an HTTP error's kind is not kept)."""
    if isinstance(error, type):
        error = http_error(error, "injected fault") if issubclass(error, bx.BauplanHTTPError) else error("injected")
    cls = type(error)
    if getattr(bx, cls.__name__, None) is cls:
        if isinstance(error, bx.BauplanHTTPError):
            return {"sdk": cls.__name__, "args": [error.code, error.type, error.message]}
        return {"sdk": cls.__name__, "args": [str(a) for a in error.args]}
    if cls.__module__ == "builtins":
        return {"builtin": cls.__name__, "args": [str(a) for a in error.args]}
    raise TypeError(f"a fault raises a bauplan.exceptions class or a built-in exception, not {cls.__name__}")


def _error_from_spec(spec: Mapping[str, Any]) -> BaseException:
    if "sdk" in spec:
        return getattr(bx, spec["sdk"])(*spec["args"])
    import builtins

    return getattr(builtins, spec["builtin"])(*spec["args"])


# ------------------------------------------------------------------------------ files


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(tmp, path)


class Faults:
    """The faults injected into every stand-in on a root (see the module docstring); each fires `times` times
    (`times=None`: at every matching call until `clear()`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root) / "standin" / "faults.json"
        self._lock = self.path.with_suffix(".lock")

    def fail(
        self,
        method: str,
        error: BaseException | type[BaseException],
        *,
        times: int | None = 1,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        """`method` raises `error` before it has any effect."""
        self._add(method, "before", times, when, error=_error_spec(error))

    def lose_reply(
        self,
        method: str,
        *,
        times: int | None = 1,
        error: BaseException | None = None,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        """`method` takes effect, then its reply is lost: it raises `error` (a transport error by default)."""
        self._add(method, "after", times, when, error=_error_spec(error or bx.BauplanError(TRANSPORT_ERROR)))

    def import_status(
        self,
        status: str,
        error: str | None = "injected import failure",
        *,
        times: int | None = 1,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        """`import_data` imports nothing and returns a state with this `job_status` (e.g. TIMEOUT) and `error`."""
        self._add("import_data", "import_status", times, when, status=status, message=error)

    def clear(self) -> None:
        with _locked(self._lock):
            _write_json(self.path, [])

    @property
    def pending(self) -> list[dict[str, Any]]:
        """The faults that have not fired all their times yet."""
        with _locked(self._lock):
            return list(_read_json(self.path, []))

    def _add(self, method: str, stage: str, times: int | None, when: Mapping[str, Any] | None, **extra: Any) -> None:
        if not hasattr(REAL_CLIENT, method):
            raise AttributeError(f"bauplan.Client has no method {method!r}")
        entry = {
            "method": method,
            "stage": stage,
            "times": None if times is None else int(times),
            "when": _plain(dict(when or {})),
            **extra,
        }
        with _locked(self._lock):
            entries = _read_json(self.path, [])
            entries.append(entry)
            _write_json(self.path, entries)

    def take(self, method: str, stage: str, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
        """Consume one firing of the first fault for this call and stage, if any."""
        if not self.path.exists():
            return None
        plain = _plain(dict(arguments))
        with _locked(self._lock):
            entries = _read_json(self.path, [])
            for index, entry in enumerate(entries):
                if entry["method"] != method or entry["stage"] != stage:
                    continue
                if any(plain.get(k) != v for k, v in entry["when"].items()):
                    continue
                if entry["times"] is not None:
                    entry["times"] -= 1
                    if entry["times"] <= 0:
                        del entries[index]
                    _write_json(self.path, entries)
                return entry
        return None


# Calls made in this process, per root: every stand-in on a root shares one list.
_CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {}


def recorded_calls(root: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every call made to a stand-in on `root`, by any process, in order: (method, arguments as JSON)."""
    path = Path(root) / "standin" / "calls.jsonl"
    if not path.exists():
        return []
    return [(c["method"], c["arguments"]) for c in map(json.loads, path.read_text().splitlines()) if c]


# ------------------------------------------------------------------------ S3 objects


def s3_path(s3_root: str | os.PathLike[str], uri: str) -> Path:
    """The local path an `s3://bucket/key` URI names under `s3_root`; InvalidDataError for any other URI."""
    match = _S3_URI.match(uri) if isinstance(uri, str) else None
    if match is None or ".." in match["key"].split("/"):
        raise http_error(
            bx.InvalidDataError,
            f"invalid search_uri {uri!r}: must be an S3 URI, s3://bucket/path (globs such as *.parquet allowed)",
            error_kind("BadRequest"),
        )
    return Path(s3_root) / match["bucket"] / match["key"]


def put_s3_object(target: Any, uri: str, data: pa.Table | str | os.PathLike[str]) -> Path:
    """Write `data` (an Arrow table, as Parquet or, for a .csv key, CSV; or a file to copy) at `uri`.

    `target` is a stand-in (its `s3_root`) or a stand-in root (`<root>/s3`). Returns the local path."""
    s3_root = target.s3_root if isinstance(target, EmbeddedBauplanSDK) else Path(target) / "s3"
    path = s3_path(s3_root, uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, pa.Table):
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(data, path)
        else:
            import pyarrow.parquet as pq

            pq.write_table(data, path)
    else:
        shutil.copyfile(data, path)
    return path


# ----------------------------------------------------------------------- the stand-in


def _sdk_method(*honoured: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a stand-in method `bauplan.Client`'s signature: bind every call against it (TypeError like the
    SDK's), record it, refuse a keyword it does not honour given a non-default value (NotImplementedError),
    fire the faults injected for it, and raise what the embedded engine raised as the SDK error."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        name = func.__name__
        signature = inspect.signature(getattr(REAL_CLIENT, name))
        unknown = set(honoured) - set(signature.parameters)
        if unknown:  # the SDK renamed or dropped a keyword the stand-in implements
            raise TypeError(f"bauplan.Client.{name} has no parameter {sorted(unknown)}")

        @functools.wraps(func)
        def method(self: EmbeddedBauplanSDK, *args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{name}(): {exc}") from None
            passed = {k: v for k, v in bound.arguments.items() if k != "self"}
            self._record(name, passed)
            bound.apply_defaults()
            for key, value in bound.arguments.items():
                if key in honoured or key == "self" or key in NO_EFFECT_KEYWORDS:
                    continue
                if value != signature.parameters[key].default:
                    raise NotImplementedError(
                        f"the embedded bauplan stand-in does not implement {name}({key}={value!r})"
                    )
            values = {k: bound.arguments[k] for k in honoured}
            fault = self.faults.take(name, "before", values)
            if fault is not None:
                raise _error_from_spec(fault["error"])
            from flows.lakehouse.errors import LakehouseError

            try:
                result = func(self, **values)
            except LakehouseError as exc:
                raise self._translate(exc, name, values) from exc
            fault = self.faults.take(name, "after", values)
            if fault is not None:
                raise _error_from_spec(fault["error"])
            return result

        method.__signature__ = signature  # type: ignore[attr-defined]
        return method

    return decorate


_UNIMPLEMENTED: set[str] = set()


def _not_implemented(name: str) -> Callable[..., Any]:
    _UNIMPLEMENTED.add(name)
    signature = inspect.signature(getattr(REAL_CLIENT, name))

    def method(self: EmbeddedBauplanSDK, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        self._record(name, {k: v for k, v in bound.arguments.items() if k != "self"})
        raise NotImplementedError(f"the embedded bauplan stand-in does not implement bauplan.Client.{name}")

    method.__name__ = method.__qualname__ = name
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__doc__ = f"bauplan.Client.{name}: not implemented by the stand-in (raises NotImplementedError)."
    return method


def _iterate(items: Iterable[Any]) -> Iterator[Any]:
    # The SDK's list methods return lazy iterators; the work (and its errors) happens at the call here.
    yield from items


def _bounded(items: Iterable[Any], limit: int | None) -> list[Any]:
    found = list(items)
    return found if limit is None else found[: max(int(limit), 0)]


class EmbeddedBauplanSDK:
    """`bauplan.Client` over an embedded lakehouse on `root` (see the module docstring).

    The first four parameters are `bauplan.Client`'s; the rest are test knobs, defaulting to the class's
    `_knobs` (set by `client_class`, the factory that replaces `bauplan.Client`), then to the environment
    (`WAP_TEST_BAUPLAN_STANDIN`, `..._USER`, `..._ADMIN`, `..._S3_ROOT`)."""

    _knobs: dict[str, Any] = {}

    def __init__(
        self,
        profile: str | None = None,
        api_key: str | None = None,
        client_timeout: int | None = None,
        config_file_path: str | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        username: str | None = None,
        admin: bool | None = None,
        s3_root: str | os.PathLike[str] | None = None,
    ) -> None:
        found = (
            api_key,
            profile,
            config_file_path,
            os.environ.get("BAUPLAN_API_KEY"),
            os.environ.get("BAUPLAN_PROFILE"),
        )
        if not any(found):
            raise ValueError("No API key found")  # the SDK's own words when no credential is found
        knobs = self._knobs
        root = root or knobs.get("root") or os.environ.get(ROOT_ENV)
        if not root:
            raise ValueError(f"EmbeddedBauplanSDK needs root= (or {ROOT_ENV})")
        self.root = Path(root).resolve()
        self.username: str = username or knobs.get("username") or os.environ.get(USER_ENV) or DEFAULT_USER
        if admin is None:
            admin = knobs.get("admin", os.environ.get(ADMIN_ENV, "") not in ("", "0"))
        self.admin = bool(admin)
        self.s3_root = Path(s3_root or knobs.get("s3_root") or os.environ.get(S3_ROOT_ENV) or self.root / "s3")
        self.profile = profile
        self.client_timeout = client_timeout
        self.faults = Faults(self.root)
        self.calls = _CALLS.setdefault(str(self.root), [])
        self._meta = self.root / "standin"
        self._meta.mkdir(parents=True, exist_ok=True)
        self.s3_root.mkdir(parents=True, exist_ok=True)
        from flows.lakehouse.local import LocalClient

        self.local = LocalClient(self.root / "lakehouse", author=self.username)

    def __repr__(self) -> str:
        return f"EmbeddedBauplanSDK(root={str(self.root)!r}, username={self.username!r})"

    def called(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call to `method` in this process, in order."""
        return [arguments for name, arguments in self.calls if name == method]

    def as_user(self, username: str, *, admin: bool = False) -> EmbeddedBauplanSDK:
        """Another user's client on the same lakehouse (same faults, same calls)."""
        return EmbeddedBauplanSDK(
            api_key=FAKE_API_KEY, root=self.root, username=username, admin=admin, s3_root=self.s3_root
        )

    # ------------------------------------------------------------------ plumbing
    def _record(self, method: str, arguments: dict[str, Any]) -> None:
        self.calls.append((method, dict(arguments)))
        line = json.dumps({"method": method, "arguments": _plain(arguments), "pid": os.getpid()})
        with open(self._meta / "calls.jsonl", "a") as out:
            out.write(line + "\n")

    def _creators(self) -> dict[str, str]:
        return _read_json(self._meta / "branches.json", {})

    def _set_creator(self, branch: str, user: str | None) -> None:
        with _locked(self._meta / "branches.lock"):
            creators = self._creators()
            if user is None:
                creators.pop(branch, None)
            else:
                creators[branch] = user
            _write_json(self._meta / "branches.json", creators)

    def _ref(self, ref: Any) -> str:
        """A ref argument as the embedded engine reads it; a detached ref is found on a branch holding it."""
        if isinstance(ref, Ref) and ref.type == bs.RefType.DETACHED and not ref._branch:
            for branch in self.local.get_branches():
                with contextlib.suppress(Exception):
                    self.local.store.resolve(f"{branch.name}@{ref.hash}")
                    return f"{branch.name}@{ref.hash}"
            raise http_error(
                bx.RefNotFoundError, f"ref not found: {ref.hash}", error_kind("RefNotFound", input_ref=ref.hash)
            )
        return _text(ref)

    def _hash(self, ref: str) -> str:
        return self.local.store.resolve(ref).hash

    def _reaches(self, branch: str, commit: str) -> bool:
        """Whether `commit` is in `branch`'s history."""
        try:
            self.local.store.resolve(f"{branch}@{commit}")
        except Exception:
            return False
        return True

    def _write_branch(self, branch: Any) -> str:
        """A branch a write may go to: not a tag, not `branch@hash`, existing."""
        name = MAIN if branch is None else _text(branch)
        if "@" in name or self.local.has_tag(name):
            raise http_error(
                bx.NotAWriteBranchRefError,
                f"not a writable branch: {name}",
                error_kind("NotAWriteBranchRef", input_ref=name),
            )
        if not self.local.has_branch(name):
            raise http_error(
                bx.BranchNotFoundError, f"branch not found: {name}", error_kind("BranchNotFound", branch_name=name)
            )
        return name

    @staticmethod
    def _table_name(table: Any, namespace: Any) -> tuple[str, str]:
        name = _text(table)
        ns = None if namespace is None else _text(namespace)
        if "." in name:
            qualifier, _, name = name.partition(".")
            if ns is not None and ns != qualifier:
                raise http_error(
                    bx.NamespaceUnresolvedError,
                    f"table {qualifier}.{name} is given with another namespace: {ns}",
                    error_kind("NamespaceUnresolved", table_name=name, namespace_name=ns),
                )
            ns = qualifier
        return ns or DEFAULT_NAMESPACE, name

    def _table_namespaces(self, ref: str) -> set[str]:
        return {key.split(".", 1)[0] for key in self.local.store.tree(self._hash(ref))}

    def _created_namespaces(self, ref: str) -> set[str]:
        found = set()
        for commit in self.local.get_commits(ref):
            created = commit.properties.get(NAMESPACE_PROPERTY)
            if created:
                found.add(created)
        return found

    def _namespace_exists(self, namespace: str, ref: str) -> bool:
        if namespace == DEFAULT_NAMESPACE or namespace in self._table_namespaces(ref):
            return True
        marked = self.local.get_commits(ref, filter_by_properties={NAMESPACE_PROPERTY: namespace}, limit=1)
        return bool(list(marked))

    def _require_namespace(self, namespace: str, ref: str) -> None:
        if not self._namespace_exists(namespace, ref):
            raise http_error(bx.NamespaceNotFoundError, f"namespace not found: {namespace} on {ref}", None)

    def _commit(self, branch: str, changes: dict[str, str | None], message: str, properties: dict[str, str]) -> str:
        store = self.local.store
        return store.commit(
            branch,
            base_hash=store.resolve(branch).hash,
            changes=changes,
            message=message,
            author=self.local.author,
            properties=properties,
        )

    def _table(self, info: Any) -> Table:
        location = info.metadata_location or ""
        try:
            updated = datetime.fromtimestamp(os.path.getmtime(location.removeprefix("file://")), tz=UTC)
        except OSError:
            updated = datetime.now(UTC)
        snapshot_ids = tuple(getattr(info, "snapshot_ids", ()) or ())
        return Table(
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"standin:{info.namespace}.{info.name}"),
            name=info.name,
            namespace=info.namespace,
            kind=bs.TableKind.Table,
            fields=[TableField(i, f.name, f.type, bool(f.required)) for i, f in enumerate(info.fields, start=1)],
            records=info.records,
            size=None,
            snapshots=len(snapshot_ids) if snapshot_ids else None,
            current_snapshot_id=getattr(info, "snapshot_id", None),
            current_schema_id=0,
            metadata_location=location,
            last_updated_at=updated,
            partitions=[],
            properties={},
        )

    def _commit_object(self, commit: Any, branch: str | None) -> Commit:
        actor = Actor(commit.author or "")
        message = commit.message or None
        subject, _, body = (message or "").partition("\n")
        parents = list(commit.parent_hashes)
        return Commit(
            ref=_detached(commit.hash, branch),
            message=message,
            subject=subject or None,
            body=body.strip() or None,
            author=actor,
            authors=[actor],
            committer=actor,
            signed_off_by=[],
            authored_date=commit.authored_date,
            committed_date=commit.authored_date,
            parent_hashes=parents,
            parent_ref=_detached(parents[0], branch) if parents else None,
            parent_merge_ref=_detached(parents[1], None) if len(parents) > 1 else None,
            properties=dict(commit.properties),
        )

    def _translate(self, exc: Exception, method: str, arguments: Mapping[str, Any]) -> BaseException:
        """The SDK error a real Bauplan raises where the embedded engine raised `exc`."""
        from flows.lakehouse import errors as lx
        from flows.lakehouse.names import InvalidRefError

        message = str(exc)
        if method in ("scan", "query") and not isinstance(exc, lx.BackendUnavailableError):
            return bx.BauplanQueryError(message)  # the SDK: scan and query raise BauplanQueryError if they fail
        table = f"{arguments.get('namespace') or DEFAULT_NAMESPACE}.{_plain(arguments.get('table'))}"
        writes_to = {_plain(arguments.get(k)) for k in ("branch", "into_branch") if k in arguments}
        if isinstance(exc, InvalidRefError):
            return http_error(bx.InvalidRefError, message, error_kind("InvalidRef", input_ref=exc.ref))
        if isinstance(exc, lx.TagNotFoundError):
            return http_error(bx.TagNotFoundError, message, error_kind("TagNotFound", tag_name=exc.tag))
        if isinstance(exc, lx.BranchNotFoundError) and exc.branch in writes_to:
            return http_error(bx.BranchNotFoundError, message, error_kind("BranchNotFound", branch_name=exc.branch))
        if isinstance(exc, lx.BranchNotFoundError | lx.RefNotFoundError):
            ref = exc.branch if isinstance(exc, lx.BranchNotFoundError) else exc.ref
            return http_error(bx.RefNotFoundError, f"ref not found: {ref}", error_kind("RefNotFound", input_ref=ref))
        if isinstance(exc, lx.BranchExistsError) or (isinstance(exc, lx.RefNameTakenError) and exc.kind == "branch"):
            return http_error(bx.BranchExistsError, message)
        if isinstance(exc, lx.TagExistsError | lx.RefNameTakenError):
            return http_error(bx.TagExistsError, message)
        if isinstance(exc, lx.ImmutableTagError) and method == "delete_branch":
            return http_error(bx.NotABranchRefError, message, error_kind("NotABranchRef", input_ref=exc.tag))
        if isinstance(exc, lx.ImmutableTagError):
            return http_error(bx.NotAWriteBranchRefError, message, error_kind("NotAWriteBranchRef", input_ref=exc.tag))
        if isinstance(exc, lx.TableExistsError) and method == "revert_table":
            kind = error_kind("RevertDestinationTableExists", source_table_name=table, destination_table_name=table)
            return http_error(bx.RevertDestinationTableExistsError, message, kind)
        if isinstance(exc, lx.TableExistsError):
            return http_error(bx.TableExistsError, message)
        if isinstance(exc, lx.NothingToRevertError):
            kind = error_kind("RevertIdenticalTable", source_table_name=table, destination_table_name=table)
            return http_error(bx.RevertIdenticalTableError, message, kind)
        if isinstance(exc, lx.TableNotFoundError):
            return http_error(bx.TableNotFoundError, message)
        if isinstance(exc, lx.MergeConflictError):
            return http_error(bx.MergeConflictError, message)
        if isinstance(exc, lx.ConcurrentUpdateError):
            return http_error(bx.BranchHeadChangedError, message)
        if isinstance(exc, lx.QueryError):
            return bx.BauplanQueryError(message)
        if isinstance(exc, lx.SourceError | lx.ImportFailedError):
            return http_error(bx.InvalidDataError, message, error_kind("BadRequest"))
        if isinstance(exc, lx.BackendUnavailableError):
            return http_error(bx.ServiceUnavailableError, message)
        if isinstance(exc, lx.InvalidNameError):
            if "read-only" in message:  # `branch@hash`: a past commit
                return http_error(bx.NotAWriteBranchRefError, message, error_kind("NotAWriteBranchRef", input_ref=""))
            if "delete branch main" in message:
                return http_error(bx.DeleteBranchForbiddenError, message, error_kind("DeleteBranchForbidden"))
            return ValueError(message)  # the SDK validates parameters client-side: "one or more ... are invalid"
        return http_error(bx.InternalError, f"{type(exc).__name__}: {message}")

    # -------------------------------------------------------------------- account
    @_sdk_method()
    def info(self) -> InfoState:
        from importlib.metadata import version

        user = self.username
        return InfoState(
            client_version=version("bauplan"),
            organization=OrganizationInfo(id="org-standin", name="Stand-in", slug="standin"),
            runners=[RunnerNodeInfo(hostname="standin-runner")],
            user=UserInfo(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"standin-user:{user}")),
                username=user,
                first_name=user,
                last_name="",
                full_name=user,
            ),
        )

    # ------------------------------------------------------------------- branches
    @_sdk_method("branch", "from_ref", "if_not_exists")
    def create_branch(self, branch: Any, from_ref: Any, if_not_exists: bool) -> Branch:
        name = _text(branch)
        prefix, dot, rest = name.partition(".")
        if not self.admin and not (prefix == self.username and dot and rest):
            raise http_error(
                bx.CreateBranchForbiddenError,
                f"user {self.username} may not create branch {name}: branch names must start with '{self.username}.'",
                error_kind("CreateBranchForbidden"),
            )
        if if_not_exists and self.local.has_branch(name):
            return self._get_branch(name)
        created = self.local.create_branch(name, self._ref(from_ref))
        self._set_creator(name, self.username)
        return _branch_ref(created.name, created.hash)

    @_sdk_method("branch")
    def has_branch(self, branch: Any) -> bool:
        return self.local.has_branch(_text(branch))

    @_sdk_method("branch")
    def get_branch(self, branch: Any) -> Branch:
        return self._get_branch(_text(branch))

    def _get_branch(self, name: str) -> Branch:
        if not self.local.has_branch(name) and self.local.has_tag(name):
            raise http_error(
                bx.NotABranchRefError, f"not a branch: {name}", error_kind("NotABranchRef", input_ref=name)
            )
        found = self.local.get_branch(name)
        return _branch_ref(found.name, found.hash)

    @_sdk_method("branch", "if_exists")
    def delete_branch(self, branch: Any, if_exists: bool) -> bool:
        name = _text(branch)
        if if_exists and not self.local.has_branch(name):
            return False
        self.local.delete_branch(name)
        self._set_creator(name, None)
        return True

    @_sdk_method("name", "user", "limit")
    def get_branches(self, name: str | None, user: str | None, limit: int | None) -> Iterator[Branch]:
        creators = self._creators()
        found = (
            _branch_ref(b.name, b.hash)
            for b in self.local.get_branches()
            if (name is None or name in b.name) and (user is None or creators.get(b.name) == user)
        )
        return _iterate(_bounded(found, limit))

    # ----------------------------------------------------------------------- tags
    @_sdk_method("tag", "from_ref", "if_not_exists")
    def create_tag(self, tag: Any, from_ref: Any, if_not_exists: bool) -> Tag:
        name = _text(tag)
        if if_not_exists and self.local.has_tag(name):
            found = self.local.get_tag(name)
        else:
            found = self.local.create_tag(name, self._ref(from_ref))
        return _tag_ref(found.name, found.hash)

    @_sdk_method("tag")
    def has_tag(self, tag: Any) -> bool:
        return self.local.has_tag(_text(tag))

    @_sdk_method("tag")
    def get_tag(self, tag: Any) -> Tag:
        name = _text(tag)
        if not self.local.has_tag(name) and self.local.has_branch(name):
            raise http_error(bx.NotATagRefError, f"not a tag: {name}", error_kind("NotATagRef", input_ref=name))
        found = self.local.get_tag(name)
        return _tag_ref(found.name, found.hash)

    @_sdk_method("filter_by_name", "limit")
    def get_tags(self, filter_by_name: str | None, limit: int | None) -> Iterator[Tag]:
        found = (
            _tag_ref(t.name, t.hash) for t in self.local.get_tags() if not filter_by_name or filter_by_name in t.name
        )
        return _iterate(_bounded(found, limit))

    @_sdk_method("tag", "if_exists")
    def delete_tag(self, tag: Any, if_exists: bool) -> bool:
        name = _text(tag)
        if if_exists and not self.local.has_tag(name):
            return False
        self.local.delete_tag(name)
        return True

    # -------------------------------------------------------------------- commits
    @_sdk_method("ref", "filter_by_properties", "limit")
    def get_commits(self, ref: Any, filter_by_properties: dict[str, str] | None, limit: int | None) -> Iterator[Commit]:
        text = self._ref(ref)
        commits = self.local.get_commits(text, filter_by_properties=filter_by_properties, limit=limit)
        branch = text.partition("@")[0]
        return _iterate([self._commit_object(c, branch) for c in commits])

    @_sdk_method("source_ref", "into_branch", "commit_message", "commit_body", "commit_properties")
    def merge_branch(
        self,
        source_ref: Any,
        into_branch: Any,
        commit_message: str | None,
        commit_body: str | None,
        commit_properties: dict[str, str] | None,
    ) -> Branch:
        into = self._write_branch(into_branch)
        source = self._ref(source_ref)
        head, source_hash = self._hash(into), self._hash(source)
        if source_hash == head or self._reaches(into, source_hash):
            # Guessed: the service refuses a merge with nothing to merge (the source is already in the target).
            raise http_error(bx.SameRefError, f"nothing to merge: {source} ({source_hash}) is already in {into}")
        message = commit_message or f"merge {source} into {into}"
        new = self.local.merge_branch(
            source,
            into,
            commit_message=f"{message}\n\n{commit_body}" if commit_body else message,
            commit_properties=commit_properties,
        )
        return _branch_ref(into, new if isinstance(new, str) else new.hash)

    # --------------------------------------------------------------------- tables
    @_sdk_method("ref", "filter_by_name", "filter_by_namespace", "limit")
    def get_tables(
        self, ref: Any, filter_by_name: str | None, filter_by_namespace: Any, limit: int | None
    ) -> Iterator[Table]:
        text = self._ref(ref)
        namespace = None if filter_by_namespace is None else _text(filter_by_namespace)
        if namespace is not None:
            self._require_namespace(namespace, text)
        found = (
            self._table(t)
            for t in self.local.get_tables(text)
            if (namespace is None or t.namespace == namespace) and (not filter_by_name or filter_by_name in t.name)
        )
        return _iterate(_bounded(found, limit))

    @_sdk_method("table", "ref", "namespace")
    def has_table(self, table: Any, ref: Any, namespace: Any) -> bool:
        ns, name = self._table_name(table, namespace)
        text = self._ref(ref)
        self._require_namespace(ns, text)
        return self.local.has_table(name, text, namespace=ns)

    @_sdk_method("table", "ref", "namespace")
    def get_table(self, table: Any, ref: Any, namespace: Any) -> Table:
        ns, name = self._table_name(table, namespace)
        text = self._ref(ref)
        self._require_namespace(ns, text)
        return self._table(self.local.get_table(name, text, namespace=ns))

    # ----------------------------------------------------------------- namespaces
    @_sdk_method("namespace", "ref")
    def has_namespace(self, namespace: Any, ref: Any) -> bool:
        return self._namespace_exists(_text(namespace), self._ref(ref))

    @_sdk_method("namespace", "ref")
    def get_namespace(self, namespace: Any, ref: Any) -> Namespace:
        name, text = _text(namespace), self._ref(ref)
        self._require_namespace(name, text)
        return Namespace(name)

    @_sdk_method("ref", "filter_by_name", "limit")
    def get_namespaces(self, ref: Any, filter_by_name: str | None, limit: int | None) -> Iterator[Namespace]:
        text = self._ref(ref)
        names = {DEFAULT_NAMESPACE} | self._table_namespaces(text) | self._created_namespaces(text)
        found = (Namespace(n) for n in sorted(names) if not filter_by_name or filter_by_name in n)
        return _iterate(_bounded(found, limit))

    @_sdk_method("namespace", "branch", "commit_body", "commit_properties", "if_not_exists")
    def create_namespace(
        self,
        namespace: Any,
        branch: Any,
        commit_body: str | None,
        commit_properties: dict[str, str] | None,
        if_not_exists: bool,
    ) -> Namespace:
        from flows.lakehouse.names import validate_identifier

        name = validate_identifier(_text(namespace), "namespace")
        target = self._write_branch(branch)
        if self._namespace_exists(name, target):
            if if_not_exists:
                return Namespace(name)
            raise http_error(bx.NamespaceExistsError, f"namespace already exists: {name} on {target}")
        message = f"create namespace {name}" + (f"\n\n{commit_body}" if commit_body else "")
        self._commit(target, {}, message, {**(commit_properties or {}), NAMESPACE_PROPERTY: name})
        return Namespace(name)

    # ------------------------------------------------------------- table writes
    @_sdk_method("table", "search_uri", "branch", "namespace", "replace")
    def create_table(self, table: Any, search_uri: str, branch: Any, namespace: Any, replace: bool | None) -> Table:
        ns, name = self._table_name(table, namespace)
        target = self._write_branch(branch)
        path = s3_path(self.s3_root, search_uri)
        self._require_namespace(ns, target)
        created = self.local.create_table(name, str(path), branch=target, namespace=ns, replace=bool(replace))
        return self._table(created)

    @_sdk_method("table", "search_uri", "branch", "namespace")
    def import_data(self, table: Any, search_uri: str, branch: Any, namespace: Any) -> TableDataImportState:
        from flows.lakehouse import errors as lx

        ns, name = self._table_name(table, namespace)
        target = self._write_branch(branch)
        path = s3_path(self.s3_root, search_uri)
        self._require_namespace(ns, target)
        if not self.local.has_table(name, target, namespace=ns):
            raise http_error(bx.TableNotFoundError, f"table not found: {ns}.{name} on {target}")
        ctx = TableDataImportContext(name, ns, target, search_uri, preview="")
        job_id = f"standin-import-{uuid.uuid4().hex[:12]}"
        arguments = {"table": table, "search_uri": search_uri, "branch": branch, "namespace": namespace}
        fault = self.faults.take("import_data", "import_status", arguments)
        if fault is not None:
            return TableDataImportState(ctx, job_id, fault["status"], fault["message"])
        try:
            self.local.import_data(name, str(path), branch=target, namespace=ns)
        except (lx.SourceError, lx.ImportFailedError, lx.ConcurrentUpdateError) as exc:
            # A failed job does not raise: the SDK reports it in the state.
            return TableDataImportState(ctx, job_id, "FAILED", str(exc))
        return TableDataImportState(ctx, job_id, "SUCCESS", None)

    @_sdk_method("table", "branch", "namespace", "if_exists", "commit_body", "commit_properties")
    def delete_table(
        self,
        table: Any,
        branch: Any,
        namespace: Any,
        if_exists: bool,
        commit_body: str | None,
        commit_properties: dict[str, str] | None,
    ) -> Branch:
        ns, name = self._table_name(table, namespace)
        target = self._write_branch(branch)
        if if_exists and not (self._namespace_exists(ns, target) and self.local.has_table(name, target, namespace=ns)):
            return _branch_ref(target, self._hash(target))
        self._require_namespace(ns, target)
        if commit_body is None and commit_properties is None:
            deleted = self.local.delete_table(name, target, namespace=ns)
            return _branch_ref(deleted.name, deleted.hash)
        if not self.local.has_table(name, target, namespace=ns):
            raise http_error(bx.TableNotFoundError, f"table not found: {ns}.{name} on {target}")
        properties = {"wap.operation": "delete_table", **(commit_properties or {})}
        new = self._commit(target, {f"{ns}.{name}": None}, commit_body or f"delete table {ns}.{name}", properties)
        return _branch_ref(target, new)

    @_sdk_method("table", "namespace", "source_ref", "into_branch", "replace", "commit_body", "commit_properties")
    def revert_table(
        self,
        table: Any,
        namespace: Any,
        source_ref: Any,
        into_branch: Any,
        replace: bool | None,
        commit_body: str | None,
        commit_properties: dict[str, str] | None,
    ) -> Branch:
        ns, name = self._table_name(table, namespace)
        into = self._write_branch(into_branch)
        source = self._ref(source_ref)
        if self._hash(source) == self._hash(into):
            raise http_error(bx.SameRefError, f"{source} and {into} are the same commit: nothing to revert")
        reverted = self.local.revert_table(
            name,
            namespace=ns,
            source_ref=source,
            into_branch=into,
            replace=replace,
            commit_body=commit_body,
            commit_properties=commit_properties,
        )
        return _branch_ref(into, reverted.hash)

    # ---------------------------------------------------------------------- reads
    @_sdk_method("table", "ref", "columns", "filters", "limit", "namespace")
    def scan(
        self, table: Any, ref: Any, columns: list[str] | None, filters: str | None, limit: int | None, namespace: Any
    ) -> pa.Table:
        ns, name = self._table_name(table, namespace)
        text = MAIN if ref is None else self._ref(ref)
        return self.local.scan(name, ref=text, columns=columns, filters=filters, namespace=ns, limit=limit)

    @_sdk_method("query", "ref", "max_rows", "namespace")
    def query(self, query: str, ref: Any, max_rows: int | None, namespace: Any) -> pa.Table:
        text = MAIN if ref is None else self._ref(ref)
        result = self.local.query(query, ref=text, namespace=None if namespace is None else _text(namespace))
        return result if max_rows is None else result.slice(0, max(int(max_rows), 0))


# Every other public method of bauplan.Client: its signature, and NotImplementedError when called.
for _name in public_attributes(REAL_CLIENT):
    if callable(getattr(REAL_CLIENT, _name)) and _name not in EmbeddedBauplanSDK.__dict__:
        setattr(EmbeddedBauplanSDK, _name, _not_implemented(_name))

# The bauplan.Client methods the stand-in implements (the others raise NotImplementedError).
IMPLEMENTED_METHODS: tuple[str, ...] = tuple(
    n for n in public_attributes(REAL_CLIENT) if callable(getattr(REAL_CLIENT, n)) and n not in _UNIMPLEMENTED
)


# --------------------------------------------------------------------------- injection


def client_class(
    root: str | os.PathLike[str],
    *,
    username: str = DEFAULT_USER,
    admin: bool = False,
    s3_root: str | os.PathLike[str] | None = None,
) -> type[EmbeddedBauplanSDK]:
    """A factory to put in place of `bauplan.Client`: `Client(profile=..., api_key=...)` makes a stand-in on
    `root` with these knobs. Its methods carry the real signatures (`inspect.signature(bauplan.Client.scan)`)."""
    knobs = {"root": str(Path(root).resolve()), "username": username, "admin": admin}
    if s3_root is not None:
        knobs["s3_root"] = str(s3_root)
    return type("Client", (EmbeddedBauplanSDK,), {"_knobs": knobs, "_real_client": REAL_CLIENT, "__module__": __name__})


def install_from_env(module: Any = None) -> type[EmbeddedBauplanSDK] | None:
    """Replace `bauplan.Client` per `WAP_TEST_BAUPLAN_STANDIN` & co. (what standin_site/sitecustomize.py calls)."""
    root = os.environ.get(ROOT_ENV)
    if not root:
        return None
    factory = client_class(
        root,
        username=os.environ.get(USER_ENV) or DEFAULT_USER,
        admin=os.environ.get(ADMIN_ENV, "") not in ("", "0"),
        s3_root=os.environ.get(S3_ROOT_ENV) or None,
    )
    (module or bauplan).Client = factory
    return factory


def subprocess_env(
    root: str | os.PathLike[str],
    *,
    username: str = DEFAULT_USER,
    admin: bool = False,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a subprocess (e.g. `wap run`) whose `bauplan.Client` is the stand-in on `root`."""
    env = dict(os.environ if base is None else base)
    paths = [str(SITE_DIR), str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env[ROOT_ENV] = str(Path(root).resolve())
    env[USER_ENV] = username
    env[ADMIN_ENV] = "1" if admin else "0"
    env["WAP_BACKEND"] = "bauplan"
    env["BAUPLAN_API_KEY"] = FAKE_API_KEY
    env.pop("BAUPLAN_PROFILE", None)
    return env


if pytest is not None:

    @pytest.fixture
    def bauplan_standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedBauplanSDK]:
        """`bauplan.Client` replaced by stand-ins sharing one lakehouse under tmp_path; yields one of them
        (`.root`, `.username` "tester", `.faults`, `.calls`, `.local`). Sets WAP_BACKEND=bauplan and a fake
        BAUPLAN_API_KEY."""
        root = tmp_path / "bauplan-standin"
        monkeypatch.setattr(bauplan, "Client", client_class(root))
        monkeypatch.setenv("WAP_BACKEND", "bauplan")
        monkeypatch.setenv("BAUPLAN_API_KEY", FAKE_API_KEY)
        monkeypatch.delenv("BAUPLAN_PROFILE", raising=False)
        sdk = bauplan.Client()
        yield sdk
        _CALLS.pop(str(sdk.root), None)
