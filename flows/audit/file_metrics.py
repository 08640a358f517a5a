"""Row metrics of a source file for ``wap validate``: the SQL pushdown (``pushdown.SqlRowMetrics``) run by DuckDB
over the source's own Parquet files instead of a table's data files.

The pandas path validates ``table_to_dataframe(read_source(uri))``; here GX validates a zero-row frame of the
dtypes that conversion gives (from the source's normalized schema, ``Source.schema``, and the footers' null
counts) and DuckDB answers the row metrics, row positions numbered by ``file_row_number`` across the files in the
order ``read_source`` concatenates them. Only files DuckDB reads as the very values ``read_source`` gives are read
in place: local Parquet files, every one with the first file's columns in the same order and of the same types,
each type one the normalization keeps (or a string type it makes ``string``). Any other source (CSV, other
Parquet types, files that differ from each other, s3) raises ``PushdownError`` and is validated on pandas.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flows.audit.baseline import Baseline, _measure
from flows.audit.pushdown import (
    ParquetTableMetrics,
    PushdownError,
    SqlRowMetrics,
    _add_footer_null_counts,
    _literal,
    _quote,
)

if TYPE_CHECKING:
    from flows.lakehouse.sources import Source


def _read_as_is(raw: pa.DataType, normalized: pa.DataType) -> bool:
    """Whether DuckDB reads a Parquet column of Arrow type ``raw`` as the values ``read_source`` casts it to."""
    if raw == normalized:
        return True
    stringy = pa.types.is_large_string(raw) or pa.types.is_string_view(raw)
    if pa.types.is_dictionary(raw):
        stringy = pa.types.is_string(raw.value_type) or pa.types.is_large_string(raw.value_type)
    return stringy and pa.types.is_string(normalized)


class SourceFileMetrics(ParquetTableMetrics):
    """GX's row metrics of a local Parquet source (one file, a directory or a glob), answered by DuckDB.

    ``ParquetTableMetrics``' SQL over files (relation, row positions across files, connection) on plain files: only
    the construction differs, the columns matched by name (a plain file has no Iceberg field ids)."""

    row_metrics = "duckdb"
    fingerprint_marker = "source_files_fingerprint"

    def __init__(self, source: Source) -> None:
        import pyarrow.parquet as pq

        SqlRowMetrics.__init__(self, source.schema)  # not ParquetTableMetrics': it matches columns by field id
        if source.format != "parquet" or not isinstance(source.filesystem, pa.fs.LocalFileSystem):
            raise PushdownError(f"the pushdown reads local Parquet files; {source.uri} is {source.format}")
        self.files = list(source.files)
        self._offsets: list[int] = []
        rows = 0
        digest = hashlib.md5(usedforsecurity=False)
        nulls: dict[str, int] | None = dict.fromkeys(self.schema.names, 0)
        first: pa.Schema | None = None
        for path in self.files:
            meta = pq.read_metadata(path)
            raw = meta.schema.to_arrow_schema()
            if first is None:
                first = raw
                if raw.names != self.schema.names or not all(
                    _read_as_is(f.type, self.schema.field(i).type) for i, f in enumerate(raw)
                ):
                    raise PushdownError(f"{path}: a column's Parquet type is converted on reading")
            elif not raw.equals(first):
                raise PushdownError(f"{path}: its columns differ from {self.files[0]}'s")
            self._offsets.append(rows)
            rows += meta.num_rows
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{meta.num_rows}\0".encode())
            nulls = _add_footer_null_counts(nulls, meta, dict(zip(raw.names, raw.names, strict=True)))
        self.row_count = rows
        self.fingerprint = digest.hexdigest()
        self._null_counts = nulls  # None: counted by the first aggregate pass
        self._connection: Any = None
        self.distinct_in: dict[str, list[str]] = {}  # no proof of main's files applies to a source file
        self._stored_names = {n: n for n in self.schema.names}

    def measure(
        self, *, measured: str, wanted: set[str] | None, columns: list[str] | None = None, as_frame: bool = False
    ) -> Baseline:
        """The facts ``measure_frame`` gives of ``read_source``'s table (only ``columns``, if given), in one DuckDB
        pass over the files; ``as_frame``: of its pandas frame, as ``run_checkpoint`` measures a first run's, where
        an integer column with nulls is float64 (so its min and max are floats)."""
        names = columns if columns is not None else list(self.schema.names)
        nulls = self.null_counts()
        fields, selects = [], []
        for name in names:
            field = self.schema.field(name)
            if as_frame and pa.types.is_integer(field.type) and nulls[name]:
                field = field.with_type(pa.float64())
                selects.append(f"CAST({_quote(name)} AS DOUBLE) AS {_quote(name)}")
            else:
                selects.append(_quote(name))
            fields.append(field)
        files = ", ".join(_literal(f) for f in self.files)
        relation = f"(SELECT {', '.join(selects)} FROM read_parquet([{files}]))"

        def run(sql: str) -> pa.Table:
            relation = self._con().sql(sql)
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()

        # baseline's one SQL measurement (measure_table's and measure_frame's), over this relation.
        return _measure(pa.schema(fields), run, relation, measured, True, None, wanted)
