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
through `catalog.RelocatingFileIO` (pyiceberg's `py-io-impl`), which maps a table's recorded root to the root
the lakehouse is at now: a copy reads and writes only its own files, and a moved lakehouse keeps working.
"""

from __future__ import annotations

import fcntl
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import cast

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.parser import parse as parse_filter
from pyiceberg.table import FileScanTask, Table
from pyparsing import ParseException

from .catalog import RefCatalog, RelocatingFileIO, table_key
from .conform import BatchConverter, conform_to_table
from .errors import (
    BranchExistsError,
    BranchNotFoundError,
    CatalogUnusableError,
    ConcurrentUpdateError,
    ImmutableTagError,
    InvalidNameError,
    LakehouseError,
    NothingToRevertError,
    QueryError,
    SchemaMismatchError,
    SourceError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
)
from .models import Branch, Commit, ImportState, InfoState, TableField, TableInfo, Tag, UserInfo
from .names import MAIN, local_username, resolve_table_name, split_ref, validate_branch, validate_tag
from .progress import import_progress
from .refs import JOURNAL_DIR, WRITERS_LOCK, RefStore
from .sources import Source, open_source
from .storage import RECOVER_HINT, storage_error

# Rows buffered before pyiceberg writes them as a data file: bounds import memory.
IMPORT_CHUNK_ROWS = 1_000_000
IMPORT_CHUNK_BYTES = 128 << 20


CATALOG_FILE = "catalog.db"


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

    def info(self) -> InfoState:
        """The user branches are named for: `WAP_USER`, else the OS user (no account here: any name is allowed)."""
        return InfoState(UserInfo(local_username()))

    # ------------------------------------------------------------ branches
    def create_branch(self, branch: str, from_ref: str, *, if_not_exists: bool = False) -> Branch:
        validate_branch(branch)
        try:
            return self.store.create_branch(branch, self.store.resolve(from_ref).hash)
        except BranchExistsError:
            if not if_not_exists:
                raise
            return self.get_branch(branch)

    def has_branch(self, branch: str) -> bool:
        return self.store.has_branch(validate_branch(branch))

    def get_branch(self, branch: str) -> Branch:
        resolved = self.store.resolve(validate_branch(branch))
        return Branch(resolved.branch, resolved.hash)

    def delete_branch(self, branch: str, *, if_exists: bool = False) -> bool:
        try:
            self.store.delete_branch(validate_branch(branch))
        except BranchNotFoundError:
            if not if_exists:
                raise
            return False
        return True

    def get_branches(
        self, *, name: str | None = None, user: str | None = None, limit: int | None = None
    ) -> list[Branch]:
        found = [
            b
            for b in self.store.branches()
            if (name is None or name in b.name) and (user is None or b.name.startswith(f"{user}."))
        ]
        return found if limit is None else found[:limit]

    # ---------------------------------------------------------------- tags
    def create_tag(self, tag: str, from_ref: str) -> Tag:
        validate_tag(tag)  # tag names follow the branch rules: the same ref syntax reads both
        return self.store.create_tag(tag, self.store.resolve(from_ref).hash)

    def has_tag(self, tag: str) -> bool:
        return self.store.has_tag(validate_tag(tag))

    def get_tag(self, tag: str) -> Tag:
        return self.store.tag(validate_tag(tag))

    def get_tags(self) -> list[Tag]:
        return self.store.tags()

    def delete_tag(self, tag: str) -> bool:
        self.store.delete_tag(validate_tag(tag))
        return True

    def get_commits(
        self, ref: str, *, filter_by_properties: dict[str, str] | None = None, limit: int | None = None
    ) -> list[Commit]:
        head = self.store.resolve(ref).hash
        if not filter_by_properties:
            return self.store.log(head, limit)
        wanted = filter_by_properties.items()
        found = [c for c in self.store.log(head) if all(c.properties.get(k) == v for k, v in wanted)]
        return found if limit is None else found[:limit]

    def merge_branch(
        self,
        source_ref: str,
        into_branch: str,
        *,
        commit_message: str | None = None,
        commit_body: str | None = None,
        commit_properties: dict[str, str] | None = None,
    ) -> str:
        """Merge atomically across every table; return the new head of `into_branch` (`commit_body`, as Bauplan
        keeps it, follows the message after a blank line)."""
        validate_branch(into_branch)
        if self.store.has_tag(into_branch):  # the store refuses it too, in its transaction; this names the merge
            raise ImmutableTagError(into_branch, "merge into")
        if into_branch == MAIN:
            # main only ever holds readable states: refuse a branch whose tables name missing files.
            # Pinned, so the state checked is the state merged even if the branch moves meanwhile.
            source = self.store.resolve(source_ref)
            self._check_files(f"{source.branch}@{source.hash}", source_ref)
            commit_message = commit_message or f"merge {source_ref} into {into_branch}"
            source_ref = f"{source.branch}@{source.hash}"
        message = commit_message or f"merge {source_ref} into {into_branch}"
        return self.store.merge(
            source_ref,
            into_branch,
            message=f"{message}\n\n{commit_body}" if commit_body else message,
            author=self.author,
            properties=commit_properties,
        )

    # -------------------------------------------------------------- tables
    def get_tables(self, ref: str, *, filter_by_namespace: str | None = None) -> list[TableInfo]:
        # Every table is read at the same commit, even if the branch moves meanwhile.
        pinned = self._pinned_ref(ref)
        tree = self.store.tree(self.store.resolve(pinned).hash)
        keys = sorted(k for k in tree if filter_by_namespace is None or k.split(".", 1)[0] == filter_by_namespace)
        return [self.get_table(k, pinned) for k in keys]

    def has_table(self, table: str, ref: str, *, namespace: str | None = None) -> bool:
        ns, name = resolve_table_name(table, namespace)
        return table_key(ns, name) in self.store.tree(self.store.resolve(ref).hash)

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
            metadata_location=cast(RelocatingFileIO, tbl.io).translate(tbl.metadata_location),  # see RefCatalog
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            snapshot_ids=tuple(s.snapshot_id for s in tbl.metadata.snapshots),
        )

    def create_table(
        self, table: str, search_uri: str, *, branch: str, namespace: str | None = None, replace: bool = False
    ) -> TableInfo:
        """Create an empty table on `branch` whose schema is inferred from the source files.

        `replace=True` on a table the branch has: if the source fits its columns (as `import_data` would fit it),
        the same Iceberg table is emptied instead (a delete snapshot), so readers keep its history."""
        ns, name = resolve_table_name(table, namespace)
        catalog = self._catalog(branch, write=True)
        with open_source(search_uri) as source:
            schema = source.schema
            exists = table_key(ns, name) in self.store.tree(catalog.base_hash)
            if exists and not replace:
                raise TableExistsError(table_key(ns, name), branch)
            kept = self._load_with(catalog, ns, name, branch) if exists else None
            # Only a table with rows: emptying an empty one would change nothing (and make no commit).
            fits = kept is not None and _has_rows(kept) and _fits(kept, source, name)
        if kept is not None and fits:
            # The source fits the table (as an append's must): the same Iceberg table, emptied by a snapshot of its
            # own, so readers keep its history; the import then adds the new rows as the next snapshot, as
            # pyiceberg's own overwrite does. A source with other columns or types gets a new table.
            catalog.message = f"replace the rows of table {ns}.{name} (from {search_uri})"
            catalog.commit_properties = {"wap.operation": "replace_rows", "wap.source": search_uri}
            with self._writing(catalog, f"replace table {ns}.{name}"), kept.transaction() as tx:
                tx.delete(AlwaysTrue())
            return self.get_table(name, f"{catalog.ref.branch}@{catalog.base_hash}", namespace=ns)
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
            # Before a row is written: the source's columns, fitted to the table's types where no value changes.
            fit = conform_to_table(tbl.schema(), source.schema, source.uri, name, text_source=source.format == "csv")
            catalog.message = f"import data into {ns}.{name} from {search_uri}"
            rows = 0
            try:
                total = source.known_rows()
                with tbl.transaction() as tx:
                    # One commit for the whole import: a failure part-way leaves the branch untouched.
                    for chunk in _chunks(source, fit):
                        tx.append(chunk)
                        rows += chunk.num_rows
                        import_progress(rows, total)
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
        return ImportState(job_status="SUCCESS", rows=rows, table=table_key(ns, name), branch=catalog.ref.branch)

    def fit_source(self, table: str, search_uri: str, *, ref: str, namespace: str | None = None) -> pa.Table:
        """The source's rows as `import_data` would append them to the table on `ref`, in the table's column order
        and types, writing nothing; raises SchemaMismatchError as `import_data` does (e.g. for `wap validate`)."""
        ns, name = resolve_table_name(table, namespace)
        tbl = self._load(ns, name, ref)
        target = tbl.schema().as_arrow()
        with open_source(search_uri) as source:
            fit = conform_to_table(tbl.schema(), source.schema, source.uri, name, text_source=source.format == "csv")
            chunks = [chunk.select(target.names).cast(target) for chunk in _chunks(source, fit)]
        return pa.concat_tables(chunks) if chunks else target.empty_table()

    def add_new_columns(self, table: str, search_uri: str, *, branch: str, namespace: str | None = None) -> list[str]:
        """Iceberg schema evolution: the source's columns the table lacks become optional columns (the rows
        already there read them as null), in one commit; existing columns are left as they are."""
        ns, name = resolve_table_name(table, namespace)
        catalog = self._catalog(branch, write=True)
        tbl = self._load_with(catalog, ns, name, branch)
        with open_source(search_uri) as source:
            known = set(tbl.schema().column_names)
            new = [field for field in source.schema if field.name not in known]
            if not new:
                return []
            added = [field.name for field in new]
            catalog.message = f"add columns {', '.join(added)} to {ns}.{name} from {search_uri}"
            catalog.commit_properties = {"wap.operation": "add_columns", "wap.source": search_uri}
            with self._writing(catalog, f"add columns to {ns}.{name}"):
                try:
                    with tbl.update_schema() as update:
                        update.union_by_name(pa.schema(new))
                except CommitFailedException as exc:
                    raise ConcurrentUpdateError(f"table {ns}.{name} on {branch} changed meanwhile: {exc}") from exc
        return added

    def delete_table(self, table: str, branch: str, *, namespace: str | None = None) -> Branch:
        """Drop the table from `branch` in one commit; its files stay (older commits and other refs read them)."""
        ns, name = resolve_table_name(table, namespace)
        catalog = self._catalog(branch, write=True)
        key = table_key(ns, name)
        if key not in self.store.tree(catalog.base_hash):
            raise TableNotFoundError(key, branch)
        new = self.store.commit(
            catalog.ref.branch,
            base_hash=catalog.base_hash,
            changes={key: None},
            message=f"delete table {key}",
            author=self.author,
            properties={"wap.operation": "delete_table"},
        )
        return Branch(catalog.ref.branch, new)

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
        """One commit on `into_branch` whose entry for the table is its entry at `source_ref` (the Iceberg metadata
        file that state named: no data is copied, and history is kept). Refused as Bauplan's SDK refuses it: a
        table `source_ref` lacks (TableNotFoundError: drop it with `delete_table`), a table `into_branch` has
        without `replace` (TableExistsError), a table already in that state (NothingToRevertError)."""
        ns, name = resolve_table_name(table, namespace)
        key = table_key(ns, name)
        if self.store.has_tag(split_ref(into_branch)[0]):
            raise ImmutableTagError(into_branch, "revert a table into")
        target = self._catalog(into_branch, write=True)
        source = self.store.resolve(source_ref)
        location = self.store.tree(source.hash).get(key)
        if location is None:
            raise TableNotFoundError(key, source_ref)
        current = self.store.tree(target.base_hash).get(key)
        if current == location:
            raise NothingToRevertError(f"table {key} on {into_branch} is already as it was at {source_ref}")
        if current is not None and not replace:
            raise TableExistsError(key, into_branch)
        if target.ref.branch == MAIN:
            # As a merge into main: main only ever names files that exist.
            missing = table_missing_files(self._load(ns, name, f"{source.branch}@{source.hash}"))
            if missing:
                raise StorageError(f"refusing to revert {key} on {MAIN}: {_missing_error(key, source_ref, missing)}")
        new = self.store.commit(
            target.ref.branch,
            base_hash=target.base_hash,  # moved meanwhile and this table changed: ConcurrentUpdateError
            changes={key: location},
            message=commit_body or f"revert table {key} to {source_ref}",
            author=self.author,
            properties={"wap.operation": "revert_table", "wap.source_ref": source_ref, **(commit_properties or {})},
        )
        return Branch(target.ref.branch, new)

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
                raise _missing_error(table_key(ns, name), ref, missing) from None
            raise storage_error(exc, self.root, f"read table {ns}.{name}") from exc
        except (ValueError, pa.ArrowException) as exc:
            raise QueryError(f"cannot scan {ns}.{name} on {ref}: {exc}") from exc

    def query(self, query: str, *, ref: str, namespace: str | None = None, max_rows: int | None = None) -> pa.Table:
        from .sql import run_readonly_query

        # One commit for every table of the query, even if the branch moves while the views are built.
        return run_readonly_query(self, query, ref=self._pinned_ref(ref), namespace=namespace, max_rows=max_rows)

    def data_files(self, table: str, *, ref: str, namespace: str | None = None) -> tuple[pa.Schema, list[str]]:
        """The Arrow schema and Parquet files holding a table's rows on `ref` (no deletes are ever written)."""
        ns, name = resolve_table_name(table, namespace)
        tbl = self._load(ns, name, ref)
        try:
            io = cast(RelocatingFileIO, tbl.io)  # every table is loaded through RefCatalog
            files = [io.translate(task.file.file_path) for task in tbl.scan().plan_files()]
        except OSError:
            files = None
        # DuckDB would only say "no such file" with a path: name the table, and check before reading.
        missing = table_missing_files(tbl) if files is None else [f for f in files if not os.path.isfile(f)]
        if missing:
            raise _missing_error(table_key(ns, name), ref, missing)
        return tbl.schema().as_arrow(), [f.removeprefix("file://") for f in files or []]

    def scan_data_files(self, table: str, files: list[str], *, ref: str, namespace: str | None = None) -> pa.Table:
        """The rows of just these data files of the table on `ref` (e.g. those an append added), read like `scan`."""
        from pyiceberg.io.pyarrow import ArrowScan

        ns, name = resolve_table_name(table, namespace)
        tbl = self._load(ns, name, ref)
        io = cast(RelocatingFileIO, tbl.io)
        wanted = set(files)

        def path(task: FileScanTask) -> str:
            return io.translate(task.file.file_path).removeprefix("file://")

        try:
            tasks = [t for t in tbl.scan().plan_files() if path(t) in wanted]
            unknown = wanted - {path(t) for t in tasks}
            if unknown:
                raise QueryError(f"{sorted(unknown)[0]} is not a data file of {ns}.{name} on {ref}")
            return ArrowScan(tbl.metadata, tbl.io, tbl.schema(), AlwaysTrue()).to_table(tasks)
        except OSError as exc:
            missing = table_missing_files(tbl)
            if missing:
                raise _missing_error(table_key(ns, name), ref, missing) from None
            raise storage_error(exc, self.root, f"read table {ns}.{name}") from exc

    # ------------------------------------------------------------- helpers
    def _pinned_ref(self, ref: str) -> str:
        """`ref` as `branch@hash` of the commit it points to now: later reads see that same commit.

        Reading several tables through a branch name re-resolves it for each table, so a merge landing
        in between would show one table before it and another after it.
        """
        resolved = self.store.resolve(ref)
        return f"{resolved.branch}@{resolved.hash}"

    def _catalog(self, ref: str, *, write: bool = False) -> RefCatalog:
        resolved = self.store.resolve(ref)
        if write and resolved.is_tag:
            raise ImmutableTagError(resolved.branch, "write to")
        if write and not resolved.is_head:
            # Checked before any file is read or written, not only at commit time.
            raise InvalidNameError(f"cannot write to {ref}: a past commit is read-only")
        if write and self.store.read_only:
            raise StorageError(f"lakehouse is read-only: cannot write {self.root}")
        return RefCatalog(self.store, self.warehouse, resolved, author=self.author)

    @contextmanager
    def _writing(self, catalog: RefCatalog, doing: str) -> Iterator[None]:
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
    def _load_with(catalog: RefCatalog, namespace: str, name: str, ref: str) -> Table:
        try:
            return catalog.load_table((namespace, name))
        except NoSuchTableError:
            raise TableNotFoundError(table_key(namespace, name), ref) from None


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


def _has_rows(table: Table) -> bool:
    snapshot = table.current_snapshot()
    return bool(snapshot and snapshot.summary and int(snapshot.summary.get("total-records", 0)) > 0)


def _fits(table: Table, source: Source, name: str) -> bool:
    """Whether the source's columns fit the table's, as `import_data` fits an appended source."""
    try:
        conform_to_table(table.schema(), source.schema, source.uri, name, text_source=source.format == "csv")
    except SchemaMismatchError:
        return False
    return True


def _chunks(source: Source, fit: BatchConverter):
    """Group the source's batches, fitted to the table, into tables of bounded size for pyiceberg to write."""
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    schema = None
    for raw in source.batches():
        batch = fit(raw)
        schema = batch.schema
        pending.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if rows >= IMPORT_CHUNK_ROWS or size >= IMPORT_CHUNK_BYTES:
            yield pa.Table.from_batches(pending, schema=schema)
            pending, rows, size = [], 0, 0
    if pending:
        yield pa.Table.from_batches(pending, schema=schema)
