"""The lakehouse layer: one client interface, two backends.

`connect()` returns a `LakehouseClient` (protocol.py), whose methods follow `bauplan.Client`'s names and
parameters (info, create_branch, has_branch, get_branch, delete_branch, get_branches, create_tag, has_tag,
get_tag, get_tags, delete_tag, get_commits, merge_branch, get_tables, has_table, get_table, create_table,
import_data, delete_table, revert_table, scan, query). Optional capabilities are their
own protocols, checked with isinstance: `ReadsTableFiles` (DuckDB reads the Parquet files directly),
`EvolvesTableSchema` (`schema: evolve` adds new columns) and `StoredInDirectory` (leases, gc and doctor work
on the directory). The embedded "local" backend is the default; "bauplan" passes through to the hosted
service. Both raise the exceptions in `errors`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import (
    AuthenticationError,
    BackendContractError,
    BackendUnavailableError,
    BranchExistsError,
    BranchNotFoundError,
    CatalogUnusableError,
    ConcurrentUpdateError,
    ImmutableTagError,
    ImportFailedError,
    InvalidNameError,
    LakehouseError,
    MergeConflictError,
    NothingToRevertError,
    PermissionDeniedError,
    QueryError,
    RefNameTakenError,
    RefNotFoundError,
    SchemaMismatchError,
    SourceError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    TagExistsError,
    TagNotFoundError,
)
from .models import Branch, Commit, ImportState, InfoState, Ref, TableField, TableInfo, Tag, UserInfo
from .names import DEFAULT_NAMESPACE, MAIN
from .protocol import EvolvesTableSchema, LakehouseClient, ReadsTableFiles, StoredInDirectory

BACKENDS: tuple[str, ...] = ("local", "bauplan")
DEFAULT_LAKEHOUSE = ".lakehouse"


def default_backend() -> str:
    return os.environ.get("WAP_BACKEND") or "local"


def default_lakehouse() -> str:
    return os.environ.get("WAP_LAKEHOUSE") or DEFAULT_LAKEHOUSE


def connect(
    backend: str | None = None, lakehouse: str | os.PathLike[str] | None = None, **options: Any
) -> LakehouseClient:
    """Open a lakehouse client. `lakehouse` is the embedded backend's directory (ignored by Bauplan)."""
    backend = backend or default_backend()
    if backend == "local":
        from .local import LocalClient

        return LocalClient(Path(lakehouse or default_lakehouse()), **options)
    if backend == "bauplan":
        from .bauplan_backend import BauplanClient

        return BauplanClient(**options)
    raise InvalidNameError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "DEFAULT_NAMESPACE",
    "MAIN",
    "AuthenticationError",
    "BackendContractError",
    "BackendUnavailableError",
    "Branch",
    "BranchExistsError",
    "BranchNotFoundError",
    "CatalogUnusableError",
    "Commit",
    "ConcurrentUpdateError",
    "ImmutableTagError",
    "ImportFailedError",
    "ImportState",
    "InfoState",
    "InvalidNameError",
    "LakehouseClient",
    "LakehouseError",
    "MergeConflictError",
    "NothingToRevertError",
    "PermissionDeniedError",
    "QueryError",
    "Ref",
    "EvolvesTableSchema",
    "ReadsTableFiles",
    "RefNameTakenError",
    "RefNotFoundError",
    "SchemaMismatchError",
    "SourceError",
    "StorageError",
    "StoredInDirectory",
    "TableExistsError",
    "TableField",
    "TableInfo",
    "TableNotFoundError",
    "Tag",
    "TagExistsError",
    "TagNotFoundError",
    "UserInfo",
    "connect",
    "default_backend",
    "default_lakehouse",
]
