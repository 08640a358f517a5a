"""Type-checked, never run: both backends are `LakehouseClient`s, and the embedded one has its capabilities.

`tests/test_architecture.py` runs mypy on this file; a backend whose method names, parameters or return
types drift from the protocol makes an assignment below an error.
"""

from __future__ import annotations

from pathlib import Path

from flows.lakehouse import EvolvesTableSchema, LakehouseClient, ReadsTableFiles, StoredInDirectory, connect
from flows.lakehouse.bauplan_backend import BauplanClient
from flows.lakehouse.local import LocalClient


def embedded(path: Path) -> LakehouseClient:
    client: LakehouseClient = LocalClient(path)
    return client


def hosted() -> LakehouseClient:
    client: LakehouseClient = BauplanClient(client=object())
    return client


def embedded_reads_files(client: LocalClient) -> ReadsTableFiles:
    return client


def embedded_has_directory(client: LocalClient) -> StoredInDirectory:
    return client


def embedded_evolves_schemas(client: LocalClient) -> EvolvesTableSchema:
    return client


def connected() -> LakehouseClient:
    return connect("local", ".lakehouse")
