"""The pyiceberg MetastoreCatalog over one resolved ref, and the FileIO that makes a lakehouse relocatable.

`RefCatalog` lets pyiceberg do the Iceberg work (schemas, snapshots, manifests, Parquet) on the tables of one
commit of the ref store, and turns each table commit into a lakehouse commit. `RelocatingFileIO` (pyiceberg's
`py-io-impl`) opens every path a table recorded under the root it was created at under the root the lakehouse
is at now (see local.py for the layout and why metadata keeps absolute paths).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog, MetastoreCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io import PY_IO_IMPL, InputFile, OutputFile, load_file_io
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties

from . import pyiceberg_fixes  # noqa: F401  (installs the nested-null fix before any write)
from .errors import InvalidNameError, StorageError
from .refs import RefStore, ResolvedRef
from .storage import RECOVER_HINT, storage_error

ROOT_PROPERTY = "wap.root"
RECORDED_ROOTS_PROPERTY = "wap.recorded-roots"


def table_key(namespace: str, table: str) -> str:
    """A table's key in a commit's tree: `namespace.table`."""
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


def recorded_root(table_location: str, tree_location: str) -> str | None:
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


class RefCatalog(MetastoreCatalog):
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
        location = self.store.tree(self.base_hash).get(table_key(namespace, name))
        if location is None:
            raise NoSuchTableError(table_key(namespace, name))
        metadata = self.read_metadata(table_key(namespace, name), location)
        recorded = recorded_root(metadata.location, location)
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
        self._commit({table_key(namespace, name): self.relative(metadata_location)})
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
        self._commit({table_key(namespace, name): self.relative(staged.metadata_location)})
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
