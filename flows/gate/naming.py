"""Gate branch names: `<username>.wap_<dataset>_<created>_<id>`.

Bauplan lets a user create only branches that start with their Bauplan username, so the prefix is the
lakehouse's `info().user.username` (the embedded backend answers `WAP_USER` or the OS user). The creation time
(UTC, to the second) is in the name because Bauplan records none for a branch: `wap gc` reads a gate branch's
age from its name, never from its head commit (which, before the first write, is main's last commit, days old).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from flows.lakehouse import MAIN, InvalidNameError, LakehouseClient
from flows.lakehouse.names import validate_branch

# What default_branch_name makes (and its staging branch, gate/staging.py), and all `wap gc` ever deletes; names
# made before the creation time was added (`..._<8 hex>`) still match.
GATE_BRANCH = re.compile(r"[A-Za-z0-9_-]+\.wap_[a-z][a-z0-9_]*_[0-9a-f]{8}(_batch)?")
STAGING_SUFFIX = "_batch"
_CREATED = re.compile(r"_(\d{8}t\d{6}z)_[0-9a-f]{8}(?:_batch)?$")
_STAMP = "%Y%m%dt%H%M%Sz"


def default_branch_name(dataset: str, username: str, *, now: datetime | None = None) -> str:
    """`<username>.wap_<dataset>_<UTC creation time>_<short id>`; see the module docstring."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(_STAMP)
    return f"{username}.wap_{dataset}_{stamp}_{uuid.uuid4().hex[:8]}"


def gate_branch_name(client: LakehouseClient, dataset: str) -> str:
    """A new gate branch name for `dataset` on this lakehouse (its user's name first)."""
    return default_branch_name(dataset, client.info().user.username)


def branch_created_at(name: str) -> datetime | None:
    """When a gate branch was named (so created), from its name; None for a name without the time."""
    match = _CREATED.search(name) if is_gate_branch(name) else None
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def is_gate_branch(name: str) -> bool:
    return name != MAIN and GATE_BRANCH.fullmatch(name) is not None


def owning_gate_branch(name: str) -> str:
    """The gate branch a staging branch belongs to (itself for any other branch): its run holds the lease."""
    return name.removesuffix(STAGING_SUFFIX) if is_gate_branch(name) else name


def validate_gate_branch(branch: str) -> str:
    """A valid branch name that is not main: the gate only ever writes to its own branch."""
    if validate_branch(branch) == MAIN:
        raise InvalidNameError("the gate cannot write to main directly: give another --branch")
    return branch
