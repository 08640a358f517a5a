"""Write-Audit-Publish data-quality gate: Prefect 3 + Great Expectations + branching Iceberg lakehouse."""
