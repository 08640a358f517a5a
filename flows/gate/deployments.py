"""One Prefect deployment per declared dataset and per group, for `wap serve` (run from the Prefect UI or on a
schedule). A group's members are deployed with their group only: run alone, a member would publish apart from it.
A run's `on_success` / `on_failure` parameters override the declared ones (e.g. inspect from the UI's custom run);
`wap-publish/publish` publishes a branch such a run kept (its `branch` parameter given at run time)."""

from __future__ import annotations

from typing import cast

from prefect.deployments.runner import RunnerDeployment

from flows.datasets import DEFAULT_ON_FAILURE, DEFAULT_ON_SUCCESS, Dataset, Group, load_datasets, load_groups
from flows.gate.flow import wap
from flows.gate.group import wap_group
from flows.gate.inspection import wap_publish


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
                description=f"WAP gate for {dataset.fqn} from {dataset.source} (checkpoint {dataset.checkpoint}"
                f"{_options(dataset)})",
                tags=["wap", dataset.name],
            ),
        )
        for dataset in load_datasets().values()
        if dataset.name not in grouped
    ]
    group_runs = [
        cast(
            RunnerDeployment,
            wap_group.to_deployment(
                name=group.name,
                parameters={"group": group.name, "backend": backend, "lakehouse": lakehouse},
                cron=group.schedule,
                description=f"WAP gate for group {group.name}: {', '.join(group.members)} published in one commit"
                f" (cross-table checkpoint {group.checkpoint or 'none'}{_options(group)})",
                tags=["wap", "group", group.name],
            ),
        )
        for group in groups.values()
    ]
    publish = cast(
        RunnerDeployment,
        wap_publish.to_deployment(
            name="publish",
            parameters={"backend": backend, "lakehouse": lakehouse},
            description="Publish a branch a gate run kept for inspection (on_success inspect): its `branch`",
            tags=["wap", "publish"],
        ),
    )
    return [*datasets, *group_runs, publish]


def _options(declared: Dataset | Group) -> str:
    said = [
        f"{key} {value}"
        for key, value, default in (
            ("on_success", declared.on_success, DEFAULT_ON_SUCCESS),
            ("on_failure", declared.on_failure, DEFAULT_ON_FAILURE),
        )
        if value != default
    ]
    return "".join(f"; {s}" for s in said)
