"""The audit: run a dataset's stored GX checkpoint on a table and flatten its result (row metrics from DuckDB
for large tables, `pushdown.py`). GX is imported inside the functions that need it."""

from flows.audit.checkpoint import (
    BATCH_PARAMETER,
    PUSHDOWN_MIN_ROWS,
    PUSHDOWN_MODES,
    REPO_GX_DIR,
    AuditConfigError,
    AuditResult,
    ExpectationOutcome,
    audit_table,
    describe_failures,
    get_context,
    run_checkpoint,
    summarize_failures,
    table_to_dataframe,
)

__all__ = [
    "BATCH_PARAMETER",
    "PUSHDOWN_MIN_ROWS",
    "PUSHDOWN_MODES",
    "REPO_GX_DIR",
    "AuditConfigError",
    "AuditResult",
    "ExpectationOutcome",
    "audit_table",
    "describe_failures",
    "get_context",
    "run_checkpoint",
    "summarize_failures",
    "table_to_dataframe",
]
