"""The Bauplan backend: a thin pass-through to `bauplan.Client` behind the lakehouse interface.

Every public method mirrors `LocalClient` (names, parameters, return types). Names are validated with
the same rules as the embedded backend before anything is sent; SDK objects come back as our models;
every SDK exception comes back as one of `errors` (see `translate_error`), with the API key scrubbed.

Every SDK call goes through `BauplanClient._call`, which only accepts the exact keywords listed in
`SDK_CALLS`; the tests check that table against the installed SDK's signatures, so an SDK upgrade that
renames a method or keyword fails the contract test instead of failing in production.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn, ParamSpec, TypeVar, cast

import bauplan
import bauplan.exceptions as bx
import pyarrow as pa

from flows.shorten import shorten

from .errors import (
    AuthenticationError,
    BackendContractError,
    BackendUnavailableError,
    BranchExistsError,
    BranchNotFoundError,
    ConcurrentUpdateError,
    ImportFailedError,
    InvalidNameError,
    LakehouseError,
    MergeConflictError,
    NothingToRevertError,
    PermissionDeniedError,
    QueryError,
    RefNameTakenError,
    RefNotFoundError,
    SourceError,
    TableExistsError,
    TableNotFoundError,
    TagExistsError,
    TagNotFoundError,
)
from .models import Branch, Commit, ImportState, InfoState, TableField, TableInfo, Tag, UserInfo
from .names import (
    DEFAULT_NAMESPACE,
    MAIN,
    resolve_table_name,
    split_ref,
    validate_branch,
    validate_identifier,
    validate_tag,
)

API_KEY_ENV = "BAUPLAN_API_KEY"

# Keywords passed to `bauplan.Client(...)`: options given to `connect("bauplan", ...)` go through as is.
SDK_CLIENT_OPTIONS: tuple[str, ...] = ("profile", "api_key", "client_timeout", "config_file_path")

# Every SDK method this module calls, with the exact keywords it passes (always all of them, by name).
SDK_CALLS: dict[str, tuple[str, ...]] = {
    "info": (),
    "create_branch": ("branch", "from_ref", "if_not_exists"),
    "has_branch": ("branch",),
    "get_branch": ("branch",),
    "delete_branch": ("branch", "if_exists"),
    "get_branches": ("name", "user", "limit"),
    "create_tag": ("tag", "from_ref"),
    "has_tag": ("tag",),
    "get_tag": ("tag",),
    "get_tags": (),
    "delete_tag": ("tag",),
    "get_commits": ("ref", "filter_by_properties", "limit"),
    "merge_branch": ("source_ref", "into_branch", "commit_message", "commit_body", "commit_properties"),
    "get_tables": ("ref", "filter_by_namespace"),
    "has_table": ("table", "ref", "namespace"),
    "get_table": ("table", "ref", "namespace"),
    "create_namespace": ("namespace", "branch", "if_not_exists"),
    "create_table": ("table", "search_uri", "branch", "namespace", "replace"),
    "import_data": ("table", "search_uri", "branch", "namespace"),
    "delete_table": ("table", "branch", "namespace"),
    "revert_table": (
        "table",
        "namespace",
        "source_ref",
        "into_branch",
        "replace",
        "commit_body",
        "commit_properties",
    ),
    "scan": ("table", "ref", "columns", "filters", "limit", "namespace"),
    "query": ("query", "ref", "namespace", "max_rows"),
}

# `TableDataImportState.job_status` values meaning the job finished well (the SDK documents "SUCCESS").
_JOB_SUCCESS = frozenset({"SUCCESS", "SUCCEEDED", "COMPLETE", "COMPLETED"})
# Outcomes of a job that did not fail on its data: the runner timed out or lost its heartbeat. Retried (the write
# task retries BackendUnavailableError); FAILED, CANCELLED and anything else are the import's verdict.
_JOB_TRANSIENT = frozenset({"TIMEOUT", "TIMED_OUT", "HEARTBEAT_FAILURE"})
# What each *ForbiddenError refused, for the one-line error.
_FORBIDDEN = {
    "create_branch": "create branch {branch}",
    "delete_branch": "delete branch {branch}",
    "merge_branch": "merge {source_ref} into {into_branch}",
    "create_tag": "create tag {tag}",
    "delete_tag": "delete tag {tag}",
    "create_table": "create table {table} on {branch}",
    "import_data": "import into {table} on {branch}",
    "delete_table": "delete table {table} on {branch}",
    "revert_table": "revert table {table} on {into_branch}",
}
BRANCH_RULE = "Bauplan lets a user create only branches named <username>.<name>"
_MAX_DETAIL = 500
_IMPORT_OPERATIONS = frozenset({"create_table", "import_data"})
_QUERY_OPERATIONS = frozenset({"scan", "query"})
# A plain `BauplanError` (no HTTP status) carrying one of these is a transport failure, e.g.
# "transport error: io: failed to lookup address information" when the service is unreachable.
_TRANSIENT_HINTS = ("transport error", "timed out", "timeout", "connection", "unavailable", "dns error")


# What `info()` answered for each set of credentials (see BauplanClient.info).
_INFOS: dict[tuple[Any, ...], InfoState] = {}

# ----------------------------------------------------------------------------- secrets


class _Secret:
    """Holds the API key so that repr(), str(), logs and tracebacks with locals show only '***'."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would write the key to disk (task caches, result persistence): refuse.
        raise TypeError("a Bauplan API key is not picklable")


def _known_secrets(extra: Iterable[str] = ()) -> list[str]:
    # The environment key is read at translation time: it may be set after the client was made.
    found = {s for s in (*extra, os.environ.get(API_KEY_ENV, "")) if s}
    return sorted(found, key=len, reverse=True)  # longest first, so no key is left half-scrubbed


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known API key (BAUPLAN_API_KEY and `secrets`) in `text` with '***'."""
    for secret in _known_secrets(secrets):
        text = text.replace(secret, "***")
    return text


def _leaks(exc: BaseException, secrets: Iterable[str]) -> bool:
    rendered = f"{exc!s} {exc!r} {getattr(exc, 'message', '')}"
    return any(secret in rendered for secret in _known_secrets(secrets))


# ------------------------------------------------------------------ error translation


def _detail(exc: BaseException) -> str:
    """The SDK's own message on one line (HTTP errors keep it in `.message`; their str() is the args tuple)."""
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) and message else str(exc)
    state_error = getattr(getattr(exc, "state", None), "error", None)
    if isinstance(state_error, str) and state_error and state_error not in text:
        text = f"{text}: {state_error}"
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        text = f"{text} (HTTP {code})"
    text = " ".join(text.split()) or type(exc).__name__
    return shorten(text, _MAX_DETAIL)


def _kind_value(exc: BaseException, attribute: str) -> str | None:
    """A field of the SDK error's typed `kind` (e.g. `branch_name`), when the service sent one."""
    value = getattr(getattr(exc, "kind", None), attribute, None)
    if value is None:
        return None
    return value if isinstance(value, str) else getattr(value, "name", None) or str(value)


def _first(*values: Any) -> str:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return "(unknown)"


def _table_label(exc: BaseException, context: Mapping[str, Any]) -> str:
    table = _kind_value(exc, "table_name") or context.get("table")
    if not isinstance(table, str) or not table:
        return "(unknown)"
    if "." in table:
        return table
    return f"{context.get('namespace') or DEFAULT_NAMESPACE}.{table}"


def _ref_label(exc: BaseException, context: Mapping[str, Any]) -> str:
    # The ref an operation reads from: create_branch's `branch` is the new name, so `from_ref` comes first.
    return _first(
        _kind_value(exc, "input_ref"),
        context.get("ref"),
        context.get("from_ref"),
        context.get("source_ref"),
        context.get("branch"),
    )


def _is_transient_text(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(hint in text for hint in _TRANSIENT_HINTS)


def _forbidden_message(exc: BaseException, op: str, context: Mapping[str, Any], detail: str) -> str:
    refused = _FORBIDDEN.get(op)
    what = refused.format_map(_Unknown({k: v for k, v in context.items() if isinstance(v, str)})) if refused else None
    message = f"bauplan {op}: permission denied" + (f": you may not {what}" if what else "") + f": {detail}"
    if isinstance(exc, bx.CreateBranchForbiddenError) or op == "create_branch":
        branch = context.get("branch")
        user = context.get("__user__")  # the username, once info() answered
        if isinstance(branch, str) and user and not branch.startswith(f"{user}."):
            message += f" ({BRANCH_RULE}: {branch!r} does not start with {user + '.'!r})"
        else:
            message += f" ({BRANCH_RULE})"
    return message


class _Unknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "(unknown)"


def translate_error(
    exc: BaseException,
    *,
    operation: str | None = None,
    context: Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> LakehouseError:
    """Map an exception raised by the Bauplan SDK to the lakehouse exception with the same meaning.

    `operation` is the client method that failed (some SDK errors mean different things for an import, a
    query or a merge); `context` holds its arguments, used to name the branch or table in messages when the
    SDK error does not carry them. Any configured API key is replaced by '***' in the message.
    """
    if isinstance(exc, LakehouseError):
        return exc
    context = context or {}
    secrets = list(secrets)
    op = operation or "call"
    detail = _detail(exc)
    error: LakehouseError

    # Most specific SDK classes first: BranchExistsError, MergeConflictError... are UpdateConflictErrors.
    if isinstance(exc, bx.TagExistsError):
        error = TagExistsError(_first(_kind_value(exc, "tag_name"), context.get("tag")))
    elif isinstance(exc, bx.TagNotFoundError | bx.NotATagRefError):  # get_tag("main"): no tag of that name
        error = TagNotFoundError(_first(_kind_value(exc, "tag_name"), context.get("tag")))
    elif isinstance(exc, bx.RevertDestinationTableExistsError):
        error = TableExistsError(_table_label(exc, context), _first(context.get("into_branch")))
    elif isinstance(exc, bx.RevertIdenticalTableError) or (isinstance(exc, bx.SameRefError) and op == "revert_table"):
        error = NothingToRevertError(f"bauplan {op}: the table is already in that state: {detail}")
    elif isinstance(exc, bx.BranchExistsError):
        error = BranchExistsError(_first(_kind_value(exc, "branch_name"), context.get("branch")))
    elif isinstance(exc, bx.TableExistsError):
        error = TableExistsError(_table_label(exc, context), _first(context.get("branch"), context.get("ref")))
    elif isinstance(exc, bx.MergeConflictError):
        error = MergeConflictError(
            _first(context.get("source_ref"), _kind_value(exc, "source_ref")),
            _first(context.get("into_branch"), _kind_value(exc, "destination_ref")),
            [],  # the SDK does not say which tables conflict
        )
    elif isinstance(exc, bx.UpdateConflictError):  # BranchHeadChangedError and other lost races
        error = ConcurrentUpdateError(f"bauplan {op}: the branch changed concurrently: {detail}")
    elif isinstance(exc, bx.NamespaceUnresolvedError):
        error = InvalidNameError(f"bauplan {op}: ambiguous namespace: {detail}")
    elif isinstance(exc, bx.ConflictError):
        if op == "merge_branch":
            error = MergeConflictError(_first(context.get("source_ref")), _first(context.get("into_branch")), [])
        else:  # a 409 outside a merge is a write that lost a race, not a merge conflict
            error = ConcurrentUpdateError(f"bauplan {op}: conflict: {detail}")
    elif isinstance(exc, bx.BranchNotFoundError):
        error = BranchNotFoundError(
            _first(_kind_value(exc, "branch_name"), context.get("branch"), context.get("into_branch"))
        )
    elif isinstance(exc, bx.TableNotFoundError) or (
        isinstance(exc, bx.NamespaceNotFoundError) and context.get("table")
    ):
        # The embedded backend has no namespace objects: a table in a missing namespace is a missing table.
        error = TableNotFoundError(_table_label(exc, context), _ref_label(exc, context))
    elif isinstance(exc, bx.RefNotFoundError):
        error = RefNotFoundError(_ref_label(exc, context))
    elif isinstance(exc, bx.NotABranchRefError):
        # Writing to a tag or `branch@hash`: the embedded backend refuses this as an invalid name too.
        error = InvalidNameError(f"bauplan {op}: not a writable branch: {detail}")
    elif isinstance(exc, bx.InvalidRefError):
        error = RefNotFoundError(_ref_label(exc, context))
    elif isinstance(exc, bx.ForbiddenError):
        error = PermissionDeniedError(_forbidden_message(exc, op, context, detail))
    elif isinstance(exc, bx.UnauthorizedError):
        error = AuthenticationError(f"bauplan {op}: credentials refused: {detail}")
    elif isinstance(
        exc,
        bx.TooManyRequestsError
        | bx.InternalError
        | bx.BadGatewayError
        | bx.ServiceUnavailableError
        | bx.GatewayTimeoutError,
    ):
        error = BackendUnavailableError(f"bauplan {op}: service unavailable, retry later: {detail}")
    elif isinstance(exc, bx.BadRequestError):  # incl. InvalidDataError
        if op in _IMPORT_OPERATIONS:
            error = SourceError(f"bauplan {op}: source rejected: {detail}")
        elif op in _QUERY_OPERATIONS:
            error = QueryError(f"bauplan {op}: query rejected: {detail}")
        else:
            error = LakehouseError(f"bauplan {op}: bad request: {detail}")
    elif isinstance(exc, bx.BauplanQueryError | bx.NoResultsFoundError):
        error = QueryError(f"bauplan {op} failed: {detail}")
    elif isinstance(exc, bx.TableCreatePlanStatusError | bx.TableCreatePlanApplyStatusError):
        error = ImportFailedError(f"bauplan {op}: table creation job failed: {detail}")
    elif isinstance(exc, bx.BauplanJobError):
        # Documented as raised only when a job cannot be submitted or times out: transient.
        error = BackendUnavailableError(f"bauplan {op}: job could not run, retry later: {detail}")
    elif isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, bx.BauplanError | OSError) and _is_transient_text(exc)
    ):
        error = BackendUnavailableError(f"bauplan {op}: cannot reach the service, retry later: {detail}")
    elif isinstance(exc, TypeError):
        # The SDK refused the arguments' shape: it changed under this code (SDK_CALLS is checked against the
        # installed SDK by the contract test, so this is drift at run time, e.g. another SDK version installed).
        error = BackendContractError(
            f"internal error: bauplan {op}: the installed Bauplan SDK ({getattr(bauplan, '__version__', '?')}) does"
            f" not accept this call ({detail}): install the SDK version pyproject.toml pins"
        )
    elif isinstance(exc, ValueError) and "api key" in str(exc).lower():
        error = AuthenticationError(f"bauplan {op}: {detail}")
    elif isinstance(exc, ValueError):  # the SDK's "one or more parameters are invalid"
        error = InvalidNameError(f"bauplan {op}: invalid argument: {detail}")
    else:
        error = LakehouseError(f"bauplan {op} failed: {type(exc).__name__}: {detail}")

    error.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in error.args)
    return error


P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Run a client method and re-raise whatever the SDK raised as a lakehouse error; a method returning an
    iterator (the SDK's listings are lazy) gets the same translation for what it raises while consumed."""
    signature = inspect.signature(method)

    def reraise(exc: Exception, args: Any, kwargs: Any) -> NoReturn:
        client = cast(BauplanClient, args[0])  # the decorated methods are BauplanClient's: args[0] is self
        try:
            context = dict(signature.bind(*args, **kwargs).arguments)
            context.pop("self", None)
        except TypeError:
            context = {}
        context["__user__"] = client._username
        secrets = client._secrets()
        error = translate_error(exc, operation=method.__name__, context=context, secrets=secrets)
        if _leaks(exc, secrets):
            raise error from None  # the SDK's message holds the key: keep it out of tracebacks
        raise error from exc

    def consumed(items: Iterator[Any], args: Any, kwargs: Any) -> Iterator[Any]:
        try:
            yield from items
        except LakehouseError:
            raise
        except Exception as exc:
            reraise(exc, args, kwargs)

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        signature.bind(*args, **kwargs)  # a caller's wrong arguments are its TypeError, not the SDK's
        try:
            result = method(*args, **kwargs)
        except LakehouseError:
            raise
        except Exception as exc:
            reraise(exc, args, kwargs)
        if isinstance(result, Iterator):
            return cast(R, consumed(result, args, kwargs))
        return result

    return wrapper


# ---------------------------------------------------------------------- conversions


def _branch(obj: Any) -> Branch:
    return Branch(name=obj.name, hash=obj.hash)


def _tag(obj: Any) -> Tag:
    return Tag(name=obj.name, hash=obj.hash)  # bauplan.schema.Tag records no creation time


def _commit(obj: Any) -> Commit:
    # bauplan.schema.Commit has no `hash`: the commit's own hash is that of its (detached) `ref`.
    actor = obj.author or obj.committer
    return Commit(
        hash=obj.ref.hash,
        parent_hashes=list(obj.parent_hashes or []),
        message=obj.message or obj.subject or "",
        author=(actor.name or "") if actor is not None else "",
        authored_date=obj.authored_date,
        properties=dict(obj.properties or {}),
    )


def _table_info(obj: Any) -> TableInfo:
    return TableInfo(
        name=obj.name,
        namespace=obj.namespace,
        fields=[TableField(f.name, str(f.type), bool(f.required)) for f in obj.fields],
        records=obj.records,
        metadata_location=obj.metadata_location,
        snapshot_id=getattr(obj, "current_snapshot_id", None),
    )


def _writable_branch(branch: str) -> str:
    name, commit = split_ref(branch)
    if commit is not None:  # same refusal as the embedded backend, before a job is submitted
        raise InvalidNameError(f"cannot write to {branch}: a past commit is read-only")
    return name


# --------------------------------------------------------------------------- client


class BauplanClient:
    """Hosted Bauplan lakehouse client; method names and parameters follow `LocalClient` and `bauplan.Client`.

    Credentials come from the SDK's own chain (api_key=, profile=, BAUPLAN_API_KEY, BAUPLAN_PROFILE,
    ~/.bauplan/config.yaml). `client` injects a ready SDK client (tests use a stand-in: the service is remote).
    """

    backend = "bauplan"

    def __init__(
        self,
        *,
        profile: str | None = None,
        api_key: str | None = None,
        client_timeout: int | None = None,
        config_file_path: str | None = None,
        author: str | None = None,
        client: Any = None,
    ) -> None:
        del author  # accepted for parity with LocalClient; Bauplan records the key's user as the author
        self.profile = profile
        self._api_key = _Secret(api_key) if api_key else None
        self._info: InfoState | None = None
        # One info() per process and credentials: the gate connects once per task.
        key = api_key or os.environ.get(API_KEY_ENV) or ""
        self._user_key: tuple[Any, ...] | None = (
            None
            if client is not None
            else (id(bauplan.Client), profile, hashlib.sha256(key.encode()).hexdigest(), config_file_path)
        )
        if self._user_key is not None:
            self._info = _INFOS.get(self._user_key)
        if client is not None:
            self._sdk = client
            return
        values = (profile, api_key, client_timeout, config_file_path)
        options: dict[str, Any] = {k: v for k, v in zip(SDK_CLIENT_OPTIONS, values, strict=True) if v is not None}
        try:
            # Opens no connection: it only resolves the key from the SDK's chain.
            self._sdk = bauplan.Client(**options)
        except ValueError as exc:  # the SDK's "No API key found" / "Failed to load config file"
            raise AuthenticationError(
                self._scrub(
                    f"bauplan: cannot authenticate: {_detail(exc)}; set BAUPLAN_API_KEY or BAUPLAN_PROFILE,"
                    " write ~/.bauplan/config.yaml, or pass api_key=/profile="
                )
            ) from None  # a one-line error: the SDK's own traceback adds nothing here
        except Exception as exc:
            raise translate_error(exc, operation="connect", secrets=self._secrets()) from None

    def __repr__(self) -> str:
        return f"BauplanClient(profile={self.profile!r})"

    def _secrets(self) -> list[str]:
        return [self._api_key.reveal()] if self._api_key is not None else []

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets())

    def _call(self, method: str, **kwargs: Any) -> Any:
        """Call one SDK method with exactly the keywords `SDK_CALLS` lists for it."""
        expected = SDK_CALLS.get(method)
        if expected is None or set(kwargs) != set(expected):
            raise LakehouseError(f"internal error: SDK call {method}({', '.join(kwargs)}) is not in SDK_CALLS")
        return getattr(self._sdk, method)(**kwargs)

    @_translated
    def info(self) -> InfoState:
        """The SDK's `info()`, asked once per process and credentials: every branch name needs its username."""
        if self._info is not None:
            return self._info
        state = self._call("info")
        user = state.user
        organization = getattr(getattr(state, "organization", None), "name", None)
        self._info = InfoState(UserInfo(user.username, getattr(user, "full_name", None) or None), organization)
        if self._user_key is not None:
            _INFOS[self._user_key] = self._info
        return self._info

    @property
    def _username(self) -> str | None:
        return self._info.user.username if self._info is not None else None

    # ------------------------------------------------------------ branches
    @_translated
    def create_branch(self, branch: str, from_ref: str, *, if_not_exists: bool = False) -> Branch:
        validate_branch(branch)
        split_ref(from_ref)
        try:
            return _branch(self._call("create_branch", branch=branch, from_ref=from_ref, if_not_exists=if_not_exists))
        except bx.ForbiddenError:
            # The refusal names the branch-name rule with the user's own prefix: ask who we are (once, cached).
            with contextlib.suppress(Exception):
                self.info()
            raise
        except (bx.BranchExistsError, bx.ConflictError):
            # Asked only when refused, so the gate's create_branch costs no extra call: a tag's name says so.
            if self._call("has_tag", tag=branch):
                raise RefNameTakenError(branch, "branch", "tag") from None
            raise

    @_translated
    def has_branch(self, branch: str) -> bool:
        return bool(self._call("has_branch", branch=validate_branch(branch)))

    @_translated
    def get_branch(self, branch: str) -> Branch:
        return _branch(self._call("get_branch", branch=validate_branch(branch)))

    @_translated
    def delete_branch(self, branch: str, *, if_exists: bool = False) -> bool:
        if validate_branch(branch) == MAIN:  # same guard as the embedded backend
            raise InvalidNameError("refusing to delete branch main")
        return bool(self._call("delete_branch", branch=branch, if_exists=if_exists))

    @_translated
    def get_branches(
        self, *, name: str | None = None, user: str | None = None, limit: int | None = None
    ) -> Iterator[Branch]:
        # Lazy, as the SDK's: an organisation may have thousands of branches, fetched page by page.
        return (_branch(b) for b in self._call("get_branches", name=name, user=user, limit=limit))

    # ---------------------------------------------------------------- tags
    @_translated
    def create_tag(self, tag: str, from_ref: str) -> Tag:
        validate_tag(tag)
        split_ref(from_ref)
        # The embedded backend's rule, asked first so the refusal reads the same (Bauplan's refs share one
        # namespace too, and would refuse it as a conflict).
        if self._call("has_branch", branch=tag):
            raise RefNameTakenError(tag, "tag", "branch")
        return _tag(self._call("create_tag", tag=tag, from_ref=from_ref))

    @_translated
    def has_tag(self, tag: str) -> bool:
        return bool(self._call("has_tag", tag=validate_tag(tag)))

    @_translated
    def get_tag(self, tag: str) -> Tag:
        return _tag(self._call("get_tag", tag=validate_tag(tag)))

    @_translated
    def get_tags(self) -> list[Tag]:
        return sorted((_tag(t) for t in self._call("get_tags")), key=lambda t: t.name)

    @_translated
    def delete_tag(self, tag: str) -> bool:
        return bool(self._call("delete_tag", tag=validate_tag(tag)))

    @_translated
    def get_commits(
        self, ref: str, *, filter_by_properties: dict[str, str] | None = None, limit: int | None = None
    ) -> Iterator[Commit]:
        split_ref(ref)
        commits = self._call("get_commits", ref=ref, filter_by_properties=filter_by_properties, limit=limit)
        return (_commit(c) for c in commits)  # lazy: a history is paged as it is read

    @_translated
    def merge_branch(
        self,
        source_ref: str,
        into_branch: str,
        *,
        commit_message: str | None = None,
        commit_body: str | None = None,
        commit_properties: dict[str, str] | None = None,
    ) -> str:
        """Merge atomically across every table; return the new head of `into_branch`: the hash of the Branch the
        SDK returns, never `into_branch` read again (another merge may have landed since)."""
        split_ref(source_ref)
        validate_branch(into_branch)
        try:
            merged = self._call(
                "merge_branch",
                source_ref=source_ref,
                into_branch=into_branch,
                commit_message=commit_message or f"merge {source_ref} into {into_branch}",
                commit_body=commit_body,
                commit_properties=commit_properties,
            )
        except bx.SameRefError:
            # Nothing to merge; like the embedded backend, return the unchanged head.
            return self.get_branch(into_branch).hash
        return str(merged.hash)

    # -------------------------------------------------------------- tables
    @_translated
    def get_tables(self, ref: str, *, filter_by_namespace: str | None = None) -> list[TableInfo]:
        """Sorted by name, as the embedded backend's (so the SDK's iterator is read whole)."""
        split_ref(ref)
        if filter_by_namespace is not None:
            validate_identifier(filter_by_namespace, "namespace")
        try:
            listed = self._call("get_tables", ref=ref, filter_by_namespace=filter_by_namespace)
            tables = [_table_info(t) for t in listed]
        except bx.NamespaceNotFoundError:
            return []  # the embedded backend lists no tables for an unknown namespace
        return sorted(tables, key=lambda t: t.fqn)

    @_translated
    def has_table(self, table: str, ref: str, *, namespace: str | None = None) -> bool:
        ns, name = resolve_table_name(table, namespace)
        split_ref(ref)
        try:
            return bool(self._call("has_table", table=name, ref=ref, namespace=ns))
        except bx.NamespaceNotFoundError:
            return False  # no namespace, no table (the embedded backend answers False too)

    @_translated
    def get_table(self, table: str, ref: str, *, namespace: str | None = None) -> TableInfo:
        ns, name = resolve_table_name(table, namespace)
        split_ref(ref)
        return _table_info(self._call("get_table", table=name, ref=ref, namespace=ns))

    @_translated
    def create_table(
        self, table: str, search_uri: str, *, branch: str, namespace: str | None = None, replace: bool = False
    ) -> TableInfo:
        """Create an empty table on `branch` whose schema is inferred from the source files."""
        ns, name = resolve_table_name(table, namespace)
        _writable_branch(branch)
        # Checked here so that an existing table fails the same way on both backends, before any job runs.
        if not replace and self.has_table(name, branch, namespace=ns):
            raise TableExistsError(f"{ns}.{name}", branch)
        # The embedded backend creates namespaces implicitly; Bauplan needs them to exist first (one call, no
        # check-then-create race with another run making the same namespace).
        self._call("create_namespace", namespace=ns, branch=branch, if_not_exists=True)
        created = self._call(
            "create_table", table=name, search_uri=search_uri, branch=branch, namespace=ns, replace=replace
        )
        return _table_info(created)

    @_translated
    def import_data(self, table: str, search_uri: str, *, branch: str, namespace: str | None = None) -> ImportState:
        """Append the source's rows to the table on `branch` (one Bauplan import job)."""
        ns, name = resolve_table_name(table, namespace)
        _writable_branch(branch)
        state = self._call("import_data", table=name, search_uri=search_uri, branch=branch, namespace=ns)
        # The SDK reports a failed job in the returned state instead of raising: check it.
        status, error, job_id = state.job_status, state.error, state.job_id
        outcome = str(status or "").upper()
        if error or outcome not in _JOB_SUCCESS:
            what = (
                f"bauplan import into {ns}.{name} on {branch} from {search_uri}"
                f" (job {job_id or 'unknown'}, status {status or 'unknown'}): {error or 'no error reported'}"
            )
            if outcome in _JOB_TRANSIENT:  # the runner, not the data: the write task tries again
                raise BackendUnavailableError(self._scrub(f"{what}: the job did not finish, retry later"))
            raise ImportFailedError(self._scrub(f"{what.replace(' (job', ' failed (job', 1)}"))
        # Bauplan does not report how many rows an import wrote.
        return ImportState(
            job_status=str(status), rows=None, table=f"{ns}.{name}", branch=branch, job_id=job_id, error=error
        )

    @_translated
    def delete_table(self, table: str, branch: str, *, namespace: str | None = None) -> Branch:
        ns, name = resolve_table_name(table, namespace)
        _writable_branch(branch)
        return _branch(self._call("delete_table", table=name, branch=branch, namespace=ns))

    @_translated
    def revert_table(
        self,
        table: str,
        *,
        namespace: str | None = None,
        source_ref: str,
        into_branch: str,
        replace: bool | None = None,
        commit_body: str | None = None,
        commit_properties: dict[str, str] | None = None,
    ) -> Branch:
        """The SDK's revert_table (one commit on `into_branch`); its refusals as the embedded backend's errors."""
        ns, name = resolve_table_name(table, namespace)
        split_ref(source_ref)
        _writable_branch(into_branch)
        reverted = self._call(
            "revert_table",
            table=name,
            namespace=ns,
            source_ref=source_ref,
            into_branch=into_branch,
            replace=replace,
            commit_body=commit_body,
            commit_properties=commit_properties,
        )
        return _branch(reverted)  # the SDK's reply: the branch at the revert's commit

    @_translated
    def scan(
        self,
        table: str,
        *,
        ref: str,
        columns: list[str] | None = None,
        filters: str | None = None,
        namespace: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        ns, name = resolve_table_name(table, namespace)
        split_ref(ref)
        return self._call("scan", table=name, ref=ref, columns=columns, filters=filters, limit=limit, namespace=ns)

    @_translated
    def query(self, query: str, *, ref: str, namespace: str | None = None, max_rows: int | None = None) -> pa.Table:
        from .sql import check_read_only

        # Same contract as the embedded backend: read-only SELECTs only, refused before anything is sent.
        check_read_only(query)
        split_ref(ref)
        if namespace is not None:
            validate_identifier(namespace, "namespace")
        return self._call("query", query=query, ref=ref, namespace=namespace, max_rows=max_rows)
