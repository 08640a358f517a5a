"""A group run's report: one verdict for every member, which member and which rule blocked it, and the
cross-table rules with their offending rows. Each member also gets its own report (`markdown.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from prefect.artifacts import create_markdown_artifact

from flows.reports.docs_site import docs_markdown
from flows.reports.markdown import (
    GateRun,
    _code,
    _count,
    _failure,
    _order,
    _prose,
    _result,
    _short,
    describe_expectation,
    failing_rows_lines,
    notes_prose,
    status,
)
from flows.reports.prefect import (
    artifact_key,
    history_verdict,
    name_this_run,
    record_run_history,
    said_in_brief,
    short_verdict,
)

if TYPE_CHECKING:
    from flows.audit import AuditResult


class GroupRun(Protocol):
    """What the report needs of a group run (`flows.gate.GroupOutcome` is one)."""

    group: str
    branch: str
    members: dict[str, Any]  # name -> GateRun
    checkpoint: str | None
    cross: AuditResult | None
    published_commit: str | None
    base: str | None

    @property
    def published(self) -> bool: ...


def _member_verdict(member: GateRun) -> str:
    audit = member.audit
    warned = f", {len(audit.warnings)} warning(s)" if audit is not None and audit.warnings else ""
    if member.published:
        return f"published{warned}"
    if audit is None:
        return "not audited"
    if not audit.success:
        return f"**blocked**: {audit.statistics['unsuccessful']} of {audit.statistics['evaluated']} failed"
    return f"passed ({audit.statistics['evaluated']} expectations{warned})"


def render_group_markdown(outcome: GroupRun, error: BaseException | None = None) -> str:
    """The group's verdict as markdown for the Prefect UI, in the layout of the single-dataset report."""
    members: dict[str, GateRun] = outcome.members
    blocked_by = [name for name, m in members.items() if m.audit is not None and not m.audit.success]
    cross = outcome.cross
    if cross is not None and not cross.success:
        blocked_by.append("the cross-table rules")
    inspect = getattr(outcome, "pending_key", None) is not None  # on_success inspect: passed, kept, not merged
    audits = [m.audit for m in members.values() if m.audit is not None] + ([cross] if cross is not None else [])
    warned = any(a.warnings for a in audits)
    if outcome.published:
        verdict = "PUBLISHED with warnings" if warned else "PUBLISHED"
        said = (
            "No critical rule of a member or of the cross-table rules failed"
            if warned
            else "Every member and the cross-table rules passed"
        )
        lead = (
            f"**{said}**: {len(members)} tables published to `main` in one commit, {_code(outcome.published_commit)}."
        )
    elif inspect:
        verdict = "PASSED — kept for inspection"
        lead = (
            f"**Every member and the cross-table rules passed**: kept on branch {_code(outcome.branch)} at commit"
            f" {_code(getattr(outcome, 'audited_commit', ''))} for inspection, not published; `main` is unchanged."
            f" Publish all {len(members)} tables in one commit with {_code(f'wap publish {outcome.branch}')}."
        )
    elif blocked_by:
        verdict = "BLOCKED by the audit"
        lead = f"**Blocked by {', '.join(blocked_by)}**: no member was published, `main` is unchanged."
        if getattr(error, "kept", None):  # on_failure inspect
            lead += (
                f"\n\n**The failed branch {_code(getattr(error, 'kept', ''))} is kept for inspection**:"
                f" {_code(getattr(error, 'kept_hint', ''))}"
            )
            lead += "\n".join(["", *failing_rows_lines(getattr(error, "failing_rows", ()))])
    else:
        verdict = "NOT PUBLISHED"
        lead = "Nothing was published, `main` is unchanged."
        if error is not None:
            lead += f"\n\n**Error**: {_prose(f'{type(error).__name__}: {error}', 300)}"
    lines = [f"# group {outcome.group}: {verdict}", "", lead, "", "## Members", ""]
    lines += ["| Member | Table | Mode | Rows | Audit |", "|---|---|---|---|---|"]
    for name, m in members.items():
        rows = f"{_count(m.added)} appended, {_count(m.rows)} in all" if m.mode == "append" else _count(m.rows)
        table = m.audit.checkpoint_name if m.audit is not None else ""
        lines.append(f"| {name} | {table} | {m.mode} | {rows} | {_member_verdict(m)} |")
    failed = [(name, e) for name, m in members.items() if m.audit is not None for e in m.audit.failed]
    failed += [("cross-table rules", e) for e in (cross.failed if cross is not None else [])]
    if failed:
        lines += ["", "## Failed expectations", ""]
        for who, e in sorted(failed, key=lambda pair: _order(pair[1])):
            sentence = _prose(describe_expectation(e), 300)
            sentence += "" if sentence.endswith((".", "…")) else "."
            found = _failure(e)
            found += "" if found.endswith((".", "…")) else "."
            where = f" on column {_code(e.column)}" if e.column else ""
            severity = "" if e.blocks else f"**{e.severity}** (not blocking): "
            lines.append(
                f"- **{who}**: {severity}**{sentence}** {found} ({_code(e.expectation_type)}{where};"
                f" suite {_code(e.suite)})"
            )
            if e.notes:
                lines.append(f"  - Why the rule exists: {notes_prose(e.notes)}")
    if cross is not None:
        lines += ["", "## Cross-table rules", "", "| Status | Rule | Result |", "|---|---|---|"]
        for e in sorted(cross.expectations, key=_order):
            shown = status(e) if e.success else f"**{status(e)}**"
            lines.append(f"| {shown} | {_short(describe_expectation(e))} | {_result(e)} |")
    facts = [
        ("Group", outcome.group),
        ("Members", ", ".join(members)),
        ("Branch", _code(outcome.branch)),
        ("Built on main at", _code(outcome.base) if outcome.base else ""),
        (
            "Published commit",
            _code(outcome.published_commit)
            if outcome.published
            else ("none yet: kept for inspection" if inspect else "blocked"),
        ),
        ("Cross-table checkpoint", outcome.checkpoint or "none"),
    ]
    if cross is not None:
        facts += [
            ("Cross-table validation run", _code(cross.run_id)),
            (
                "Data docs of the cross-table rules",
                docs_markdown(cross.data_docs_url) if cross.data_docs_url else "not built",
            ),
        ]
    lines += ["", "## Run", ""] + [f"- **{name}**: {value}" for name, value in facts if value]
    return "\n".join(lines) + "\n"


def publish_group_report(outcome: GroupRun, error: BaseException | None = None) -> None:
    """The group's markdown verdict, under ``<group>-validation``."""
    create_markdown_artifact(
        key=artifact_key(outcome.group, "validation"),
        markdown=render_group_markdown(outcome, error),
        description=f"group {outcome.group}: {said_in_brief(outcome)}",
    )
    name_this_run(f"wap-group-{outcome.group}", outcome.branch, short_verdict(outcome, error))
    members = list(outcome.members.values())
    rows = [m.rows for m in members if m.rows is not None]
    added = [m.added for m in members if m.added is not None]
    record_run_history(
        outcome.group,
        history_verdict(outcome, error),
        rows=sum(rows) if rows else None,
        added=sum(added) if added else None,
        audits=[m.audit for m in members] + [outcome.cross],
        published_commit=outcome.published_commit,
        branch=outcome.branch,
    )
