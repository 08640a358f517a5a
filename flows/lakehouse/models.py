"""Plain records returned by every backend (shaped after bauplan's models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Branch:
    name: str
    hash: str
    created_at: datetime | None = None  # when the backend records it (the embedded one does)


@dataclass(frozen=True)
class Tag:
    """A named, immutable pointer to one commit."""

    name: str
    hash: str
    created_at: datetime | None = None  # when the backend records it (the embedded one does; Bauplan's SDK does not)


@dataclass(frozen=True)
class Ref:
    """A ref as a commit names it: `bauplan.schema.Commit.ref` is the commit's own (detached) ref."""

    name: str
    hash: str


@dataclass(frozen=True)
class Commit:
    hash: str
    parent_hashes: list[str]
    message: str
    author: str
    authored_date: datetime
    properties: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the message's body, where the backend keeps one apart (Bauplan does)

    @property
    def ref(self) -> Ref:
        """The commit's own ref, as the SDK's `Commit.ref` (whose `.hash` is the commit's hash)."""
        return Ref(self.hash, self.hash)


@dataclass(frozen=True)
class TableField:
    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class TableInfo:
    name: str
    namespace: str
    fields: list[TableField]
    records: int | None
    metadata_location: str | None
    snapshot_id: int | None = None
    # Every snapshot in the table's history at that ref, oldest first (empty where the backend does not list them).
    snapshot_ids: tuple[int, ...] = ()

    @property
    def fqn(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class ImportState:
    """Outcome of a successful `import_data` (failures raise instead)."""

    job_status: str
    rows: int | None
    table: str
    branch: str
    job_id: str | None = None
    error: str | None = None  # as the SDK's TableDataImportState.error: None when the job succeeded


@dataclass(frozen=True)
class UserInfo:
    username: str  # Bauplan: the name every branch of this user must start with (`<username>.<name>`)
    full_name: str | None = None


@dataclass(frozen=True)
class InfoState:
    """Who this client acts as (`bauplan.Client.info()`'s shape: `.user.username`)."""

    user: UserInfo
    organization: str | None = None
