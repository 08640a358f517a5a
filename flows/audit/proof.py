"""What a published commit proves about its table, so that the next append's audit need not prove it again.

Uniqueness across a growing table is the one table rule whose cost would follow the table: grouping 100M ids
to find 1M new ones. When the gate publishes a table whose audit proved a column's non-null values distinct
(``expect_column_values_to_be_unique`` passed on the whole table, without ``mostly`` or a row condition), the
publish commit records it with the fingerprint of the table's data files (``TableProof.properties``). The
next append finds that commit by the fingerprint of main's files as it found them (``relied_proof``): Iceberg
data files are immutable and uniquely named, so the same fingerprint is the same rows. Its table audit then
checks that column as a semi-join, the batch's values against main's (``pushdown.ParquetTableMetrics``,
``distinct_in``), which gives GX exactly the result of grouping the whole table. Anything else (no such
commit, main's files changed by something other than a gate publish, a column not proven) groups the table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.lakehouse.protocol import LakehouseClient

FILES_PROPERTY = "wap.table_files"  # sha256 of the table's data file paths, as published
UNIQUE_PROPERTY = "gx.unique_columns"  # JSON list of the columns the audit proved distinct on that table
UNIQUE_EXPECTATION = "expect_column_values_to_be_unique"


def files_fingerprint(files: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()


@dataclass(frozen=True)
class TableProof:
    """What one audit proved about the whole table it validated."""

    files: str  # files_fingerprint of the table's data files
    unique_columns: tuple[str, ...]  # columns whose non-null values it proved distinct

    def properties(self) -> dict[str, str]:
        """The publish commit's record of it."""
        return {FILES_PROPERTY: self.files, UNIQUE_PROPERTY: json.dumps(list(self.unique_columns))}


@dataclass(frozen=True)
class ReliedProof:
    """A proof an audit relied on: the commit that published main's table, and the columns it proved distinct."""

    commit: str
    unique_columns: tuple[str, ...]


def proves_unique(expectation_type: str, kwargs: dict, success: bool) -> bool:
    """Whether this passing result proves the column's non-null values distinct over every row it saw."""
    mostly = kwargs.get("mostly")
    return (
        success
        and expectation_type == UNIQUE_EXPECTATION
        and mostly in (None, 1, 1.0)
        and not kwargs.get("row_condition")
    )


def relied_proof(client: LakehouseClient, published: str, files: list[str]) -> ReliedProof | None:
    """The proof recorded by the commit that published exactly ``files`` (main's table at ``published``), if any."""
    if not files:
        return None
    found = list(
        client.get_commits(published, filter_by_properties={FILES_PROPERTY: files_fingerprint(files)}, limit=1)
    )
    if not found:
        return None
    try:
        columns = json.loads(found[0].properties.get(UNIQUE_PROPERTY) or "[]")
    except ValueError:
        return None  # not written by the gate: rely on nothing
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or not columns:
        return None
    return ReliedProof(found[0].hash, tuple(columns))
