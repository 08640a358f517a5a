"""The embedded lakehouse: Iceberg tables (pyiceberg, Parquet) with git-like branches in SQLite.

Layout of a lakehouse directory:

    catalog.db                      refs, commits and per-commit table trees (see refs.py)
    warehouse/<namespace>/<table>-<id>/{data,metadata}/   Iceberg tables written by pyiceberg

Branching copies no file: a branch is a pointer to a commit, a commit maps each table to an immutable
Iceberg metadata file. Writing on a branch writes new data and metadata files and moves only that
branch. No file is ever deleted by a branch operation, so a deleted branch never takes away data that
another ref still reads.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog, MetastoreCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.parser import parse as parse_filter
from pyiceberg.io import load_file_io
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.metadata import new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties
from pyparsing import ParseException

from .errors import (
    ConcurrentUpdateError,
    InvalidNameError,
    LakehouseError,
    QueryError,
    SourceError,
    TableExistsError,
    TableNotFoundError,
)
from .models import Branch, Commit, ImportState, TableField, TableInfo
from .names import resolve_table_name, validate_branch
from .refs import RefStore, ResolvedRef
from .sources import Source, open_source

# Rows buffered before pyiceberg writes them as a data file: bounds import memory.
IMPORT_CHUNK_ROWS = 1_000_000
IMPORT_CHUNK_BYTES = 128 << 20


def _key(namespace: str, table: str) -> str:
    return f"{namespace}.{table}"


class _RefCatalog(MetastoreCatalog):
    """A pyiceberg catalog bound to one commit of the ref store.

    pyiceberg does the Iceberg work (schemas, snapshots, manifests, Parquet); this class only answers
    "where is table X's metadata on this ref" and turns a table commit into a lakehouse commit on the
    bound branch, with an optimistic check of the branch head.
    """

    def __init__(self, store: RefStore, warehouse: Path, ref: ResolvedRef, *, author: str) -> None:
        super().__init__("wap", warehouse=str(warehouse))
        self.store = store
        self.warehouse = warehouse
        self.ref = ref
        self.base_hash = ref.hash
        self.author = author
        self.message = "commit"
        self.commit_properties: dict[str, str] = {}

    # -- reads
    def load_table(self, identifier: str | Identifier) -> Table:
        namespace, name = self._split(identifier)
        location = self.store.tree(self.base_hash).get(_key(namespace, name))
        if location is None:
            raise NoSuchTableError(_key(namespace, name))
        io = load_file_io(properties=self.properties, location=location)
        metadata = FromInputFile.table_metadata(io.new_input(location))
        return Table((namespace, name), metadata, location, self._load_file_io(metadata.properties, location), self)

    def list_tables(self, namespace: str | Identifier) -> list[Identifier]:
        ns = Catalog.namespace_to_string(namespace)
        return [tuple(k.split(".", 1)) for k in sorted(self.store.tree(self.base_hash)) if k.split(".")[0] == ns]

    # -- writes
    def create_table(
        self,
        identifier: str | Identifier,
        schema: Any,
        location: str | None = None,
        partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
        sort_order: SortOrder = UNSORTED_SORT_ORDER,
        properties: Properties = EMPTY_DICT,
    ) -> Table:
        namespace, name = self._split(identifier)
        schema = self._convert_schema_if_needed(schema)
        # A fresh directory per creation, so the same table created on two branches never collides.
        # A plain absolute path, not a file:// URI: pyiceberg does not percent-decode URIs, so a
        # lakehouse path with a space or non-ASCII letter sent every file to a "%20"-named sibling dir.
        location = location or str(self.warehouse / namespace / f"{name}-{uuid.uuid4().hex[:12]}")
        metadata = new_table_metadata(
            location=location,
            schema=schema,
            partition_spec=partition_spec,
            sort_order=sort_order,
            properties=properties,
        )
        metadata_location = f"{location}/metadata/00000-{uuid.uuid4()}.metadata.json"
        self._write_metadata(metadata, load_file_io(self.properties, metadata_location), metadata_location)
        self._commit({_key(namespace, name): metadata_location})
        return self.load_table((namespace, name))

    def commit_table(self, table: Table, requirements: tuple, updates: tuple) -> CommitTableResponse:
        namespace, name = self._split(table.name())
        try:
            current = self.load_table((namespace, name))
        except NoSuchTableError:
            current = None
        staged = self._update_and_stage_table(current, (namespace, name), requirements, updates)
        if current is not None and staged.metadata == current.metadata:
            return CommitTableResponse(metadata=current.metadata, metadata_location=current.metadata_location)
        self._write_metadata(staged.metadata, staged.io, staged.metadata_location)
        self._commit({_key(namespace, name): staged.metadata_location})
        return CommitTableResponse(metadata=staged.metadata, metadata_location=staged.metadata_location)

    def _commit(self, changes: Mapping[str, str | None]) -> None:
        if not self.ref.is_head:
            raise InvalidNameError(f"cannot write to {self.ref.ref}: a past commit is read-only")
        self.base_hash = self.store.commit(
            self.ref.branch,
            base_hash=self.base_hash,
            changes=changes,
            message=self.message,
            author=self.author,
            properties=self.commit_properties,
        )

    @staticmethod
    def _split(identifier: str | Identifier) -> tuple[str, str]:
        parts = Catalog.identifier_to_tuple(identifier)
        return parts[0], parts[-1]

    # -- what this catalog deliberately does not do (branches replace them)
    def _unsupported(self, *_: Any, **__: Any) -> Any:
        raise NotImplementedError("not supported by the embedded lakehouse catalog")

    drop_table = rename_table = register_table = create_namespace = drop_namespace = _unsupported
    list_namespaces = load_namespace_properties = update_namespace_properties = _unsupported
    list_views = load_view = register_view = drop_view = view_exists = _unsupported


class LocalClient:
    """Embedded lakehouse client; method names and parameters follow `bauplan.Client`."""

    backend = "local"

    def __init__(self, lakehouse: str | os.PathLike[str] = ".lakehouse", *, author: str | None = None) -> None:
        self.root = Path(lakehouse).expanduser().resolve()
        self.warehouse = self.root / "warehouse"
        self.warehouse.mkdir(parents=True, exist_ok=True)
        self.store = RefStore(self.root / "catalog.db")
        self.author = author or os.environ.get("WAP_AUTHOR") or getpass.getuser()

    def __repr__(self) -> str:
        return f"LocalClient({str(self.root)!r})"

    # ------------------------------------------------------------ branches
    def create_branch(self, branch: str, from_ref: str) -> Branch:
        validate_branch(branch)
        return self.store.create_branch(branch, self.store.resolve(from_ref).hash)

    def has_branch(self, branch: str) -> bool:
        return self.store.has_branch(validate_branch(branch))

    def get_branch(self, branch: str) -> Branch:
        resolved = self.store.resolve(validate_branch(branch))
        return Branch(resolved.branch, resolved.hash)

    def delete_branch(self, branch: str) -> bool:
        self.store.delete_branch(validate_branch(branch))
        return True

    def get_branches(self) -> list[Branch]:
        return self.store.branches()

    def get_commits(self, ref: str, *, limit: int | None = None) -> list[Commit]:
        return self.store.log(self.store.resolve(ref).hash, limit)

    def merge_branch(
        self,
        source_ref: str,
        into_branch: str,
        *,
        commit_message: str | None = None,
        commit_properties: dict[str, str] | None = None,
    ) -> str:
        """Merge atomically across every table; return the new head of `into_branch`."""
        validate_branch(into_branch)
        return self.store.merge(
            source_ref,
            into_branch,
            message=commit_message or f"merge {source_ref} into {into_branch}",
            author=self.author,
            properties=commit_properties,
        )

    # -------------------------------------------------------------- tables
    def get_tables(self, ref: str, *, namespace: str | None = None) -> list[TableInfo]:
        # Every table is read at the same commit, even if the branch moves meanwhile.
        pinned = self._pinned_ref(ref)
        tree = self.store.tree(self.store.resolve(pinned).hash)
        keys = sorted(k for k in tree if namespace is None or k.split(".", 1)[0] == namespace)
        return [self.get_table(k, pinned) for k in keys]

    def has_table(self, table: str, ref: str, *, namespace: str | None = None) -> bool:
        ns, name = resolve_table_name(table, namespace)
        return _key(ns, name) in self.store.tree(self.store.resolve(ref).hash)

    def get_table(self, table: str, ref: str, *, namespace: str | None = None) -> TableInfo:
        ns, name = resolve_table_name(table, namespace)
        tbl = self._load(ns, name, ref)
        snapshot = tbl.current_snapshot()
        records = int(snapshot.summary.get("total-records", 0)) if snapshot and snapshot.summary else 0
        return TableInfo(
            name=name,
            namespace=ns,
            fields=[TableField(f.name, str(f.field_type), f.required) for f in tbl.schema().fields],
            records=records,
            metadata_location=tbl.metadata_location,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
        )

    def create_table(
        self, table: str, search_uri: str, *, branch: str, namespace: str | None = None, replace: bool = False
    ) -> TableInfo:
        """Create an empty table on `branch` whose schema is inferred from the source files."""
        ns, name = resolve_table_name(table, namespace)
        catalog = self._catalog(branch, write=True)
        with open_source(search_uri) as source:
            schema = source.schema
        if _key(ns, name) in self.store.tree(catalog.base_hash) and not replace:
            raise TableExistsError(_key(ns, name), branch)
        catalog.message = f"create table {ns}.{name} from {search_uri}"
        catalog.commit_properties = {"wap.operation": "create_table", "wap.source": search_uri}
        catalog.create_table((ns, name), schema)
        return self.get_table(name, branch, namespace=ns)

    def import_data(self, table: str, search_uri: str, *, branch: str, namespace: str | None = None) -> ImportState:
        """Append the source's rows to the table on `branch` as one commit, streamed in chunks."""
        ns, name = resolve_table_name(table, namespace)
        catalog = self._catalog(branch, write=True)
        tbl = self._load_with(catalog, ns, name, branch)
        with open_source(search_uri) as source:
            _check_compatible(tbl, source)
            catalog.message = f"import data into {ns}.{name} from {search_uri}"
            rows = 0
            try:
                with tbl.transaction() as tx:
                    # One commit for the whole import: a failure part-way leaves the branch untouched.
                    for chunk in _chunks(source):
                        tx.append(chunk)
                        rows += chunk.num_rows
                    catalog.commit_properties = {
                        "wap.operation": "import_data",
                        "wap.source": search_uri,
                        "wap.rows": str(rows),
                    }
            except LakehouseError:
                raise  # already precise (InvalidNameError is also a ValueError)
            except (ValueError, TypeError, ValidationError) as exc:
                raise SourceError(f"source {search_uri} does not fit table {ns}.{name}: {exc}") from exc
            except CommitFailedException as exc:
                raise ConcurrentUpdateError(f"table {ns}.{name} on {branch} changed during the import: {exc}") from exc
        return ImportState(job_status="SUCCESS", rows=rows, table=_key(ns, name), branch=branch)

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
        tbl = self._load(ns, name, ref)
        row_filter: BooleanExpression = AlwaysTrue()
        if filters:
            try:
                row_filter = parse_filter(filters)
            except (ParseException, ValueError) as exc:  # pyparsing's errors are not ValueErrors
                raise QueryError(f"invalid filter {filters!r} for {ns}.{name}: {exc}") from exc
        try:
            scan = tbl.scan(
                row_filter=row_filter,
                selected_fields=tuple(columns) if columns else ("*",),
                limit=limit,
            )
            return scan.to_arrow()
        except (ValueError, pa.ArrowException) as exc:
            raise QueryError(f"cannot scan {ns}.{name} on {ref}: {exc}") from exc

    def query(self, query: str, *, ref: str, namespace: str | None = None) -> pa.Table:
        from .sql import run_readonly_query

        return run_readonly_query(self, query, ref=ref, namespace=namespace)

    def data_files(self, table: str, *, ref: str, namespace: str | None = None) -> tuple[pa.Schema, list[str]]:
        """The Arrow schema and Parquet files holding a table's rows on `ref` (no deletes are ever written)."""
        ns, name = resolve_table_name(table, namespace)
        tbl = self._load(ns, name, ref)
        files = [task.file.file_path for task in tbl.scan().plan_files()]
        return tbl.schema().as_arrow(), [f.removeprefix("file://") for f in files]

    # ------------------------------------------------------------- helpers
    def _pinned_ref(self, ref: str) -> str:
        """`ref` as `branch@hash` of the commit it points to now: later reads see that same commit.

        Reading several tables through a branch name re-resolves it for each table, so a merge landing
        in between would show one table before it and another after it.
        """
        resolved = self.store.resolve(ref)
        return f"{resolved.branch}@{resolved.hash}"

    def _catalog(self, ref: str, *, write: bool = False) -> _RefCatalog:
        resolved = self.store.resolve(ref)
        if write and not resolved.is_head:
            # Checked before any file is read or written, not only at commit time.
            raise InvalidNameError(f"cannot write to {ref}: a past commit is read-only")
        return _RefCatalog(self.store, self.warehouse, resolved, author=self.author)

    def _load(self, namespace: str, name: str, ref: str) -> Table:
        return self._load_with(self._catalog(ref), namespace, name, ref)

    @staticmethod
    def _load_with(catalog: _RefCatalog, namespace: str, name: str, ref: str) -> Table:
        try:
            return catalog.load_table((namespace, name))
        except NoSuchTableError:
            raise TableNotFoundError(_key(namespace, name), ref) from None


def _check_compatible(tbl: Table, source: Source) -> None:
    expected = {f.name for f in tbl.schema().fields}
    got = set(source.schema.names)
    if expected != got:
        missing, extra = sorted(expected - got), sorted(got - expected)
        detail = "; ".join(
            part
            for part in (
                f"missing columns {', '.join(missing)}" if missing else "",
                f"unexpected columns {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise SourceError(f"source {source.uri} does not fit table {tbl.name()[-1]}: {detail}")


def _chunks(source: Source):
    """Group the source's batches into tables of bounded size for pyiceberg to write."""
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in source.batches():
        pending.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if rows >= IMPORT_CHUNK_ROWS or size >= IMPORT_CHUNK_BYTES:
            yield pa.Table.from_batches(pending, schema=source.schema)
            pending, rows, size = [], 0, 0
    if pending:
        yield pa.Table.from_batches(pending, schema=source.schema)
