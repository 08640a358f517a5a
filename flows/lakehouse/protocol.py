"""The lakehouse contract as types: what callers (the gate, the audit, the CLI) may rely on.

`ReadsTableFiles` is an optional capability, its own protocol rather than a `hasattr` probe: a backend
that can hand out the Parquet files of a table (the embedded one) lets the audit and `query` read them
with DuckDB directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from .models import TableInfo


@runtime_checkable
class ReadsTableFiles(Protocol):
    def get_tables(self, ref: str, *, namespace: str | None = None) -> list[TableInfo]: ...

    def data_files(self, table: str, *, ref: str, namespace: str | None = None) -> tuple[pa.Schema, list[str]]:
        """The table's Arrow schema and the Parquet files holding its rows on `ref`."""
        ...
