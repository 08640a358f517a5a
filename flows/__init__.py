"""Write-Audit-Publish data-quality gate: Prefect 3 + Great Expectations + branching Iceberg lakehouse."""

import os

# Both phone home by default; this machine (and many CI runners) have no internet.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
