"""The audit: run a dataset's stored GX checkpoint on a table and flatten its result (row metrics from DuckDB
for large tables, `pushdown.py`). GX is imported inside the functions that need it."""

from flows.audit.checkpoint import (
    PUSHDOWN_MIN_ROWS,
    PUSHDOWN_MODES,
    SEVERITIES,
    AuditConfigError,
    AuditResult,
    ExpectationOutcome,
    audit_table,
    get_context,
    run_checkpoint,
    table_to_dataframe,
)
from flows.audit.gx_project import BATCH_PARAMETER

__all__ = [
    "BATCH_PARAMETER",
    "PUSHDOWN_MIN_ROWS",
    "PUSHDOWN_MODES",
    "SEVERITIES",
    "AuditConfigError",
    "AuditResult",
    "ExpectationOutcome",
    "audit_table",
    "get_context",
    "run_checkpoint",
    "table_to_dataframe",
]
