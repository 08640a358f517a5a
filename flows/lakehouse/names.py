"""Name validation shared by every backend.

Names become directory names, SQL identifiers and catalog keys, so they are checked against a strict
allow-list before anything is written: nothing escapes the warehouse, nothing reaches SQL unquoted.
"""

from __future__ import annotations

import re

from .errors import InvalidNameError, RefNotFoundError

DEFAULT_NAMESPACE = "bauplan"
MAIN = "main"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Bauplan branches look like "user.feature_x": dot-separated identifier-like parts.
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*")
_HASH = re.compile(r"[0-9a-f]{8,64}")
MAX_BRANCH_LENGTH = 200


class InvalidRefError(RefNotFoundError, InvalidNameError):
    """`branch@hash` whose hash part is not a commit hash: no such ref can exist.

    Both a RefNotFoundError (a bad hash is an unknown ref, as callers resolving refs expect) and an
    InvalidNameError (it is rejected by validation, before any lookup).
    """

    def __init__(self, ref: str, detail: str) -> None:
        super().__init__(ref)
        self.detail = detail
        self.args = (f"invalid ref {detail}: expected branch@<hex commit hash>",)

    def __reduce__(self) -> tuple:  # picklable (e.g. raised in a worker process)
        return (type(self), (self.ref, self.detail))


def _shown(value: object) -> str:
    # repr() makes control characters and quotes visible in the one-line error.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_identifier(value: str, kind: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise InvalidNameError(
            f"invalid {kind} name {_shown(value)}: use letters, digits and '_', not starting with a digit,"
            " at most 128 characters"
        )
    return value


def validate_branch(value: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_BRANCH_LENGTH or not _BRANCH.fullmatch(value):
        raise InvalidNameError(
            f"invalid branch name {_shown(value)}: use letters, digits, '_', '-' and single dots"
            f" between parts, at most {MAX_BRANCH_LENGTH} characters"
        )
    return value


def split_ref(ref: str) -> tuple[str, str | None]:
    """`branch` or `branch@hash` -> (branch, hash or None), validated."""
    if not isinstance(ref, str):
        raise InvalidNameError(f"invalid ref {_shown(ref)}")
    branch, sep, commit = ref.partition("@")
    validate_branch(branch)
    if sep:
        commit = commit.lower()  # hashes are stored in lower case
        if not _HASH.fullmatch(commit):
            raise InvalidRefError(ref, _shown(ref))
        return branch, commit
    return branch, None


def resolve_table_name(table: str, namespace: str | None) -> tuple[str, str]:
    """Accept `table` with `namespace=`, or a qualified `namespace.table`; return (namespace, table)."""
    if isinstance(table, str) and "." in table:
        ns, _, name = table.partition(".")
        if namespace is not None and namespace != ns:
            raise InvalidNameError(f"table {_shown(table)} is qualified with a namespace other than {namespace!r}")
        namespace, table = ns, name
    return (
        # Only None means the default: an explicit "" (or ".table") is an invalid name, not a fallback.
        validate_identifier(DEFAULT_NAMESPACE if namespace is None else namespace, "namespace"),
        validate_identifier(table, "table"),
    )
