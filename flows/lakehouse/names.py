"""Name validation shared by every backend.

Names become directory names, SQL identifiers and catalog keys, so they are checked against a strict
allow-list before anything is written: nothing escapes the warehouse, nothing reaches SQL unquoted.
"""

from __future__ import annotations

import getpass
import os
import re
from collections import Counter
from collections.abc import Sequence

from flows.shorten import shorten

from .errors import InvalidNameError, RefNotFoundError, SourceError

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
    return shorten(text, 80)


def validate_identifier(value: str, kind: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise InvalidNameError(
            f"invalid {kind} name {_shown(value)}: use letters, digits and '_', not starting with a digit,"
            " at most 128 characters"
        )
    return value


def validate_branch(value: str, kind: str = "branch") -> str:
    if not isinstance(value, str) or len(value) > MAX_BRANCH_LENGTH or not _BRANCH.fullmatch(value):
        raise InvalidNameError(
            f"invalid {kind} name {_shown(value)}: use letters, digits, '_', '-' and single dots"
            f" between parts, at most {MAX_BRANCH_LENGTH} characters"
        )
    return value


def validate_tag(value: str) -> str:
    """A tag's name: the rules of a branch's, since `--ref NAME` and `NAME@hash` read either."""
    return validate_branch(value, "tag")


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


def check_column_names(names: Sequence[str], *, source: str | None = None) -> None:
    """Refuse a source whose column names the gate's layers would read one for another; SourceError if so.

    Each rule is a confusion measured with the installed libraries (tests/test_source_checks.py repeats
    each experiment), so an audit can never check one column while the data of another is published:
    - empty names: pyiceberg cannot write them ("Can not validate empty avro name");
    - exact duplicates;
    - names equal under `str.casefold`: GX looks a column up by its casefolded name and takes the first
      match (`x`/`X`, and Unicode folds such as `straße`/`STRASSE` or `\ufb01`/`fi`), and DuckDB
      identifiers ignore ASCII case even when quoted;
    - `` `x` `` and `x`: GX also matches a requested name to a column named with that name in backticks;
    - names pyiceberg writes as the same Parquet column, up to case (`first name` is stored as
      `first_x20name`; `a b` as `a_x20b`, which DuckDB reads as `A_x20B`): the pushdown audit and any
      Parquet reader see one column where the table has two.
    Not rules, because no layer confuses them (measured): Unicode normalisation (NFC `\u00e9` vs NFD
    `e\u0301`, NFKC `\uff58` vs `x`) and leading/trailing spaces (pyarrow, pandas, DuckDB and GX keep them).
    """
    where = f"source {source} " if source else ""
    for position, name in enumerate(names, 1):
        if not isinstance(name, str) or not name:
            raise SourceError(f"{where}has an empty column name (column {position}): give every column a name")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise SourceError(f"{where}has duplicate column names: {', '.join(map(_shown, duplicates))}")
    folded: dict[str, str] = {}
    for name in names:
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            raise SourceError(
                f"{where}has columns {_shown(other)} and {_shown(name)}, which differ only in case: GX and DuckDB"
                " would audit one for the other; rename one of them"
            )
    for name in names:
        inner = name[1:-1] if len(name) >= 2 and name[0] == name[-1] == "`" else None
        if inner is not None and inner.casefold() in folded:
            raise SourceError(
                f"{where}has columns {_shown(folded[inner.casefold()])} and {_shown(name)}: GX matches a name to"
                " the same name in backticks and would audit one for the other; rename one of them"
            )
    # Imported here: pyiceberg's sanitiser is the one its writer uses, and `names` stays cheap to import.
    from pyiceberg.schema import make_compatible_name

    stored: dict[str, str] = {}
    for name in names:
        parquet_name = make_compatible_name(name)
        other = stored.setdefault(parquet_name.casefold(), name)
        if other != name:
            raise SourceError(
                f"{where}has columns {_shown(other)} and {_shown(name)}, which Iceberg stores as Parquet columns"
                f" {_shown(make_compatible_name(other))} and {_shown(parquet_name)}: Parquet readers (DuckDB)"
                " would take one for the other; rename one of them"
            )


def wap_user() -> str:
    """Who is running the gate here: `WAP_USER`, else the OS user."""
    return os.environ.get("WAP_USER") or getpass.getuser()


def local_username() -> str:
    """The user the embedded backend names branches for: `wap_user()` as a branch-name part."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", wap_user()) or "wap"
