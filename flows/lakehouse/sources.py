"""Data sources for `create_table` / `import_data`: CSV and Parquet from a path, glob, file://, https:// or s3://.

A source is opened as a pyarrow dataset, so its schema is inferred from the files and its rows are
streamed in batches (bounded memory), never read whole. Every failure becomes a SourceError that names
the source.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from .errors import SourceError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# Big enough that type inference sees many rows, small enough to keep memory bounded.
CSV_BLOCK_SIZE = 16 << 20
BATCH_ROWS = 256_000
HTTP_TIMEOUT_S = float(os.environ.get("WAP_HTTP_TIMEOUT", "30"))


@dataclass
class Source:
    uri: str
    dataset: ds.Dataset
    format: str  # "csv" or "parquet"

    @property
    def schema(self) -> pa.Schema:
        return normalize_schema(self.dataset.schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the rows with the normalized schema; parse errors become SourceError."""
        target = self.schema
        try:
            # Little read-ahead: memory stays near one batch per file, whatever the source size.
            for batch in self.dataset.to_batches(
                batch_size=BATCH_ROWS, batch_readahead=1, fragment_readahead=1
            ):
                yield batch.cast(target) if batch.schema != target else batch
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"cannot read source {self.uri}: {_one_line(exc)}") from exc


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


def _file_format(fmt: str) -> ds.FileFormat:
    if fmt == "parquet":
        return ds.ParquetFileFormat()
    return ds.CsvFileFormat(
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE),
        # Empty fields are missing values (as pandas and Bauplan read them), not empty strings.
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
    )


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
    with tempfile.TemporaryDirectory(prefix="wap-source-") as tmp:
        fs: pafs.FileSystem | None = None
        if scheme in ("http", "https"):
            files = [_download(uri, Path(tmp))]
            fmt = _format_of(urllib.parse.urlparse(uri).path, lambda _p: open(files[0], "rb"))
        elif scheme == "s3":
            fs, files = _s3_files(uri)
            fmt = _format_of(files[0], fs.open_input_stream)
        elif scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
            path = urllib.parse.unquote(urllib.parse.urlparse(uri).path) if scheme == "file" else uri
            files = _local_files(uri, os.path.expanduser(path))
            fmt = _format_of(files[0], lambda p: open(p, "rb"))
        else:
            raise SourceError(
                f"unsupported source scheme {scheme!r} in {uri} (use a path, file://, https:// or s3://)"
            )
        try:
            dataset = ds.dataset(files, format=_file_format(fmt), filesystem=fs)
            if not dataset.schema.names:
                raise SourceError(f"source has no columns: {uri}")
        except SourceError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"cannot parse source {uri} as {fmt}: {_one_line(exc)}") from exc
        yield Source(uri, dataset, fmt)


def read_source(uri: str) -> pa.Table:
    """The whole source as one Arrow table (for small files, e.g. `wap validate`)."""
    with open_source(uri) as source:
        return pa.Table.from_batches(list(source.batches()), schema=source.schema)
