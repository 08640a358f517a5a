"""`wap revert`: put a dataset's table (or a group's tables) on main back to an earlier published state, as one new
commit on main. History is never rewritten: the publishes being undone stay in `wap log`, readable by hash.

    plan_revert      read main once (its head is pinned): which publish is undone, which state comes back
    apply_revert     a temporary branch from that head; `revert_table` per table (or `delete_table` where that
                     state had no table); one `merge_branch` into main carrying the `wap.revert.*` properties;
                     the branch deleted whatever happens
    wap_revert       the Prefect flow (`wap-revert`) around both: its event and report belong to a flow run

Atomicity is the merge's: every table changes in the one merge commit or none does. The branch starts at the
pinned head, so if main changed a reverted table after it was read, the merge conflicts: MainMovedError (exit 3),
main unchanged. A change to another table on main meanwhile merges cleanly (the revert never touches it).

A commit *published* dataset D when its properties say `wap.dataset == D` or list D in `wap.datasets` (a group
publish). A revert is not a publish (it records `wap.revert.*`, no `wap.dataset`), so `--to` names publishes
only: a state a revert made is the state of the publish it restored, which `--to` can name directly.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.datasets import Dataset, get_dataset
from flows.gate.guards import merge_recorded
from flows.gate.naming import gate_branch_name
from flows.gate.runtime import gate_settings, pause_point
from flows.lakehouse import (
    MAIN,
    BranchNotFoundError,
    Commit,
    ConcurrentUpdateError,
    LakehouseClient,
    LakehouseError,
    MergeConflictError,
    default_backend,
    default_lakehouse,
)
from flows.lakehouse.leases import hold_branch_lease
from flows.lakehouse.names import wap_user
from flows.reports.revert import RevertOutcome, RevertPlan, emit_revert_events, publish_revert_report

REVERT_STEP = "revert_merge"  # WAP_PAUSE_AT=revert_merge stops a revert just before its merge into main
PREFIX = "wap.revert."


class RevertRefusedError(ValueError):
    """A revert that cannot be done as asked (bad --to, nothing published, nothing to change): exit 2."""


class MainMovedError(ConcurrentUpdateError):
    """Main changed a reverted table between the revert reading it and merging: exit 3, main unchanged."""


def revert_user() -> str:
    """Who reverts: WAP_USER, else the OS user (as gate branch names are made)."""
    return wap_user()


def published(commit: Commit, dataset: str) -> bool:
    """Whether the commit published `dataset`, alone (`wap.dataset`) or in a group (`wap.datasets`)."""
    props = commit.properties
    return props.get("wap.dataset") == dataset or dataset in props.get("wap.datasets", "").split(",")


def _find_commit(history: list[Commit], wanted: str) -> Commit:
    """The commit of main's history `wanted` names (a full hash or a unique prefix); RevertRefusedError if none."""
    prefix = wanted.strip().lower()
    matches = [c for c in history if c.hash.startswith(prefix)] if prefix else []
    if len(matches) > 1:
        raise RevertRefusedError(f"--to {wanted}: the prefix names {len(matches)} commits on {MAIN}: give more digits")
    if not matches:
        raise RevertRefusedError(f"--to {wanted}: no commit on {MAIN} has that hash")
    return matches[0]


def _rows(client: LakehouseClient, table: str, ref: str) -> int | None:
    return client.get_table(table, ref).records if client.has_table(table, ref) else None


def _same_state(client: LakehouseClient, table: str, a: str, b: str) -> bool:
    """Whether the table is in one state at refs a and b (both absent, or the same Iceberg metadata and snapshot)."""
    has_a, has_b = client.has_table(table, a), client.has_table(table, b)
    if not (has_a and has_b):
        return has_a == has_b
    one, other = client.get_table(table, a), client.get_table(table, b)
    if one.metadata_location is None or other.metadata_location is None:  # a backend that does not say
        return False
    return (one.metadata_location, one.snapshot_id) == (other.metadata_location, other.snapshot_id)


def plan_revert(
    client: LakehouseClient, datasets: list[Dataset], *, to: str | None = None, group: str | None = None
) -> RevertPlan:
    """What reverting these datasets' tables on main means now; reads, writes nothing.

    Default target: main's state just before the newest commit on main that published any of them (its first
    parent). `to`: a commit on main that published one of them; their tables come back as they were there.
    """
    names = tuple(d.name for d in datasets)
    label = group or names[0]
    main_head = client.get_branch(MAIN).hash
    pinned = f"{MAIN}@{main_head}"
    history = list(client.get_commits(pinned))
    publishes = [c for c in history if any(published(c, n) for n in names)]
    what = f"group {group}" if group else f"dataset {label}"
    reverted: tuple[str, ...]
    if to is None:
        if not publishes:
            raise RevertRefusedError(f"nothing to revert: no commit on {MAIN} published {what}")
        last = publishes[0]
        if not last.parent_hashes:
            raise RevertRefusedError(f"commit {last.hash[:12]} has no parent: there is no earlier state")
        target, reverted = last.parent_hashes[0], (last.hash,)
    else:
        chosen = _find_commit(history, to)
        if chosen not in publishes:
            others = chosen.properties.get("wap.dataset") or chosen.properties.get("wap.datasets")
            kind = (
                f"a publish of {others}"
                if others
                else "a revert"
                if any(k.startswith(PREFIX) for k in chosen.properties)
                else "not a publish"
            )
            raise RevertRefusedError(
                f"--to {to}: commit {chosen.hash[:12]} did not publish {what} ({kind}): give a commit that did"
                f" (`wap log` lists them)"
            )
        target = chosen.hash
        reverted = tuple(c.hash for c in publishes[: publishes.index(chosen)])
    tables = tuple(d.fqn for d in datasets)
    source = f"{MAIN}@{target}"
    changes = tuple(
        (table, "revert" if client.has_table(table, source) else "drop")
        for table in tables
        if not _same_state(client, table, source, pinned)
    )
    if not changes:
        raise RevertRefusedError(
            f"nothing to revert: on {MAIN} the table(s) of {what} are already as they were at {target[:12]}"
        )
    return RevertPlan(label, group, names, tables, main_head, target, reverted or (main_head,), changes)


def revert_properties(plan: RevertPlan, *, reason: str, by: str, branch: str = "") -> dict[str, str]:
    """What the revert's merge commit records (a revert, never a publish: no `wap.dataset`); `branch` and the
    commit merged mark it, so a lost reply to the merge can be recovered (`guards.merge_recorded`)."""
    props = {
        f"{PREFIX}datasets": ",".join(plan.datasets),
        f"{PREFIX}tables": ",".join(plan.tables),
        f"{PREFIX}to": plan.target,
        f"{PREFIX}reverted": ",".join(plan.reverted),
        f"{PREFIX}by": by,
        f"{PREFIX}reason": reason,
    }
    if plan.group:
        props[f"{PREFIX}group"] = plan.group
    if branch:
        props[f"{PREFIX}branch"] = branch
    return props


def apply_revert(
    client: LakehouseClient, plan: RevertPlan, *, reason: str, by: str | None = None, branch: str | None = None
) -> RevertOutcome:
    """Carry out the plan as one merge commit on main; the temporary branch is deleted on success and failure."""
    by = by or revert_user()
    branch = branch or gate_branch_name(client, f"revert_{plan.name.lower()}")
    outcome = RevertOutcome(plan, reason, by, branch)
    pinned = f"{MAIN}@{plan.main_head}"
    outcome.rows_before = {t: _rows(client, t, pinned) for t in plan.tables}
    with hold_branch_lease(client, branch):  # `wap gc` keeps the branch of a live revert
        client.create_branch(branch, pinned)
        try:
            for table, change in plan.changes:
                if change == "drop":
                    client.delete_table(table, branch)
                else:
                    client.revert_table(
                        table,
                        source_ref=f"{MAIN}@{plan.target}",
                        into_branch=branch,
                        replace=client.has_table(table, branch),
                        commit_body=f"revert {table} to {plan.target[:12]}",
                    )
            pause_point(REVERT_STEP)
            try:
                outcome.commit = merge_recorded(
                    client,
                    f"{branch}@{client.get_branch(branch).hash}",
                    commit_message=f"wap: revert {plan.name} to {plan.target[:12]} ({reason})",
                    commit_properties=revert_properties(plan, reason=reason, by=by, branch=branch),
                    marker=(f"{PREFIX}branch",),
                )
            except MergeConflictError as exc:
                raise MainMovedError(
                    f"main moved under the revert: {', '.join(exc.tables) or 'a reverted table'} changed on {MAIN}"
                    f" after {plan.main_head[:12]} was read; nothing was reverted (run `wap revert` again)"
                ) from exc
        finally:
            _delete_branch(client, branch)
    outcome.rows_after = {t: _rows(client, t, f"{MAIN}@{outcome.commit}") for t in plan.tables}
    return outcome


def _delete_branch(client: LakehouseClient, branch: str) -> None:
    try:
        client.delete_branch(branch)
    except BranchNotFoundError:
        pass  # deleted meanwhile (`wap gc --force`): nothing left behind
    except LakehouseError as exc:  # the branch stays for `wap gc`; never hide the revert's own outcome
        print(f"could not delete branch {branch}: {exc}")


def members(name: str, *, group: bool) -> list[Dataset]:
    """The datasets a revert of `name` covers: the dataset itself, or every member of the group."""
    if not group:
        return [get_dataset(name)]
    from flows.datasets import get_group

    return [get_dataset(member) for member in get_group(name).members]


@flow(name="wap-revert", flow_run_name="wap-revert-{name}", log_prints=True)
def wap_revert(
    name: str,
    reason: str,
    group: bool = False,
    to: str | None = None,
    backend: str | None = None,
    lakehouse: str | None = None,
) -> RevertOutcome:
    """Revert a dataset's table (or a group's tables) on main; see the module docstring."""
    from flows.lakehouse import connect

    client = connect(backend or default_backend(), lakehouse or default_lakehouse())
    plan = plan_revert(client, members(name, group=group), to=to, group=name if group else None)
    outcome = apply_revert(client, plan, reason=reason)
    publish_revert_report(outcome)
    emit_revert_events(outcome)
    print(f"reverted {plan.name} to {plan.target[:12]}: commit {outcome.commit}")
    return outcome


def run_revert(name: str, reason: str, **options: Any) -> RevertOutcome:
    """Run the `wap-revert` flow in this process with the gate's Prefect settings (no heartbeats); `options` are
    the flow's own (group, to, backend, lakehouse). A missing reason or an unknown dataset or group is refused
    (exit 2) before a flow run exists."""
    reason = " ".join(reason.split())
    if not reason:
        raise RevertRefusedError("--reason must say why (it is recorded on the revert commit)")
    members(name, group=bool(options.get("group")))
    with gate_settings():
        return wap_revert(name, reason, **options)
