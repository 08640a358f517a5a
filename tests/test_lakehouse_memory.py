"""Bounded memory of the embedded lakehouse at scale, checked at small sizes (no timed tests).

The 100M-row gate (tests/benchmarks/bench_100m.py) stays under 2 GB because an import holds a chunk or two at a
time, however many rows it writes, and every DuckDB connection the gate opens is bounded. These tests catch a
change that would make either grow with the table: chunks collected before the commit, a pyiceberg transaction
that keeps each appended chunk's buffers, an unbounded DuckDB.
"""

from __future__ import annotations

import re
import weakref
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.lakehouse import MAIN, local, sources
from flows.lakehouse.sql import BoundedDuckDB

CHUNK_ROWS = 2_000
CHUNKS = 20


def _source(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "x": pa.array(rng.random(rows)),
            "name": pa.array([f"name-{i:08d}" for i in range(rows)]),
        }
    )
    pq.write_table(table, path, row_group_size=rows // 4)
    return path


def test_an_import_holds_a_bounded_number_of_chunks_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = str(_source(tmp_path / "source.parquet", CHUNK_ROWS * CHUNKS))
    monkeypatch.setattr(local, "IMPORT_CHUNK_ROWS", CHUNK_ROWS)
    monkeypatch.setattr(sources, "BATCH_ROWS", CHUNK_ROWS // 4)
    client = local.LocalClient(tmp_path / "lake")
    client.create_branch("dev", MAIN)
    client.create_table("t", source, branch="dev")

    live: list[weakref.ref[pa.Table]] = []
    held: list[int] = []  # per chunk yielded: how many chunks (this one included) are still alive
    allocated: list[int] = []  # per chunk yielded: Arrow bytes allocated beyond what was before the import
    sizes: list[int] = []
    chunks = local._chunks

    def counting(source_: sources.Source, fit: local.BatchConverter):
        for chunk in chunks(source_, fit):
            live.append(weakref.ref(chunk))
            held.append(sum(ref() is not None for ref in live))
            allocated.append(pa.total_allocated_bytes() - before)
            sizes.append(chunk.nbytes)
            yield chunk
            del chunk

    monkeypatch.setattr(local, "_chunks", counting)
    before = pa.total_allocated_bytes()
    state = client.import_data("t", source, branch="dev")

    assert state.rows == CHUNK_ROWS * CHUNKS
    assert len(held) == CHUNKS
    assert client.get_table("t", "dev").records == CHUNK_ROWS * CHUNKS
    # The chunk being written and, at most, the one before it (still referenced while the next is read).
    assert max(held) <= 2, held
    # Flat: beyond the readers' fixed buffers (~1 MiB, allocated by the first chunk), Arrow's allocations grow by
    # at most two chunks' worth while the import runs; holding every chunk would add CHUNKS - 1 of them.
    assert max(allocated) - allocated[0] <= 2 * max(sizes), (allocated, sizes)


def _mib(setting: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)\s*(\w+)", setting.strip()).groups()  # e.g. "488.2 MiB"
    scale = {"KiB": 2**-10, "MiB": 1, "GiB": 2**10, "KB": 1e3 / 2**20, "MB": 1e6 / 2**20, "GB": 1e9 / 2**20}
    return float(number) * scale[unit]


def test_duckdb_connections_are_bounded_to_half_a_gigabyte_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAP_DUCKDB_MEMORY_LIMIT", raising=False)
    with BoundedDuckDB() as con:
        limit = _mib(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    # ~0.2 GB of DuckDB's resident memory runs above its limit, on top of the gate's own ~0.7 GB: with 1GB the
    # gate reached 1.72 GB auditing 30M rows (bench_100m.py), headed past 2 GB at 100M.
    assert limit <= 512, limit
    monkeypatch.setenv("WAP_DUCKDB_MEMORY_LIMIT", "1GB")
    with BoundedDuckDB() as con:
        assert _mib(con.execute("SELECT current_setting('memory_limit')").fetchone()[0]) > 512
