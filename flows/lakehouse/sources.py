"""Data sources for `create_table` / `import_data`: CSV and Parquet from a path, glob, file://, https:// or s3://.

A source's schema is inferred from its first file, and its rows are streamed file by file in small
batches (bounded memory), never read whole. Every failure becomes a SourceError that names the source.

Why not `pyarrow.dataset`: its scanner reads far ahead of the consumer whatever `batch_readahead`
says, and its CSV discovery buffered dozens of 16 MiB blocks, so import memory grew with the file
(measured: +210 MiB for 2M rows, +430 MiB for 6M). The format readers used here (`pyarrow.csv.open_csv`
with small blocks, `ParquetFile.iter_batches` without pre-buffering) level off at ~230 MiB.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import SourceError
from .names import check_column_names

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".tsv", ".tsv.gz", ".tsv.bz2", ".tsv.zst", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# Column types are inferred from this much of the first CSV file (many rows, one bounded read).
CSV_SAMPLE_BYTES = 16 << 20
# The CSV stream reader buffers a few dozen blocks ahead, so memory is roughly 40 x the block size;
# the block only grows when the sample has long lines (a row must fit in one block).
CSV_BLOCK_SIZE = 1 << 20
CSV_MAX_BLOCK_SIZE = 64 << 20
BATCH_ROWS = 256_000
PARQUET_BUFFER_SIZE = 1 << 20
HTTP_TIMEOUT_S = float(os.environ.get("WAP_HTTP_TIMEOUT", "30"))


@dataclass
class Source:
    uri: str
    format: str  # "csv" or "parquet"
    files: list[str]
    filesystem: pafs.FileSystem
    schema: pa.Schema  # normalized to types Iceberg can store
    csv_block_size: int = CSV_BLOCK_SIZE

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the rows, file by file, with the normalized schema; read errors become SourceError."""
        for path in self.files:
            try:
                for batch in self._read(path):
                    yield _conform(batch, self.schema, self.uri, path)
            except (pa.ArrowException, OSError) as exc:
                where = "" if len(self.files) == 1 else f" (file {path})"
                raise SourceError(f"cannot read source {self.uri}{where}: {_one_line(exc)}") from exc

    def known_rows(self) -> int | None:
        """The source's row count where its files say it without a scan (Parquet footers); None for CSV."""
        if self.format != "parquet":
            return None
        total = 0
        try:
            for path in self.files:
                with self.filesystem.open_input_file(path) as f:
                    total += pq.ParquetFile(f).metadata.num_rows
        except (pa.ArrowException, OSError):
            return None  # the import itself says what is wrong with the file
        return total

    def _read(self, path: str) -> Iterator[pa.RecordBatch]:
        if self.format == "parquet":
            with self.filesystem.open_input_file(path) as f:
                # No pre-buffering: one column chunk's pages at a time, not whole row groups.
                parquet = pq.ParquetFile(f, pre_buffer=False, buffer_size=PARQUET_BUFFER_SIZE)
                yield from parquet.iter_batches(batch_size=BATCH_ROWS)
            return
        # The inferred types are imposed on every block and every file, so a later block cannot
        # silently change a column's type.
        convert = pacsv.ConvertOptions(column_types={f.name: f.type for f in self.schema}, strings_can_be_null=True)
        with self.filesystem.open_input_stream(path) as stream:  # compression detected from the suffix
            yield from pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=self.csv_block_size),
                parse_options=_csv_parse_options(path),
                convert_options=convert,
            )


def _conform(batch: pa.RecordBatch, target: pa.Schema, uri: str, path: str) -> pa.RecordBatch:
    if batch.schema == target:
        return batch
    if batch.schema.names != target.names:
        if sorted(batch.schema.names) != sorted(target.names):
            raise SourceError(
                f"source {uri}: file {path} has columns {', '.join(batch.schema.names)};"
                f" expected {', '.join(target.names)}"
            )
        batch = batch.select(target.names)
    try:
        return batch.cast(target)  # pyarrow's safe cast: a value that would change raises instead
    except pa.ArrowInvalid:
        for field, column in zip(target, batch.columns, strict=True):
            try:
                column.cast(field.type)
            except pa.ArrowInvalid as exc:
                raise SourceError(
                    f"source {uri}: column {field.name!r} ({column.type}) holds a value that {field.type} would"
                    f" change: {_one_line(exc)}{_lossy_advice(column.type)}"
                ) from exc
        raise


def _lossy_advice(t: pa.DataType) -> str:
    """What to do when a value does not fit the type the table stores (found only while reading: a
    Parquet footer cannot say whether a timestamp[ns] column holds a sub-microsecond value)."""
    if (pa.types.is_timestamp(t) or pa.types.is_time(t)) and t.unit == "ns":
        return "; Iceberg stores microseconds: round the column to microseconds first"
    if t == pa.uint64():
        return "; Iceberg's largest integer is a signed 64-bit long: store it as decimal(20, 0) or text"
    return ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def normalize_schema(schema: pa.Schema, uri: str = "") -> pa.Schema:
    """Map each column to the Arrow type an Iceberg table stores it as; SourceError for a type it cannot store.

    Conversions keep every value (the import casts with pyarrow's safe cast, so a value that does not fit,
    e.g. a uint64 above 2**63 or a sub-microsecond timestamp, fails the read instead of changing).
    """
    where = f"source {uri}: " if uri else ""
    return pa.schema([pa.field(f.name, _iceberg_compatible(f.type, f.name, where), nullable=True) for f in schema])


# Iceberg (format 2) has no type for these; there is no lossless conversion either, so they are refused.
_REFUSED_ADVICE = {
    "duration": "store it as an integer count of a unit (e.g. seconds) instead",
    "interval": "store it as text or as integer months/days/nanoseconds instead",
    "list_view": "write it as a plain list (pyarrow's list_view-to-list cast drops values)",
    "union": "split it into one column per member type",
    "run_end_encoded": "write it decoded",
}


def _refuse(t: pa.DataType, path: str, where: str, kind: str) -> SourceError:
    return SourceError(
        f"{where}column {path!r} has type {t}, which an Iceberg table cannot store: {_REFUSED_ADVICE[kind]}"
    )


def _iceberg_compatible(t: pa.DataType, path: str = "", where: str = "") -> pa.DataType:
    """The Iceberg-storable Arrow type for `t` (recursing into nested types), or SourceError naming `path`."""
    if isinstance(t, pa.UuidType):
        return t  # Iceberg's uuid
    if isinstance(t, pa.BaseExtensionType):
        # bool8 is a boolean stored as int8; other extensions (JSON text, tensors...) keep their values
        # as their storage type (the extension's label is not kept: Iceberg has nowhere to put it).
        if t.extension_name == "arrow.bool8":
            return pa.bool_()
        return _iceberg_compatible(t.storage_type, path, where)
    if pa.types.is_null(t):
        return pa.string()  # an all-empty CSV column: keep it, as text
    if pa.types.is_dictionary(t):
        return _iceberg_compatible(t.value_type, path, where)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        # Iceberg's timestamptz holds UTC instants: an Arrow timestamp already stores the UTC instant and
        # the zone only labels it, so any zone (Europe/Paris, +01:00) becomes UTC with every instant kept.
        return pa.timestamp("us", tz=None if t.tz is None else "UTC")
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_unsigned_integer(t) or t in (pa.int8(), pa.int16()):
        return pa.int64() if t in (pa.uint32(), pa.uint64()) else pa.int32()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_decimal(t):
        if t.precision > 38:  # Iceberg's decimal holds at most 38 digits
            raise SourceError(
                f"{where}column {path!r} has type {t}, which an Iceberg table cannot store: at most 38 digits"
            )
        return pa.decimal128(t.precision, t.scale)  # also decimal32/64/256 of 38 digits or fewer
    if pa.types.is_duration(t):
        raise _refuse(t, path, where, "duration")
    if pa.types.is_interval(t):
        raise _refuse(t, path, where, "interval")
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        raise _refuse(t, path, where, "list_view")
    if pa.types.is_union(t):
        raise _refuse(t, path, where, "union")
    if pa.types.is_run_end_encoded(t):
        raise _refuse(t, path, where, "run_end_encoded")
    if pa.types.is_map(t):
        key = _iceberg_compatible(t.key_type, f"{path}.key", where)
        item = _iceberg_compatible(t.item_type, f"{path}.value", where)
        return pa.map_(t.key_field.with_type(key), t.item_field.with_type(item), keys_sorted=t.keys_sorted)
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        element = t.value_field.with_type(_iceberg_compatible(t.value_type, f"{path}.element", where))
        return pa.large_list(element) if pa.types.is_large_list(t) else pa.list_(element)  # Iceberg: a list
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_iceberg_compatible(f.type, f"{path}.{f.name}", where)) for f in t])
    return t  # boolean, int32/64, float32/64, string, (large_)binary, fixed_size_binary, date32


def _check_iceberg_schema(uri: str, schema: pa.Schema) -> None:
    """The table's own schema conversion and name sanitising, as `create_table` and the write will run them.

    A backstop behind `normalize_schema` and `check_column_names`: anything they let through that pyiceberg
    would still refuse is refused here, before any branch or file exists, instead of mid-run.
    """
    # pyiceberg's (private) conversion, the one MetastoreCatalog.create_table calls, so the verdict is
    # the table's; imported here because pyiceberg takes a second to import.
    from pyiceberg.catalog import Catalog
    from pyiceberg.io.pyarrow import UnsupportedPyArrowTypeException
    from pyiceberg.schema import sanitize_column_names

    try:
        sanitize_column_names(Catalog._convert_schema_if_needed(schema))
    except (UnsupportedPyArrowTypeException, TypeError, ValueError) as exc:
        raise SourceError(f"source {uri}: an Iceberg table cannot hold its columns: {_one_line(exc)}") from exc


def _format_of(path: str, opener) -> str:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    with opener(path) as f:  # no telling suffix: sniff Parquet's magic bytes
        return "parquet" if f.read(4) == b"PAR1" else "csv"


def _format_of_all(uri: str, files: list[str], opener) -> str:
    """The one format of every file; a source mixing CSV and Parquet is refused, naming a file of each.

    Otherwise the first file decides and the others fail to parse (a Parquet file read as CSV showed a
    parse error about a NUL byte).
    """
    first: dict[str, str] = {}
    for path in files:
        first.setdefault(_format_of(path, opener), path)
        if len(first) > 1:
            raise SourceError(
                f"source {uri} mixes CSV and Parquet files (CSV: {first['csv']}, Parquet: {first['parquet']}):"
                " use one format per source"
            )
    return next(iter(first))


def _csv_parse_options(path: str) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(delimiter="\t" if ".tsv" in Path(path).name.lower() else ",")


def _infer_csv(fs: pafs.FileSystem, path: str) -> tuple[pa.Schema, int]:
    """Column types from the head of `path`, and a block size that fits its longest line."""
    with fs.open_input_stream(path) as stream:
        head = stream.read(CSV_SAMPLE_BYTES)
        truncated = len(head) == CSV_SAMPLE_BYTES and len(stream.read(1)) == 1
    if truncated:
        cut = head.rfind(b"\n")
        if cut < 0:
            raise SourceError(f"first line longer than {CSV_SAMPLE_BYTES >> 20} MiB in {path}")
        head = head[: cut + 1]
    newlines = np.flatnonzero(np.frombuffer(head, dtype=np.uint8) == ord("\n"))
    # Longest line in the sample, counting a last line without a trailing newline.
    longest = int(np.diff(newlines, prepend=-1, append=len(head)).max()) if newlines.size else len(head)
    block_size = min(max(CSV_BLOCK_SIZE, 4 * longest), CSV_MAX_BLOCK_SIZE)
    read = pacsv.ReadOptions(block_size=max(len(head), 1), use_threads=False)
    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    try:
        # The whole sample in one block: types are inferred over every sampled row.
        return pacsv.read_csv(pa.BufferReader(head), read, _csv_parse_options(path), convert).schema, block_size
    except pa.ArrowInvalid:
        if not truncated:
            raise
    # The cut may have split a quoted multi-line field: let the stream reader infer from its first block.
    with fs.open_input_stream(path) as stream:
        reader = pacsv.open_csv(
            stream, read_options=pacsv.ReadOptions(block_size=block_size), parse_options=_csv_parse_options(path)
        )
        return reader.schema, block_size


def _parquet_schema(fs: pafs.FileSystem, path: str) -> pa.Schema:
    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f, pre_buffer=False).schema_arrow


def _local_files(uri: str, path: str) -> list[str]:
    if _has_magic(path):
        files = _glob_files(uri, path)
    elif os.path.isdir(path):
        # rglob does not enter symlinked folders, so a symlink loop cannot make it run forever.
        files = sorted(
            str(p)
            for p in Path(path).rglob("*")
            if p.is_file() and p.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)
        )
    elif os.path.isfile(path):
        files = [path]
    elif os.path.exists(path):
        raise SourceError(f"source is not a regular file: {uri}")
    else:
        raise SourceError(f"source not found: {uri}")
    if not files:
        raise SourceError(f"no file matches source {uri}")
    unreadable = [f for f in files if not os.access(f, os.R_OK)]
    if unreadable:
        raise SourceError(f"source file is not readable: {unreadable[0]}")
    return files


def _has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")  # what glob treats as a pattern


# Bounds of a glob walk: a pattern over a huge tree (or symlinks that multiply its paths without a loop)
# stops with an error within seconds instead of listing for hours.
MAX_GLOB_DIRS = int(os.environ.get("WAP_MAX_GLOB_DIRS", "50000"))
MAX_SOURCE_FILES = int(os.environ.get("WAP_MAX_SOURCE_FILES", "50000"))


def _glob_files(uri: str, pattern: str) -> list[str]:
    """The regular files matching `pattern`, as `glob.glob(pattern, recursive=True)` finds them, but bounded.

    Python's glob follows symlinked folders under `**` with no loop check: a link to a parent folder made
    `dir/**/*.csv` list an exponential number of paths (never returning). This walk follows symlinked
    folders too, but refuses a link that leads back to a folder it is inside, refuses a file reached twice
    (its rows would be imported twice), and stops past MAX_GLOB_DIRS folders or MAX_SOURCE_FILES files.
    Same matching as glob: `*`, `?` and `[...]` within one path part, `**` for any depth of folders,
    and wildcards skip names starting with "." unless the pattern part does too.
    """
    parts = list(Path(pattern).parts)
    start = next(i for i, part in enumerate(parts) if _has_magic(part))
    base = os.path.join(*parts[:start]) if start else ""
    found: dict[str, tuple[int, int]] = {}  # path -> (st_dev, st_ino)
    dirs_seen = 0

    def enter(path: str, ancestors: dict[tuple[int, int], str]) -> dict[tuple[int, int], str] | None:
        nonlocal dirs_seen
        try:
            st = os.stat(path or os.curdir)
        except OSError:
            return None  # unreadable or vanished: glob skips it too
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            raise SourceError(
                f"source {uri}: symlink loop at {path} (it leads back to {ancestors[key] or os.curdir}):"
                " remove the link or narrow the pattern"
            )
        dirs_seen += 1
        if dirs_seen > MAX_GLOB_DIRS:
            raise SourceError(
                f"source {uri} walks more than {MAX_GLOB_DIRS} folders (symlinks may repeat them): narrow the pattern"
            )
        return {**ancestors, key: path}

    def entries(path: str) -> list[os.DirEntry]:
        try:
            with os.scandir(path or os.curdir) as it:
                return list(it)
        except OSError:
            return []

    def is_dir(entry: os.DirEntry) -> bool:
        try:
            return entry.is_dir()  # follows symlinks, as glob does
        except OSError:
            return False

    def walk(path: str, rest: list[str], ancestors: dict[tuple[int, int], str]) -> None:
        head, tail = rest[0], rest[1:]
        if head == "**":
            if tail:
                walk(path, tail, ancestors)  # `**` matches no folder at all, too
            for entry in entries(path):
                if entry.name.startswith(".") or not is_dir(entry):
                    continue
                sub = os.path.join(path, entry.name)
                inner = enter(sub, ancestors)
                if inner is not None:
                    walk(sub, rest, inner)
            if not tail:
                add_files(path)
            return
        if _has_magic(head):
            hidden_ok = head.startswith(".")
            names = [e for e in entries(path) if (hidden_ok or not e.name.startswith(".")) and fnmatch(e.name, head)]
            candidates = [os.path.join(path, e.name) for e in names]
        else:
            candidates = [os.path.join(path, head)]
        for candidate in candidates:
            if tail:
                if os.path.isdir(candidate):
                    inner = enter(candidate, ancestors)
                    if inner is not None:
                        walk(candidate, tail, inner)
            elif os.path.isfile(candidate):
                add(candidate)

    def add_files(path: str) -> None:
        for entry in entries(path):
            if not entry.name.startswith("."):
                candidate = os.path.join(path, entry.name)
                if os.path.isfile(candidate):
                    add(candidate)

    def add(path: str) -> None:
        if path in found:
            return
        try:
            st = os.stat(path)
        except OSError:
            return
        found[path] = (st.st_dev, st.st_ino)
        if len(found) > MAX_SOURCE_FILES:
            raise SourceError(f"source {uri} matches more than {MAX_SOURCE_FILES} files: narrow the pattern")

    root = enter(base, {})
    if root is not None:
        walk(base, parts[start:], root)
    files = sorted(found)
    first: dict[tuple[int, int], str] = {}
    for path in files:
        other = first.setdefault(found[path], path)
        if other != path:
            raise SourceError(
                f"source {uri} matches the same file twice ({other} and {path}, through a symlink or hard link):"
                " its rows would be imported twice; narrow the pattern"
            )
    return files


def _download(uri: str, into: Path) -> str:
    name = Path(urllib.parse.urlparse(uri).path).name or "download"
    target = into / name
    request = urllib.request.Request(uri, headers={"User-Agent": "wap-gate"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)  # streamed to disk, never held in memory
    except urllib.error.HTTPError as exc:
        raise SourceError(f"cannot download source {uri}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(
            f"cannot download source {uri}: {_one_line(reason if isinstance(reason, BaseException) else exc)}"
        ) from exc
    return str(target)


def _s3_files(uri: str) -> tuple[pafs.FileSystem, list[str]]:
    parsed = urllib.parse.urlparse(uri)
    path = parsed.netloc + parsed.path
    try:
        fs = pafs.S3FileSystem(
            anonymous=not os.environ.get("AWS_ACCESS_KEY_ID"),
            region=os.environ.get("AWS_REGION", "us-east-1"),
            connect_timeout=HTTP_TIMEOUT_S,
            request_timeout=HTTP_TIMEOUT_S,
        )
        if any(ch in path for ch in "*?["):
            prefix = path.split("*")[0].rsplit("/", 1)[0]
            infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
            import fnmatch

            files = sorted(i.path for i in infos if i.is_file and fnmatch.fnmatch(i.path, path))
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise SourceError(f"source not found: {uri}")
            if info.type == pafs.FileType.Directory:
                infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
                files = sorted(i.path for i in infos if i.is_file)
            else:
                files = [path]
    except SourceError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"cannot reach source {uri}: {_one_line(exc)}") from exc
    if not files:
        raise SourceError(f"no file matches source {uri}")
    return fs, files


@contextmanager
def open_source(uri: str) -> Iterator[Source]:
    """Open `uri` as a streaming Source; downloads (https) live in a temporary folder until exit."""
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError("empty source")
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    with ExitStack() as cleanup:
        fs: pafs.FileSystem = pafs.LocalFileSystem()
        fmt = "csv"
        block_size = CSV_BLOCK_SIZE
        try:
            if scheme in ("http", "https"):
                # Only downloads need a folder (a killed process would leave an empty one behind for nothing).
                tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wap-source-"))
                files = [_download(uri, Path(tmp))]
                fmt = _format_of(urllib.parse.urlparse(uri).path, lambda _p: open(files[0], "rb"))
            elif scheme == "s3":
                fs, files = _s3_files(uri)
                fmt = _format_of_all(uri, files, fs.open_input_stream)
            elif scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
                path = urllib.parse.unquote(urllib.parse.urlparse(uri).path) if scheme == "file" else uri
                files = [os.path.abspath(f) for f in _local_files(uri, os.path.expanduser(path))]
                fmt = _format_of_all(uri, files, lambda p: open(p, "rb"))
            else:
                raise SourceError(
                    f"unsupported source scheme {scheme!r} in {uri} (use a path, file://, https:// or s3://)"
                )
            if fmt == "parquet":
                schema = _parquet_schema(fs, files[0])
            else:
                schema, block_size = _infer_csv(fs, files[0])
            _check_columns(uri, fmt, schema)
        except SourceError:
            raise
        except (pa.ArrowException, OSError) as exc:
            # Also a file that exists but cannot be read (an I/O error while sniffing its format).
            raise SourceError(f"cannot parse source {uri} as {fmt}: {_one_line(exc)}") from exc
        normalized = normalize_schema(schema, uri)
        _check_iceberg_schema(uri, normalized)
        yield Source(uri, fmt, files, fs, normalized, block_size)


def _check_columns(uri: str, fmt: str, schema: pa.Schema) -> None:
    """Refuse what no table can hold or the audit would misread: no columns, names that the SQL or GX
    layer would take one for another (see check_column_names), CSV text that is not UTF-8."""
    if not schema.names:
        raise SourceError(f"source has no columns: {uri}")
    check_column_names(schema.names, source=uri)
    if fmt == "csv":
        # pyarrow infers `binary` for a CSV column only when its bytes are not valid UTF-8.
        binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        if binary:
            raise SourceError(f"source {uri} is not UTF-8 text (column {binary[0]!r}): re-encode it as UTF-8")


def inspect_source(uri: str) -> pa.Schema:
    """Every check a source must pass before anything is written, and its normalized schema.

    Opens the source the way `create_table` / `import_data` will (same files, same checks) and reads only
    what schema inference needs (a Parquet footer, the head of the first CSV file); an https source is
    downloaded, as the import will download it again. Raises SourceError (exit 2) with a one-line reason:
    no file or a file loop, mixed CSV and Parquet, column names the audit would confuse, column types an
    Iceberg table cannot store.
    """
    with open_source(uri) as source:
        return source.schema


def read_source(uri: str) -> pa.Table:
    """The whole source as one Arrow table (for small files, e.g. `wap validate`)."""
    with open_source(uri) as source:
        return pa.Table.from_batches(list(source.batches()), schema=source.schema)
