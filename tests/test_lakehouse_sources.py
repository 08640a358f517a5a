"""Sources of `create_table` / `import_data`: formats, locations, inferred schemas, failures, memory."""

from __future__ import annotations

import functools
import gzip
import json
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from lakehouse_worker import worker_env, write_csv

from flows.lakehouse import MAIN, SourceError, TableNotFoundError, local, sources
from flows.lakehouse.local import LocalClient

WORKER = Path(__file__).with_name("lakehouse_worker.py")
EXPECTED_TYPES = {"id": "long", "x": "double", "name": "string", "tag": "long"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of sources; every source holds ids 0..n-1 in the four columns of write_csv."""
    root = tmp_path_factory.mktemp("sources")
    write_csv(root / "one.csv", 6)
    for i in range(3):
        write_csv(root / "parts" / f"part{i}.csv", 4, start=4 * i)
    pq.write_table(pacsv.read_csv(root / "one.csv"), root / "one.parquet")
    (root / "pq_dir").mkdir()
    for i in range(2):
        pq.write_table(pacsv.read_csv(root / "parts" / f"part{i}.csv"), root / "pq_dir" / f"p{i}.parquet")
    (root / "one.csv.gz").write_bytes(gzip.compress((root / "one.csv").read_bytes()))
    (root / "one.tsv").write_text((root / "one.csv").read_text().replace(",", "\t"))
    shutil.copy(root / "one.parquet", root / "no_suffix_parquet")
    shutil.copy(root / "one.csv", root / "no_suffix_csv")
    (root / "empty_dir").mkdir()
    return root


@pytest.fixture(scope="module")
def http_base(files: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `files`."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(files)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def head(client: LocalClient) -> str:
    return client.get_branch(MAIN).hash


def import_new(client: LocalClient, uri: str, table: str = "t") -> int:
    client.create_table(table, uri, branch=MAIN)
    state = client.import_data(table, uri, branch=MAIN)
    assert state.job_status == "SUCCESS"
    return state.rows


def assert_table(client: LocalClient, rows: int, table: str = "t") -> None:
    info = client.get_table(table, MAIN)
    assert {f.name: f.type for f in info.fields} == EXPECTED_TYPES
    scanned = client.scan(table, ref=MAIN).sort_by("id")
    assert info.records == scanned.num_rows == rows
    assert scanned.column("id").to_pylist() == list(range(rows))
    assert scanned.column("name").to_pylist() == [f"n{i}" for i in range(rows)]


# ------------------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize(
    ("relative", "rows"),
    [
        ("one.csv", 6),
        ("one.parquet", 6),
        ("one.csv.gz", 6),
        ("one.tsv", 6),
        ("no_suffix_csv", 6),
        ("no_suffix_parquet", 6),
        ("parts", 12),  # a directory
        ("parts/*.csv", 12),  # a glob
        ("pq_dir", 8),
    ],
)
def test_local_sources_import_with_inferred_types(lakehouse: LocalClient, files: Path, relative: str, rows) -> None:
    assert import_new(lakehouse, str(files / relative)) == rows
    assert_table(lakehouse, rows)


def test_file_uri(lakehouse: LocalClient, files: Path) -> None:
    assert import_new(lakehouse, (files / "one.csv").as_uri()) == 6
    assert_table(lakehouse, 6)


@pytest.mark.parametrize("relative", ["one.csv", "one.parquet", "no_suffix_parquet"])
def test_http_source(lakehouse: LocalClient, http_base: str, relative: str) -> None:
    # http:// and https:// share the download path; a local server needs no certificate.
    assert import_new(lakehouse, f"{http_base}/{relative}") == 6
    assert_table(lakehouse, 6)


def test_types_beyond_the_basics(lakehouse: LocalClient, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text(
        "flag,day,at,empty,n\ntrue,2024-01-02,2024-01-02 03:04:05,,1\nfalse,2024-02-03,2024-02-03 04:05:06,,\n"
    )
    import_new(lakehouse, str(path))
    types = {f.name: f.type for f in lakehouse.get_table("t", MAIN).fields}
    assert types == {"flag": "boolean", "day": "date", "at": "timestamp", "empty": "string", "n": "long"}
    assert lakehouse.scan("t", ref=MAIN).column("n").null_count == 1  # an empty field is missing


def test_types_are_inferred_beyond_the_first_rows(lakehouse: LocalClient, tmp_path: Path) -> None:
    # The first 50k values look like integers; a float comes later but within the inference sample.
    path = tmp_path / "late_float.csv"
    path.write_text("v\n" + "".join(f"{i}\n" for i in range(50_000)) + "1.5\n")
    import_new(lakehouse, str(path))
    assert lakehouse.get_table("t", MAIN).fields[0].type == "double"


def test_long_rows_are_read(lakehouse: LocalClient, tmp_path: Path) -> None:
    # Rows longer than the reader's default block must still parse.
    path = tmp_path / "wide.csv"
    path.write_text("id,blob\n" + "".join(f"{i},{'x' * 3_000_000}\n" for i in range(3)))
    assert import_new(lakehouse, str(path)) == 3


# ------------------------------------------------------------------------------------------------ failures
def _garbage(path: Path) -> Path:
    rng = random.Random(7)
    path.write_bytes(b"a,b\n" + bytes(rng.randrange(256) for _ in range(20_000)))
    return path


def _ragged(path: Path) -> Path:
    path.write_text("id,x\n1,2\n3\n")
    return path


def _ragged_late(path: Path) -> Path:
    # The bad row is past the inference sample and the first import chunk: it surfaces mid-stream.
    with path.open("w") as out:
        out.write("id,x,name\n")
        out.writelines(f"{i},{i}.5,s{i}\n" for i in range(1_200_000))
        out.write("1,2\n")
    return path


def _bad_value_late(path: Path) -> Path:
    with path.open("w") as out:
        out.write("id,x,name\n")
        out.writelines(f"{i},{i}.5,s{i}\n" for i in range(1_200_000))
        out.write("oops,1.0,s\n")
    return path


def _not_parquet(path: Path) -> Path:
    path.write_bytes(b"PAR1" + bytes(random.Random(3).randrange(256) for _ in range(5_000)))
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


BAD_FILES = {
    "garbage.csv": _garbage,
    "ragged.csv": _ragged,
    "ragged_late.csv": _ragged_late,
    "bad_value_late.csv": _bad_value_late,
    "broken.parquet": _not_parquet,
    "empty.csv": _empty,
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    return {name: make(root / name) for name, make in BAD_FILES.items()}


@pytest.fixture
def table_t(lakehouse: LocalClient, tmp_path: Path) -> LocalClient:
    """main holds bauplan.t (id, x, name), 2 rows."""
    source = tmp_path / "base.csv"
    source.write_text("id,x,name\n1,1.5,a\n2,2.5,b\n")
    import_new(lakehouse, str(source))
    return lakehouse


@pytest.mark.parametrize("name", BAD_FILES)
def test_unparseable_files_are_source_errors_and_leave_no_commit(table_t: LocalClient, bad_files, name) -> None:
    before = head(table_t)
    uri = str(bad_files[name])
    with pytest.raises(SourceError, match=re.escape(uri)):
        table_t.import_data("t", uri, branch=MAIN)
    assert head(table_t) == before
    assert table_t.scan("t", ref=MAIN).num_rows == 2


@pytest.mark.parametrize("name", BAD_FILES)
def test_unparseable_files_fail_create_table_or_its_first_import(table_t: LocalClient, bad_files, name) -> None:
    # create_table reads only the head of the file: defects further down are found by the import.
    uri = str(bad_files[name])
    try:
        table_t.create_table("fresh", uri, branch=MAIN)
    except SourceError:
        assert not table_t.has_table("fresh", MAIN)
        return
    assert name.endswith("_late.csv")
    created = head(table_t)
    with pytest.raises(SourceError, match=re.escape(uri)):
        table_t.import_data("fresh", uri, branch=MAIN)
    assert head(table_t) == created
    assert table_t.get_table("fresh", MAIN).records == 0


@pytest.mark.parametrize(
    "uri",
    [
        "{tmp}/missing.csv",
        "{tmp}/nothing_*.csv",
        "{tmp}/empty_dir",
        "file://{tmp}/missing.parquet",
        "ftp://example.com/data.csv",
        "gs://bucket/data.csv",
        "{http}/missing.csv",
        "",
    ],
)
def test_missing_or_unsupported_sources_are_source_errors(table_t: LocalClient, files: Path, http_base, uri) -> None:
    uri = uri.format(tmp=files, http=http_base)
    (files / "empty_dir").mkdir(exist_ok=True)
    before = head(table_t)
    with pytest.raises(SourceError, match=re.escape(uri.split("://")[-1]) if uri else "empty"):
        table_t.import_data("t", uri, branch=MAIN)
    with pytest.raises(SourceError):
        table_t.create_table("fresh", uri, branch=MAIN)
    assert head(table_t) == before
    assert not table_t.has_table("fresh", MAIN)


def test_a_bad_file_among_good_ones_is_named_and_nothing_lands(table_t: LocalClient, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x,name\n1,1.5,a\n")
    (folder / "b.csv").write_text("id,x,name\n2,2.5,b\n3\n")  # ragged, in the second file
    before = head(table_t)
    with pytest.raises(SourceError, match=re.escape(str(folder / "b.csv"))):
        table_t.import_data("t", str(folder), branch=MAIN)
    assert head(table_t) == before and table_t.scan("t", ref=MAIN).num_rows == 2


def test_files_of_one_source_with_different_columns_are_refused(table_t: LocalClient, tmp_path: Path) -> None:
    folder = tmp_path / "drift"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x,name\n1,1.5,a\n")
    (folder / "b.csv").write_text("id,x,label\n2,2.5,b\n")
    before = head(table_t)
    with pytest.raises(SourceError, match="b.csv has columns id, x, label"):
        table_t.import_data("t", str(folder / "*.csv"), branch=MAIN)
    assert head(table_t) == before


def test_http_404_names_the_status(table_t: LocalClient, http_base: str) -> None:
    with pytest.raises(SourceError, match="404"):
        table_t.import_data("t", f"{http_base}/nope.csv", branch=MAIN)


def test_source_with_other_columns_is_refused_without_commit(table_t: LocalClient, files: Path) -> None:
    before = head(table_t)
    with pytest.raises(SourceError, match="unexpected columns tag"):
        table_t.import_data("t", str(files / "one.csv"), branch=MAIN)
    assert head(table_t) == before


def test_source_with_incompatible_types_is_refused_without_commit(table_t: LocalClient, tmp_path: Path) -> None:
    source = tmp_path / "strings.csv"
    source.write_text("id,x,name\nabc,def,g\n")
    before = head(table_t)
    with pytest.raises(SourceError, match=re.escape(str(source))):
        table_t.import_data("t", str(source), branch=MAIN)
    assert head(table_t) == before


def test_import_into_missing_table_reads_nothing(lakehouse: LocalClient, files: Path) -> None:
    with pytest.raises(TableNotFoundError):
        lakehouse.import_data("nope", str(files / "one.csv"), branch=MAIN)


def test_unreachable_s3_bucket_fails_fast(table_t: LocalClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "HTTP_TIMEOUT_S", 5.0)
    before = head(table_t)
    uri = "s3://wap-test-no-such-bucket-7f3a9c/data.csv"
    started = time.monotonic()
    with pytest.raises(SourceError, match="wap-test-no-such-bucket-7f3a9c"):
        table_t.import_data("t", uri, branch=MAIN)
    assert time.monotonic() - started < 30
    assert head(table_t) == before


def test_s3_endpoint_refusing_connections_fails_fast(table_t: LocalClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real S3 client against a local port nobody listens on: independent of DNS and network.
    real = pafs.S3FileSystem
    monkeypatch.setattr(sources, "HTTP_TIMEOUT_S", 5.0)
    monkeypatch.setattr(pafs, "S3FileSystem", lambda **kw: real(**kw, endpoint_override="127.0.0.1:9", scheme="http"))
    before = head(table_t)
    started = time.monotonic()
    with pytest.raises(SourceError, match=re.escape("s3://bucket/data.csv")):
        table_t.import_data("t", "s3://bucket/data.csv", branch=MAIN)
    assert time.monotonic() - started < 30
    assert head(table_t) == before


# ------------------------------------------------------------------------------------ chunked transactions
def test_an_import_of_many_chunks_is_one_commit(lakehouse: LocalClient, files: Path, monkeypatch) -> None:
    # A real pyiceberg transaction with several appends (the production chunk is 1M rows).
    monkeypatch.setattr(local, "IMPORT_CHUNK_ROWS", 2)
    lakehouse.create_table("t", str(files / "parts"), branch=MAIN)
    before = head(lakehouse)

    assert lakehouse.import_data("t", str(files / "parts"), branch=MAIN).rows == 12

    commits = lakehouse.get_commits(MAIN)
    assert commits[1].hash == before  # exactly one new commit
    assert_table(lakehouse, 12)
    assert len(lakehouse.data_files("t", ref=MAIN)[1]) >= 3


def test_parse_error_after_chunks_were_written_leaves_no_commit(lakehouse: LocalClient, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(local, "IMPORT_CHUNK_ROWS", 1_000)
    good = write_csv(tmp_path / "good.csv", 10)
    lakehouse.create_table("t", str(good), branch=MAIN)
    lakehouse.import_data("t", str(good), branch=MAIN)
    source = tmp_path / "late.csv"
    # Past the 16 MiB inference sample, so that the error surfaces while streaming.
    with source.open("w") as out:
        out.write(good.read_text())
        out.writelines(f"{i},{i}.5,n{i},0\n" for i in range(10, 800_000))
        out.write("1,2\n")
    before = head(lakehouse)
    data_dir_files = len(list(lakehouse.warehouse.rglob("*.parquet")))

    with pytest.raises(SourceError, match=re.escape(str(source))):
        lakehouse.import_data("t", str(source), branch=MAIN)

    # The failed import's chunks were deleted, and nothing was committed.
    assert len(list(lakehouse.warehouse.rglob("*.parquet"))) == data_dir_files
    assert head(lakehouse) == before
    assert_table(lakehouse, 10)


# -------------------------------------------------------------------------------------------------- memory
def _big_csv(path: Path, rows: int) -> Path:
    ids = np.arange(rows, dtype=np.int64)
    table = pa.table(
        {
            "id": ids,
            "x": ids * 0.5,
            "name": pa.array(np.char.add("name_", (ids % 100_000).astype(str))),
            "tag": ids % 7,
        }
    )
    pacsv.write_csv(table, path)
    return path


def _import_in_child(lakehouse: Path, source: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(WORKER), "rss-import", str(lakehouse), "t", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=worker_env(),
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_large_csv_imports_in_bounded_memory(tmp_path: Path) -> None:
    # Peak RSS above a warmed-up baseline, for 2M and 6M rows. Both exceed the import chunk (1M rows),
    # so both pay for its buffer; what must not grow is the rest. Through pyarrow.dataset (which
    # buffered most of the file) 6M rows took ~2.2x the memory of 2M; now ~1.3x (a ~230 MiB plateau).
    small, big = 2_000_000, 6_000_000
    results = {}
    for rows in (small, big):
        source = _big_csv(tmp_path / f"rows{rows}.csv", rows)
        results[rows] = _import_in_child(tmp_path / f"lh{rows}", source)
        source.unlink()
        assert results[rows]["rows"] == results[rows]["records"] == rows
        assert results[rows]["import_commits"] == 1
    growth = {rows: (r["peak_kb"] - r["baseline_kb"]) / 1024 for rows, r in results.items()}
    ratio = growth[big] / growth[small]
    assert ratio < 1.6, f"peak RSS above baseline: {growth} MiB (x{ratio:.2f} for x3 rows)"
