"""A revert's face in Prefect: the markdown report (artifact `<dataset>-revert`, or `<group>-revert`) and one
`wap.dataset.reverted` event per dataset reverted (resource `wap.dataset.<name>`, as the audit events)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.reports.prefect import artifact_key


@dataclass(frozen=True)
class RevertPlan:
    """What a revert changes (made by `flows.gate.revert.plan_revert`)."""

    name: str  # the dataset, or the group
    group: str | None
    datasets: tuple[str, ...]
    tables: tuple[str, ...]  # namespace.table of each dataset, in the same order
    main_head: str  # main's head when the plan was read: the revert branch starts here
    target: str  # the commit whose state of the tables comes back
    reverted: tuple[str, ...]  # the publishes whose state is replaced, newest first
    changes: tuple[tuple[str, str], ...]  # (table, "revert" or "drop") for each table that changes


@dataclass
class RevertOutcome:
    """What a revert did (filled in by `flows.gate.revert.apply_revert`)."""

    plan: RevertPlan
    reason: str
    by: str
    branch: str
    commit: str = ""  # main's new head
    rows_before: dict[str, int | None] = field(default_factory=dict)
    rows_after: dict[str, int | None] = field(default_factory=dict)


def _count(rows: int | None) -> str:
    return "no table" if rows is None else f"{rows} rows"


def render_revert_markdown(outcome: RevertOutcome) -> str:
    plan = outcome.plan
    what = f"group `{plan.group}` ({', '.join(plan.datasets)})" if plan.group else f"dataset `{plan.name}`"
    changed = dict(plan.changes)
    lines = [
        f"# REVERTED: {what}",
        "",
        f"- **to:** `{plan.target}` (the tables as they were at that commit of `main`)",
        f"- **undone:** {', '.join(f'`{h}`' for h in plan.reverted)}",
        f"- **by:** {outcome.by}",
        f"- **reason:** {outcome.reason}",
        f"- **new commit on main:** `{outcome.commit}` (history kept: the undone publishes stay readable by hash)",
        "",
        "| table | before | after | change |",
        "|---|---|---|---|",
    ]
    for table in plan.tables:
        change = {"revert": "restored", "drop": "dropped (it did not exist then)"}.get(changed.get(table, ""), "none")
        before, after = _count(outcome.rows_before.get(table)), _count(outcome.rows_after.get(table))
        lines.append(f"| `{table}` | {before} | {after} | {change} |")
    return "\n".join(lines) + "\n"


def publish_revert_report(outcome: RevertOutcome) -> None:
    create_markdown_artifact(
        key=artifact_key(outcome.plan.name, "revert"),
        markdown=render_revert_markdown(outcome),
        description=f"{outcome.plan.name}: reverted to {outcome.plan.target[:12]} ({outcome.reason})",
    )


def emit_revert_events(outcome: RevertOutcome) -> None:
    """`wap.dataset.reverted` for each dataset, so an automation on a dataset sees a group's revert too."""
    plan = outcome.plan
    for dataset, table in zip(plan.datasets, plan.tables, strict=True):
        emit_event(
            event="wap.dataset.reverted",
            resource={"prefect.resource.id": f"wap.dataset.{dataset}", "prefect.resource.name": dataset},
            payload={
                "dataset": dataset,
                "group": plan.group,
                "table": table,
                "to": plan.target,
                "reverted": list(plan.reverted),
                "commit": outcome.commit,
                "by": outcome.by,
                "reason": outcome.reason,
                "rows_before": outcome.rows_before.get(table),
                "rows_after": outcome.rows_after.get(table),
            },
        )
