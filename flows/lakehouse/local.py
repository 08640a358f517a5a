"""The embedded lakehouse: Iceberg tables (pyiceberg, Parquet) with git-like branches in SQLite.

Layout of a lakehouse directory:

    catalog.db                      refs, commits and per-commit table trees (see refs.py)
    warehouse/<namespace>/<table>-<id>/{data,metadata}/   Iceberg tables written by pyiceberg

    journal/                        one immutable JSON file per committed commit or branch change
    writers.lock                    shared-locked by writers, exclusively by `doctor` (rebuild, gc's reclaim)

Branching copies no file: a branch is a pointer to a commit, a commit maps each table to an immutable
Iceberg metadata file. Writing on a branch writes new data and metadata files and moves only that
branch. No file is ever deleted by a branch operation, so a deleted branch never takes away data that
another ref still reads; the files a failed write leaves are deleted by that write, or later by reclaim.

Relocation: the Iceberg metadata stays standard (absolute paths of where each table was created, so an
independent reader such as pyiceberg's StaticTable reads an unmoved lakehouse), while the catalog's trees
store metadata locations relative to the lakehouse root. Every file the client reads or writes goes
through `RelocatingFileIO` (pyiceberg's `py-io-impl`), which maps a table's recorded root to the root
the lakehouse is at now: a copy reads and writes only its own files, and a moved lakehouse keeps working.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
from pyiceberg.catalog import Catalog, MetastoreCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.parser import parse as parse_filter
from pyiceberg.io import PY_IO_IMPL, InputFile, OutputFile, load_file_io
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties
from pyparsing import ParseException

from . import pyiceberg_fixes  # noqa: F401  (installs the nested-null fix before any write)
from .errors import (
    CatalogUnusableError,
    ConcurrentUpdateError,
    InvalidNameError,
    LakehouseError,
    QueryError,
    SourceError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
)
from .models import Branch, Commit, ImportState, TableField, TableInfo
from .names import MAIN, resolve_table_name, validate_branch
from .refs import JOURNAL_DIR, RECOVER_HINT, WRITERS_LOCK, RefStore, ResolvedRef, storage_error
from .sources import Source, open_source

# Rows buffered before pyiceberg writes them as a data file: bounds import memory.
IMPORT_CHUNK_ROWS = 1_000_000
IMPORT_CHUNK_BYTES = 128 << 20


CATALOG_FILE = "catalog.db"
ROOT_PROPERTY = "wap.root"
RECORDED_ROOTS_PROPERTY = "wap.recorded-roots"


def _key(namespace: str, table: str) -> str:
    return f"{namespace}.{table}"


class RelocatingFileIO(PyArrowFileIO):
    """PyArrow file IO that reads and writes a table's recorded paths at the lakehouse's current root.

    Iceberg metadata records absolute paths under the root a table was created at (`wap.recorded-roots`);
    every path under one of those is opened under `wap.root` instead. Output files keep their recorded
    location (that is what pyiceberg writes into manifests), so one table's metadata never mixes roots.
    pyiceberg 0.12 opens metadata, manifests and data files all through new_input/new_output.
    """

    def __init__(self, properties: Properties = EMPTY_DICT) -> None:
        super().__init__(properties)
        self.root = properties.get(ROOT_PROPERTY, "")
        recorded = json.loads(properties.get(RECORDED_ROOTS_PROPERTY, "[]"))
        # Longest first, so that of two nested recorded roots the inner one wins.
        self._recorded = sorted({r for r in recorded if r and r != self.root}, key=len, reverse=True)
        self.written: list[str] | None = None  # set by a writing client: every file this IO created

    def translate(self, location: str) -> str:
        """`location` as a path that is valid where the lakehouse is now."""
        scheme = "file://" if location.startswith("file://") else ""
        path = location[len(scheme) :]
        for old in self._recorded:
            if path.startswith(old + "/"):
                return scheme + self.root + path[len(old) :]
        return location

    def _file(self, location: str, recorded: str) -> PyArrowFile:
        scheme, netloc, path = self.parse_location(location, self.properties)
        return PyArrowFile(
            fs=self.fs_by_scheme(scheme, netloc),
            location=recorded,
            path=path,
            buffer_size=int(self.properties.get("buffer-size", 1 << 20)),
        )

    def new_input(self, location: str) -> PyArrowFile:
        real = self.translate(location)
        return self._file(real, real)  # error messages then name the file that is really missing

    def new_output(self, location: str) -> PyArrowFile:
        real = self.translate(location)
        if self.written is not None:
            self.written.append(real)
        return self._file(real, location)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        str_location = location.location if isinstance(location, InputFile | OutputFile) else location
        super().delete(self.translate(str_location))


def _recorded_root(table_location: str, tree_location: str) -> str | None:
    """The root a table was created under, from its metadata's `location` and its relative tree location.

    A tree location `warehouse/ns/t-<id>/metadata/x.json` belongs to table directory `warehouse/ns/t-<id>`;
    the metadata's location is `<recorded root>/warehouse/ns/t-<id>`.
    """
    if Path(tree_location).is_absolute() or tree_location.startswith("file://"):
        return None
    table_dir = Path(tree_location).parent.parent.as_posix()
    location = table_location.removeprefix("file://").rstrip("/")
    if location.endswith("/" + table_dir):
        return location[: -len(table_dir) - 1]
    return None


class _RefCatalog(MetastoreCatalog):
    """A pyiceberg catalog bound to one commit of the ref store.

    pyiceberg does the Iceberg work (schemas, snapshots, manifests, Parquet); this class only answers
    "where is table X's metadata on this ref" and turns a table commit into a lakehouse commit on the
    bound branch, with an optimistic check of the branch head.
    """

    def __init__(self, store: RefStore, warehouse: Path, ref: ResolvedRef, *, author: str) -> None:
        io_impl = f"{RelocatingFileIO.__module__}.{RelocatingFileIO.__qualname__}"
        super().__init__(
            "wap",
            warehouse=str(warehouse),
            **{PY_IO_IMPL: io_impl, ROOT_PROPERTY: str(store.root), RECORDED_ROOTS_PROPERTY: "[]"},
        )
        self.store = store
        self.warehouse = warehouse
        self.ref = ref
        self.base_hash = ref.hash
        self.author = author
        self.message = "commit"
        self.commit_properties: dict[str, str] = {}
        self.written: list[str] = []  # files created by this catalog's writes (deleted if they fail)
        self.committed = False

    # -- reads
    def load_table(self, identifier: str | Identifier) -> Table:
        namespace, name = self._split(identifier)
        location = self.store.tree(self.base_hash).get(_key(namespace, name))
        if location is None:
            raise NoSuchTableError(_key(namespace, name))
        metadata = self.read_metadata(_key(namespace, name), location)
        recorded = _recorded_root(metadata.location, location)
        if recorded is not None:
            roots = json.loads(self.properties[RECORDED_ROOTS_PROPERTY])
            if recorded not in roots:
                # Catalog-wide: pyiceberg makes the IO that writes a table's next metadata file from these.
                self.properties[RECORDED_ROOTS_PROPERTY] = json.dumps([*roots, recorded])
        io = RelocatingFileIO({**self.properties, **metadata.properties})
        io.written = self.written
        # The Table keeps its recorded (not translated) metadata location, like every path inside it.
        recorded_location = f"{recorded}/{location}" if recorded is not None else str(self.store.locate(location))
        return Table((namespace, name), metadata, recorded_location, io, self)

    def read_metadata(self, table: str, location: str) -> TableMetadata:
        path = self.store.locate(location)
        try:
            return FromInputFile.table_metadata(RelocatingFileIO(self.properties).new_input(str(path)))
        except FileNotFoundError:
            raise StorageError(
                f"table {table} on {self.ref.ref}: metadata file missing: {path}; {RECOVER_HINT}"
            ) from None
        except OSError as exc:
            raise storage_error(exc, path, f"read table {table}") from exc

    def relative(self, location: str) -> str:
        """A tree location: relative to the lakehouse root when it lies under it (or a recorded root)."""
        path = location.removeprefix("file://")
        for root in [str(self.store.root), *json.loads(self.properties[RECORDED_ROOTS_PROPERTY])]:
            if path.startswith(root + "/"):
                return path[len(root) + 1 :]
        return location

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
        self._write_tracked(metadata, load_file_io(self.properties, metadata_location), metadata_location)
        self._commit({_key(namespace, name): self.relative(metadata_location)})
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
        self._write_tracked(staged.metadata, staged.io, staged.metadata_location)
        self._commit({_key(namespace, name): self.relative(staged.metadata_location)})
        return CommitTableResponse(metadata=staged.metadata, metadata_location=staged.metadata_location)

    def _write_tracked(self, metadata: TableMetadata, io: Any, location: str) -> None:
        self.written.append(io.translate(location) if isinstance(io, RelocatingFileIO) else location)
        ToOutputFile.table_metadata(metadata, io.new_output(location))  # the body of MetastoreCatalog._write_metadata

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
        # From here the files written so far are referenced by a commit: a later failure must keep them.
        self.committed = True

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
        self.store = open_store(self.root)
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
        if into_branch == MAIN:
            # main only ever holds readable states: refuse a branch whose tables name missing files.
            # Pinned, so the state checked is the state merged even if the branch moves meanwhile.
            source = self.store.resolve(source_ref)
            self._check_files(f"{source.branch}@{source.hash}", source_ref)
            commit_message = commit_message or f"merge {source_ref} into {into_branch}"
            source_ref = f"{source.branch}@{source.hash}"
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
            metadata_location=cast(RelocatingFileIO, tbl.io).translate(tbl.metadata_location),  # see _RefCatalog
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
        with self._writing(catalog, f"create table {ns}.{name}"):
            catalog.create_table((ns, name), schema)
        # The commit just made, not `branch` as given: `dev@<old head>` now names the commit before it.
        return self.get_table(name, f"{catalog.ref.branch}@{catalog.base_hash}", namespace=ns)

    def import_data(self, table: str, search_uri: str, *, branch: str, namespace: str | None = None) -> ImportState:
        """Append the source's rows to the table on `branch` as one commit, streamed in chunks."""
        ns, name = resolve_table_name(table, namespace)
        catalog = self._catalog(branch, write=True)
        tbl = self._load_with(catalog, ns, name, branch)
        with open_source(search_uri) as source, self._writing(catalog, f"import into {ns}.{name}"):
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
        return ImportState(job_status="SUCCESS", rows=rows, table=_key(ns, name), branch=catalog.ref.branch)

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
        except OSError as exc:  # before ArrowException: a missing file is the storage's fault, not the query's
            missing = table_missing_files(tbl)
            if missing:
                raise _missing_error(_key(ns, name), ref, missing) from None
            raise storage_error(exc, self.root, f"read table {ns}.{name}") from exc
        except (ValueError, pa.ArrowException) as exc:
            raise QueryError(f"cannot scan {ns}.{name} on {ref}: {exc}") from exc

    def query(self, query: str, *, ref: str, namespace: str | None = None) -> pa.Table:
        from .sql import run_readonly_query

        # One commit for every table of the query, even if the branch moves while the views are built.
        return run_readonly_query(self, query, ref=self._pinned_ref(ref), namespace=namespace)

    def data_files(self, table: str, *, ref: str, namespace: str | None = None) -> tuple[pa.Schema, list[str]]:
        """The Arrow schema and Parquet files holding a table's rows on `ref` (no deletes are ever written)."""
        ns, name = resolve_table_name(table, namespace)
        tbl = self._load(ns, name, ref)
        try:
            io = cast(RelocatingFileIO, tbl.io)  # every table is loaded through _RefCatalog
            files = [io.translate(task.file.file_path) for task in tbl.scan().plan_files()]
        except OSError:
            files = None
        # DuckDB would only say "no such file" with a path: name the table, and check before reading.
        missing = table_missing_files(tbl) if files is None else [f for f in files if not os.path.isfile(f)]
        if missing:
            raise _missing_error(_key(ns, name), ref, missing)
        return tbl.schema().as_arrow(), [f.removeprefix("file://") for f in files or []]

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
        if write and self.store.read_only:
            raise StorageError(f"lakehouse is read-only: cannot write {self.root}")
        return _RefCatalog(self.store, self.warehouse, resolved, author=self.author)

    @contextmanager
    def _writing(self, catalog: _RefCatalog, doing: str) -> Iterator[None]:
        """Hold the writers' lock (shared) around a write; if it fails before committing, delete its files.

        The files are provably this write's own (created through its IO) and no commit names them. A
        killed writer cannot clean up; its lock dies with it, and `doctor.reclaim_files` then finds them.
        """
        try:
            lock = os.open(self.root / WRITERS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, self.root / WRITERS_LOCK, doing) from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_SH)
            try:
                yield
            except BaseException as exc:
                if not catalog.committed:
                    for path in catalog.written:
                        # Never there, or not deletable: reclaim_files finds it later.
                        with suppress(OSError):
                            os.unlink(path.removeprefix("file://"))
                if isinstance(exc, OSError):
                    raise storage_error(exc, self.root, doing) from exc
                raise
        finally:
            os.close(lock)  # releases the flock

    def _check_files(self, ref: str, shown: str) -> None:
        """Refuse (StorageError) if a table the merge would bring into main names a missing file.

        Tables main already has at the same metadata file are not re-read: the merge does not change
        them, and refusing would not make main any more readable.
        """
        catalog, main = self._catalog(ref), self._catalog(MAIN)
        target = self.store.tree(main.base_hash)
        for key, location in sorted(self.store.tree(catalog.base_hash).items()):
            if target.get(key) == location:
                continue
            ns, name = key.split(".", 1)
            try:
                tbl = catalog.load_table((ns, name))
                known = _manifest_paths(main.load_table((ns, name))) if key in target else frozenset()
            except StorageError as exc:
                raise StorageError(f"refusing to merge {shown} into {MAIN}: {exc}") from None
            missing = table_missing_files(tbl, known)
            if missing:
                error = _missing_error(key, shown, missing)
                raise StorageError(f"refusing to merge {shown} into {MAIN}: {error}")

    def _load(self, namespace: str, name: str, ref: str) -> Table:
        return self._load_with(self._catalog(ref), namespace, name, ref)

    @staticmethod
    def _load_with(catalog: _RefCatalog, namespace: str, name: str, ref: str) -> Table:
        try:
            return catalog.load_table((namespace, name))
        except NoSuchTableError:
            raise TableNotFoundError(_key(namespace, name), ref) from None


def open_store(root: Path) -> RefStore:
    """The lakehouse's ref store; a new lakehouse is created only where none exists.

    None exists when there is no catalog.db and nothing in warehouse/ or journal/. A catalog.db that
    is missing while they hold files is refused: creating a fresh one would orphan every table.
    """
    catalog = root / CATALOG_FILE
    if not catalog.exists():
        content = stored_content(root)
        if content is None:
            try:
                (root / "warehouse").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, root, "create the lakehouse") from exc
            RefStore.initialize(catalog)
        elif not catalog.exists():  # checked again: another process may have just created the lakehouse
            raise CatalogUnusableError(
                f"lakehouse catalog {catalog} is missing but {content} still holds tables: {RECOVER_HINT}"
            )
    return RefStore(catalog)


def stored_content(root: Path) -> Path | None:
    """The first file under the lakehouse's warehouse/ or journal/, if any (stops at the first one)."""
    for sub in ("warehouse", JOURNAL_DIR):
        try:
            for _dirpath, _dirs, files in os.walk(root / sub):
                if files:
                    return root / sub
        except OSError:
            return root / sub
    return None


def table_missing_files(tbl: Table, known_manifests: frozenset[str] = frozenset()) -> list[str]:
    """Files the table's current snapshot needs that are not there: manifest list, manifests, data files.

    The data files of `known_manifests` (already checked, e.g. main's own) are not listed again: a
    manifest is only read for its entries when it is new, so checking a merge costs what the branch added.
    """
    io = tbl.io
    snapshot = tbl.current_snapshot()
    if snapshot is None:
        return []
    translate = io.translate if isinstance(io, RelocatingFileIO) else (lambda p: p)
    manifest_list = translate(snapshot.manifest_list)
    if not os.path.isfile(manifest_list.removeprefix("file://")):
        return [manifest_list]
    missing: list[str] = []
    for manifest in snapshot.manifests(io):
        path = translate(manifest.manifest_path)
        if not os.path.isfile(path.removeprefix("file://")):
            missing.append(path)
            continue
        if manifest.manifest_path in known_manifests:
            continue
        for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
            data = translate(entry.data_file.file_path)
            if not os.path.isfile(data.removeprefix("file://")):
                missing.append(data)
    return missing


def _manifest_paths(tbl: Table) -> frozenset[str]:
    snapshot = tbl.current_snapshot()
    if snapshot is None:
        return frozenset()
    try:
        return frozenset(m.manifest_path for m in snapshot.manifests(tbl.io))
    except OSError:
        return frozenset()  # main's own files are missing: check everything the branch names


def _missing_error(table: str, ref: str, missing: list[str]) -> StorageError:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return StorageError(f"table {table} on {ref}: file missing: {missing[0]}{more}; {RECOVER_HINT}")


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
