"""Write-Audit-Publish data-quality gate: Prefect 3 + Great Expectations + branching Iceberg lakehouse."""

import os

# Both phone home by default; this machine (and many CI runners) have no internet.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Prefect's default 20 s wait for its temporary server is too short on a loaded 2-core
# runner (seen in CI: "Timed out while attempting to connect to ephemeral Prefect API server").
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
