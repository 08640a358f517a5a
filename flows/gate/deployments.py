"""One Prefect deployment per declared dataset and per group, for `wap serve` (run from the Prefect UI or on a
schedule). A group's members are deployed with their group only: run alone, a member would publish apart from it."""

from __future__ import annotations

from typing import cast

from prefect.deployments.runner import RunnerDeployment

from flows.datasets import load_datasets, load_groups
from flows.gate.flow import wap
from flows.gate.group import wap_group


def build_deployments(*, backend: str, lakehouse: str) -> list[RunnerDeployment]:
    # `to_deployment` is typed `RunnerDeployment | Coroutine` (Prefect's async_dispatch); called outside an
    # event loop, as `wap serve` does, it returns the deployment itself.
    groups = load_groups()
    grouped = {m for g in groups.values() for m in g.members}
    datasets = [
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
        if dataset.name not in grouped
    ]
    return datasets + [
        cast(
            RunnerDeployment,
            wap_group.to_deployment(
                name=group.name,
                parameters={"group": group.name, "backend": backend, "lakehouse": lakehouse},
                cron=group.schedule,
                description=f"WAP gate for group {group.name}: {', '.join(group.members)} published in one commit"
                f" (cross-table checkpoint {group.checkpoint or 'none'})",
                tags=["wap", "group", group.name],
            ),
        )
        for group in groups.values()
    ]
