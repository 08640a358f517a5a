"""One Prefect deployment per declared dataset, for `wap serve` (run from the Prefect UI or on a schedule)."""

from __future__ import annotations

from typing import cast

from prefect.deployments.runner import RunnerDeployment

from flows.datasets import load_datasets
from flows.gate.flow import wap


def build_deployments(*, backend: str, lakehouse: str) -> list[RunnerDeployment]:
    # `to_deployment` is typed `RunnerDeployment | Coroutine` (Prefect's async_dispatch); called outside an
    # event loop, as `wap serve` does, it returns the deployment itself.
    return [
        cast(
            RunnerDeployment,
            wap.to_deployment(
                name=dataset.name,
                parameters={"dataset": dataset.name, "backend": backend, "lakehouse": lakehouse},
                cron=dataset.schedule,
                description=f"WAP gate for {dataset.fqn} from {dataset.source} (checkpoint {dataset.checkpoint})",
                tags=["wap", dataset.name],
            ),
        )
        for dataset in load_datasets().values()
    ]
