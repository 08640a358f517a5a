"""Data sources for `create_table` / `import_data`: CSV and Parquet from a path, glob, file://, https:// or s3://.

A source's schema is inferred from its first file, and its rows are streamed file by file in small
batches (bounded memory), never read whole. Every failure becomes a SourceError that names the source.

Why not `pyarrow.dataset`: its scanner reads far ahead of the consumer whatever `batch_readahead`
says, and its CSV discovery buffered dozens of 16 MiB blocks, so import memory grew with the file
(measured: +210 MiB for 2M rows, +430 MiB for 6M). The format readers used here (`pyarrow.csv.open_csv`
with small blocks, `ParquetFile.iter_batches` without pre-buffering) level off at ~230 MiB.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import SourceError

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
    return batch.cast(target)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Map Arrow types Iceberg cannot store to the nearest ones it can."""
    return pa.schema([pa.field(f.name, _iceberg_compatible(f.type), nullable=True) for f in schema])


def _iceberg_compatible(t: pa.DataType) -> pa.DataType:
    if pa.types.is_null(t):
        return pa.string()  # an all-empty CSV column: keep it, as text
    if pa.types.is_dictionary(t):
        return _iceberg_compatible(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_unsigned_integer(t) or t in (pa.int8(), pa.int16()):
        return pa.int64() if t in (pa.uint32(), pa.uint64()) else pa.int32()
    if pa.types.is_float16(t):
        return pa.float32()
    return t


def _format_of(path: str, opener) -> str:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    with opener(path) as f:  # no telling suffix: sniff Parquet's magic bytes
        return "parquet" if f.read(4) == b"PAR1" else "csv"


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
    if any(ch in path for ch in "*?["):
        files = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
    elif os.path.isdir(path):
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
                fmt = _format_of(files[0], fs.open_input_stream)
            elif scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
                path = urllib.parse.unquote(urllib.parse.urlparse(uri).path) if scheme == "file" else uri
                files = [os.path.abspath(f) for f in _local_files(uri, os.path.expanduser(path))]
                fmt = _format_of(files[0], lambda p: open(p, "rb"))
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
        yield Source(uri, fmt, files, fs, normalize_schema(schema), block_size)


def _check_columns(uri: str, fmt: str, schema: pa.Schema) -> None:
    """Refuse what no table can hold: no columns, the same name twice, CSV text that is not UTF-8."""
    if not schema.names:
        raise SourceError(f"source has no columns: {uri}")
    seen: set[str] = set()
    duplicates = sorted({name for name in schema.names if name in seen or seen.add(name)})
    if duplicates:
        raise SourceError(f"source {uri} has duplicate column names: {', '.join(map(repr, duplicates))}")
    if fmt == "csv":
        # pyarrow infers `binary` for a CSV column only when its bytes are not valid UTF-8.
        binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        if binary:
            raise SourceError(f"source {uri} is not UTF-8 text (column {binary[0]!r}): re-encode it as UTF-8")


def read_source(uri: str) -> pa.Table:
    """The whole source as one Arrow table (for small files, e.g. `wap validate`)."""
    with open_source(uri) as source:
        return pa.Table.from_batches(list(source.batches()), schema=source.schema)
