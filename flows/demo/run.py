"""`wap demo`: the whole gate offline, on generated titanic-shaped data: a full snapshot published, a corrupted
one blocked; then two batches appended to the published table: new passengers published, a batch whose ids
collide with ids already on main blocked. Then the `shop` group (customers, orders, order_items): a consistent
set published in one commit, and a batch whose items name orders that exist nowhere blocked by the group's
cross-table rules, every member table on main unchanged."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.demo.shop import generate_customers, generate_orders, orphan_items, write_shop
from flows.reports import artifact_key

# Defects the demo injects into its second batch; each is a category the titanic suite blocks.
DEMO_DEFECTS = ("unknown_sex", "age_out_of_range", "duplicate_ids")


def run_demo(lakehouse: Path, *, rows: int = 891, console: Console | None = None) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME

    from flows.gate import AuditFailedError, run_gate
    from flows.gate.runtime import THIS_RUN

    console = console or Console()
    sources = lakehouse / "demo-sources"
    sources.mkdir(parents=True, exist_ok=True)
    clean = generate_titanic(rows, seed=0)
    corrupted = clean
    for kind in DEMO_DEFECTS:
        corrupted = corrupt(corrupted, kind)
    clean_csv = write_csv(clean, sources / "titanic_clean.csv")
    corrupted_csv = write_csv(corrupted, sources / "titanic_corrupted.csv")

    console.rule("1/6 clean data: expected to publish")
    outcome = run_gate("titanic", source=str(clean_csv), lakehouse=str(lakehouse), backend="local")
    # published_commit is set: run_gate raises unless the data was published
    console.print(f"[green]published[/]: {outcome.rows} rows at commit {(outcome.published_commit or '?')[:12]}")

    console.rule(f"2/6 corrupted data ({', '.join(DEMO_DEFECTS)}): expected to be blocked")
    try:
        run_gate("titanic", source=str(corrupted_csv), lakehouse=str(lakehouse), backend="local")
    except AuditFailedError as exc:
        console.print(f"[red]blocked[/]: {exc}", highlight=False, soft_wrap=True)
        docs = exc.result.data_docs_url
        blocked_run = THIS_RUN.flow_run_id
    else:  # pragma: no cover - the suite would be broken
        raise RuntimeError("the corrupted batch was published: the titanic suite does not block it")

    new_csv = write_csv(generate_titanic(100, seed=1, first_id=rows + 1), sources / "titanic_new_passengers.csv")
    console.rule("3/6 append: a batch of 100 new passengers, expected to publish")
    appended = run_gate("titanic", source=str(new_csv), lakehouse=str(lakehouse), backend="local", mode="append")
    console.print(
        f"[green]published[/]: appended {appended.added} rows, {appended.rows} in the table, at commit"
        f" {(appended.published_commit or '?')[:12]}"
    )

    # Ids unique within the batch, but already on main: only an audit of the table the batch makes sees it.
    colliding = generate_titanic(50, seed=2, first_id=max(1, rows - 24))
    colliding_csv = write_csv(colliding, sources / "titanic_colliding_ids.csv")
    console.rule("4/6 append: 50 passengers whose ids are already on main, expected to be blocked by the table suite")
    try:
        run_gate("titanic", source=str(colliding_csv), lakehouse=str(lakehouse), backend="local", mode="append")
    except AuditFailedError as exc:
        console.print(f"[red]blocked[/]: {exc}", highlight=False, soft_wrap=True)
        if {e.suite for e in exc.result.failed} != {"titanic_table"}:  # pragma: no cover - the suites would be broken
            raise RuntimeError("the colliding batch was blocked by another rule than the table suite's") from exc
    else:  # pragma: no cover - the suite would be broken
        raise RuntimeError("the colliding batch was published: the titanic table suite does not block it")

    run_shop_scenes(lakehouse, sources / "shop", console)

    console.rule("where to read the reports")
    # soft_wrap: a URL or command cut across lines can be neither clicked nor copied
    console.print(
        f"main holds the clean data and the new passengers, and the shop group's first publish:"
        f" [bold]uv run wap log --lakehouse {lakehouse}[/]\n"
        f"artifacts: {artifact_key('titanic', 'validation')}, {artifact_key('titanic', 'expectations')}, "
        f"{artifact_key('titanic', 'data-docs')}, {artifact_key('titanic', 'table-data-docs')}; the group's"
        f" {artifact_key('shop', 'validation')} and each member's",
        highlight=False,
        soft_wrap=True,
    )
    for line in where_to_read(PREFECT_API_URL.value(), str(PREFECT_HOME.value()), blocked_run):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"GX data docs of the blocked run: {docs}", highlight=False, soft_wrap=True)


def where_to_read(api: str | None, home: str, blocked_run: str | None) -> list[str]:
    """Where the demo's runs can be read: the configured server's UI and the blocked run's page, or, when the demo
    ran on a temporary server of its own, how to browse what it stored."""
    from prefect.utilities.urls import url_for

    if api:
        ui = api.rstrip("/").removesuffix("/api")
        lines = [f"in the Prefect server the demo ran on: {ui}/artifacts"]
        run_url = url_for("flow-run", obj_id=blocked_run, default_base_url=ui) if blocked_run else None
        if run_url:
            lines.append(f"the blocked run: {run_url}")
        return lines
    return [
        f"stored in {home}/prefect.db (the demo ran on a temporary Prefect server of its own); to browse them:",
        "  uv run prefect server start   # then open http://127.0.0.1:4200/artifacts",
        "  uv run prefect artifact ls",
    ]


def run_shop_scenes(lakehouse: Path, sources: Path, console: Console) -> None:
    """The shop group: published atomically, then blocked by its referential-integrity rule."""
    from flows.gate import AuditFailedError, run_group
    from flows.lakehouse import MAIN, connect

    orders, items = generate_orders(500, customers=200, seed=3)
    clean = write_shop({"customers": generate_customers(200), "orders": orders, "order_items": items}, sources / "1")
    console.rule("5/6 group shop (customers, orders, order_items): expected to publish all three in one commit")
    group = run_group("shop", sources=clean, lakehouse=str(lakehouse), backend="local")
    client = connect("local", lakehouse)
    head = client.get_branch(MAIN).hash
    tables = next(iter(client.get_commits(MAIN, limit=1))).properties.get("wap.tables", "").replace(",", ", ")
    console.print(
        f"[green]published[/]: one commit {head[:12]} on main touching {tables}", highlight=False, soft_wrap=True
    )

    # Items of the next batch name orders that are in neither the batch nor main: only a rule across tables sees it.
    more_orders, more_items = generate_orders(300, customers=200, first_id=501, seed=4)
    orphans = orphan_items(more_items, 5, missing_from=900_001)
    broken = write_shop({"orders": more_orders, "order_items": orphans}, sources / "2")
    broken["customers"] = clean["customers"]  # the same snapshot again
    console.rule("6/6 group shop: 5 order items whose orders exist nowhere, expected to be blocked across tables")
    try:
        run_group("shop", sources=broken, lakehouse=str(lakehouse), backend="local")
    except AuditFailedError as exc:
        console.print(f"[red]blocked[/]: {exc}", highlight=False, soft_wrap=True)
    else:  # pragma: no cover - the rules would be broken
        raise RuntimeError("the orphaned items were published: the shop group's cross-table rules do not block them")
    if client.get_branch(MAIN).hash != head:  # pragma: no cover - the gate would be broken
        raise RuntimeError("main changed although the group was blocked")
    console.print(
        f"main unchanged at {head[:12]}: {', '.join(f'{m} {o.rows} rows' for m, o in group.members.items())}",
        highlight=False,
    )
