"""The lakehouse contract as types: what callers (the gate, the audit, the CLI) may rely on.

`LakehouseClient` is the interface both backends implement (`local.LocalClient`, `bauplan_backend.BauplanClient`)
and `connect()` returns. Its methods are a subset of `bauplan.Client`'s, with the same names and parameter names,
narrowed to what the gate uses: refs are strings and writes name their `branch` as a required keyword. The
listing methods (get_branches, get_tags, get_commits, get_tables) return iterables: Bauplan's are the SDK's lazy
iterators (pages are fetched as they are consumed, so stop early), the embedded backend's are lists.
`merge_branch` returns the new head's hash (Bauplan's SDK returns the Branch; its hash is that head). Every
method raises the exceptions in `errors`, never a backend's own. `tests/test_architecture.py` checks both
backends against it, statically (mypy) and by signature.

`ReadsTableFiles` is an optional capability, its own protocol rather than a `hasattr` probe: a backend
that can hand out the Parquet files of a table (the embedded one) lets the audit and `query` read them
with DuckDB directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from .models import Branch, Commit, ImportState, InfoState, TableInfo, Tag


class LakehouseClient(Protocol):
    """A lakehouse of git-like branches over Iceberg tables; see the module docstring."""

    @property
    def backend(self) -> str:
        """The backend's name, one of `BACKENDS` ("local", "bauplan")."""
        ...

    def info(self) -> InfoState:
        """Who this client acts as: `.user.username` starts every branch name a Bauplan user may create."""
        ...

    # ------------------------------------------------------------ branches
    def create_branch(self, branch: str, from_ref: str, *, if_not_exists: bool = False) -> Branch:
        """A new branch at `from_ref`; with `if_not_exists`, an existing branch is returned as it is."""
        ...

    def has_branch(self, branch: str) -> bool: ...

    def get_branch(self, branch: str) -> Branch: ...

    def delete_branch(self, branch: str, *, if_exists: bool = False) -> bool:
        """Delete the branch (never main); with `if_exists`, a missing branch is no error: False."""
        ...

    def get_branches(
        self, *, name: str | None = None, user: str | None = None, limit: int | None = None
    ) -> Iterable[Branch]:
        """Branches whose name contains `name`, of `user` (Bauplan: the branches that user made; embedded: those
        named `<user>.…`), at most `limit`."""
        ...

    def get_commits(
        self, ref: str, *, filter_by_properties: dict[str, str] | None = None, limit: int | None = None
    ) -> Iterable[Commit]:
        """The commits reachable from `ref`, newest first; with `filter_by_properties`, only those whose
        properties hold every given key with the given value (`limit` counts the commits returned)."""
        ...

    def merge_branch(
        self,
        source_ref: str,
        into_branch: str,
        *,
        commit_message: str | None = None,
        commit_body: str | None = None,
        commit_properties: dict[str, str] | None = None,
    ) -> str:
        """Merge atomically across every table; return the new head of `into_branch`."""
        ...

    # ---------------------------------------------------------------- tags
    def create_tag(self, tag: str, from_ref: str) -> Tag:
        """Name the commit `from_ref` points to now. A tag never moves and takes no write; its name may not be a
        branch's (nor a branch a tag's): `--ref NAME` names one ref."""
        ...

    def has_tag(self, tag: str) -> bool: ...

    def get_tag(self, tag: str) -> Tag: ...

    def get_tags(self) -> Iterable[Tag]: ...

    def delete_tag(self, tag: str) -> bool:
        """Delete the tag (never its commit: what it named stays readable by hash from any branch holding it)."""
        ...

    # -------------------------------------------------------------- tables
    def get_tables(self, ref: str, *, filter_by_namespace: str | None = None) -> Iterable[TableInfo]: ...

    def has_table(self, table: str, ref: str, *, namespace: str | None = None) -> bool: ...

    def get_table(self, table: str, ref: str, *, namespace: str | None = None) -> TableInfo: ...

    def create_table(
        self, table: str, search_uri: str, *, branch: str, namespace: str | None = None, replace: bool = False
    ) -> TableInfo:
        """Create an empty table on `branch` whose schema is inferred from the source files."""
        ...

    def import_data(self, table: str, search_uri: str, *, branch: str, namespace: str | None = None) -> ImportState:
        """Append the source's rows to the table on `branch` as one commit."""
        ...

    def delete_table(self, table: str, branch: str, *, namespace: str | None = None) -> Branch:
        """Drop the table from `branch` in one commit (its files stay: older commits still read them); return the
        branch at its new head."""
        ...

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
        """Set the table on `into_branch` to its state at `source_ref`, as one new commit (history is kept); return
        the branch at its new head. As the SDK: TableNotFoundError when `source_ref` has no such table,
        TableExistsError when `into_branch` has it and `replace` is not set, NothingToRevertError when it is
        already in that state."""
        ...

    def scan(
        self,
        table: str,
        *,
        ref: str,
        columns: list[str] | None = None,
        filters: str | None = None,
        namespace: str | None = None,
        limit: int | None = None,
    ) -> pa.Table: ...

    def query(self, query: str, *, ref: str, namespace: str | None = None, max_rows: int | None = None) -> pa.Table:
        """A read-only SQL SELECT over the tables on `ref`; at most `max_rows` rows come back (the rest are never
        sent)."""
        ...


@runtime_checkable
class ReadsTableFiles(Protocol):
    def get_tables(self, ref: str, *, filter_by_namespace: str | None = None) -> Iterable[TableInfo]: ...

    def data_files(self, table: str, *, ref: str, namespace: str | None = None) -> tuple[pa.Schema, list[str]]:
        """The table's Arrow schema and the Parquet files holding its rows on `ref`."""
        ...

    def scan_data_files(self, table: str, files: list[str], *, ref: str, namespace: str | None = None) -> pa.Table:
        """The rows of just these data files of the table on `ref` (as `data_files` names them), read as
        `scan` reads the table: in `data_files` order, in the table's schema."""
        ...

    def fit_source(self, table: str, search_uri: str, *, ref: str, namespace: str | None = None) -> pa.Table:
        """The source's rows as `import_data` would append them to the table on `ref` (its columns and types),
        writing nothing."""
        ...


@runtime_checkable
class EvolvesTableSchema(Protocol):
    """A backend that adds a source's new columns to a table (Iceberg schema evolution), for `schema: evolve`."""

    def add_new_columns(self, table: str, search_uri: str, *, branch: str, namespace: str | None = None) -> list[str]:
        """Add the source's columns the table lacks, as optional columns, in one commit on `branch`; return
        their names (none: no commit). Existing columns are never changed."""
        ...


@runtime_checkable
class StoredInDirectory(Protocol):
    """A backend that keeps everything under one local directory (the embedded one): leases, gc and doctor use it."""

    @property
    def root(self) -> Path: ...
