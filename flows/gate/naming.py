"""Gate branch names: `<user>.wap_<dataset>_<id>` (Bauplan requires the username first)."""

from __future__ import annotations

import getpass
import os
import re
import uuid

from flows.lakehouse import MAIN, InvalidNameError
from flows.lakehouse.names import validate_branch

# What default_branch_name makes (and its staging branch, gate/staging.py), and all `wap gc` ever deletes.
GATE_BRANCH = re.compile(r"[A-Za-z0-9_-]+\.wap_[a-z][a-z0-9_]*_[0-9a-f]{8}(_batch)?")
STAGING_SUFFIX = "_batch"


def default_branch_name(dataset: str) -> str:
    """`<user>.wap_<dataset>_<short id>`: Bauplan requires branches to start with the username."""
    user = re.sub(r"[^A-Za-z0-9_-]", "_", os.environ.get("WAP_USER") or getpass.getuser()) or "wap"
    return f"{user}.wap_{dataset}_{uuid.uuid4().hex[:8]}"


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
