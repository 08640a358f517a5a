"""One set of exceptions for every lakehouse backend.

Both the embedded catalog and the Bauplan pass-through raise these, so callers (the flow, the CLI)
handle one vocabulary. Each message names what is missing or wrong.
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class of every lakehouse error."""


class InvalidNameError(LakehouseError, ValueError):
    """A branch, namespace, table or ref name that is not allowed."""


class BranchExistsError(LakehouseError):
    def __init__(self, branch: str) -> None:
        super().__init__(f"branch already exists: {branch}")
        self.branch = branch


class BranchNotFoundError(LakehouseError):
    def __init__(self, branch: str) -> None:
        super().__init__(f"branch not found: {branch}")
        self.branch = branch


class RefNotFoundError(LakehouseError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"ref not found: {ref}")
        self.ref = ref


class TagExistsError(LakehouseError):
    def __init__(self, tag: str) -> None:
        super().__init__(f"tag already exists: {tag}")
        self.tag = tag


class TagNotFoundError(RefNotFoundError):
    """A tag that does not exist (a RefNotFoundError: a tag is a ref)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag
        self.args = (f"tag not found: {tag}",)

    def __reduce__(self) -> tuple:  # picklable with its own message
        return (type(self), (self.tag,))


class RefNameTakenError(InvalidNameError):
    """A branch named like an existing tag, or a tag like an existing branch: `--ref NAME` must mean one ref."""

    def __init__(self, name: str, kind: str, taken_by: str) -> None:
        super().__init__(f"cannot create {kind} {name}: a {taken_by} of that name exists (a ref name names one ref)")
        self.name = name
        self.kind = kind
        self.taken_by = taken_by

    def __reduce__(self) -> tuple:
        return (type(self), (self.name, self.kind, self.taken_by))


class ImmutableTagError(InvalidNameError):
    """A write (create_table, import_data, merge, revert, delete_branch) aimed at a tag: tags never move."""

    def __init__(self, tag: str, doing: str) -> None:
        super().__init__(
            f"cannot {doing} {tag}: it is a tag, and tags are immutable (`wap tag --delete {tag}` removes it)"
        )
        self.tag = tag
        self.doing = doing

    def __reduce__(self) -> tuple:
        return (type(self), (self.tag, self.doing))


class NothingToRevertError(LakehouseError):
    """`revert_table` whose source state is the table's state on the target already (the SDK's
    RevertIdenticalTableError): reverting would change nothing."""


class TableNotFoundError(LakehouseError):
    def __init__(self, table: str, ref: str) -> None:
        super().__init__(f"table not found: {table} on {ref}")
        self.table = table
        self.ref = ref


class TableExistsError(LakehouseError):
    def __init__(self, table: str, ref: str) -> None:
        super().__init__(f"table already exists: {table} on {ref}")
        self.table = table
        self.ref = ref


class MergeConflictError(LakehouseError):
    def __init__(self, source_ref: str, into_branch: str, tables: list[str]) -> None:
        names = ", ".join(tables) if tables else "(unknown tables)"
        super().__init__(f"merge conflict: {source_ref} into {into_branch}; changed on both sides: {names}")
        self.source_ref = source_ref
        self.into_branch = into_branch
        self.tables = tables


class ConcurrentUpdateError(LakehouseError):
    """A commit was based on a branch head that another writer has since moved."""


class SourceError(LakehouseError):
    """A data source that is missing, matches no file, or cannot be read or parsed."""


class SchemaMismatchError(SourceError):
    """A source appended to a table whose columns do not fit it: what is missing, extra and retyped."""

    def __init__(
        self,
        message: str,
        *,
        table: str,
        missing: list[tuple[str, str]],
        extra: list[tuple[str, str]],
        retyped: list[tuple[str, str, str]],
    ) -> None:
        super().__init__(message)
        self.table = table
        self.missing = missing  # (column, type in the table)
        self.extra = extra  # (column, type in the source)
        self.retyped = retyped  # (column, type in the source, type in the table)

    def __reduce__(self):  # picklable across Prefect's result handling, with its fields
        return (_rebuild_schema_mismatch, (str(self), self.table, self.missing, self.extra, self.retyped))


def _rebuild_schema_mismatch(message, table, missing, extra, retyped) -> SchemaMismatchError:
    return SchemaMismatchError(message, table=table, missing=missing, extra=extra, retyped=retyped)


class QueryError(LakehouseError):
    """A query that is refused (not read-only) or fails."""


class ImportFailedError(LakehouseError):
    """The backend reported that an import job did not succeed."""


class BackendUnavailableError(LakehouseError):
    """A transient failure talking to the backend (network, service, lock timeout): safe to retry."""


class AuthenticationError(LakehouseError):
    """The backend refused the credentials (the key itself is never included)."""


class CatalogUnusableError(LakehouseError):
    """The embedded catalog is empty, unreadable, corrupt or inconsistent with its warehouse.

    Nothing is written when this is raised; the message says what is wrong and how to recover.
    """


class StorageError(LakehouseError):
    """The lakehouse's storage refused an operation: disk full, read-only, permission denied, or a file
    that a ref needs is missing. Not the data's fault and not transient: the message names the path."""


class PermissionDeniedError(AuthenticationError):
    """The credentials are valid but may not do this (Bauplan's `*ForbiddenError`): the message says what was
    refused and, for a branch, the rule that branch names start with the user's name."""


class BackendContractError(LakehouseError):
    """The backend's SDK no longer accepts what this code sends (a `TypeError` from a changed signature): an
    internal error of this program (exit 4), not the user's input."""
