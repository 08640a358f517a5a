"""Groups under concurrency and crashes: real `wap run` processes against one embedded lakehouse and the session's
Prefect server.

- A group paused before its publish (`WAP_PAUSE_AT=publish`) while one of its members is published on its own:
  the group's merge conflicts (exit 3), nothing of it reaches main. A group is never rebased.
- A single member's append paused while the group publishes: the append is rebased onto the group's commit,
  audited again and published, as any append that lost a race (the incremental issue's rule).
- Group runs SIGKILLed at every phase: every member table on main is as before the run, or every one is as the
  run published; never some of them.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reliability_helpers import PausedRun, WatchedRun, assert_one_line_error, gate_branches, gate_env, run_wap

from flows.demo.shop import generate_customers, generate_orders, write_shop
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.subprocess

MEMBERS = ("customers", "orders", "order_items")
KILLS = int(os.environ.get("WAP_GROUP_KILLS", "6"))
SEED = int(os.environ.get("WAP_KILL_SEED", str(int(time.time()))))
# Output markers, in the order a group run prints them; the last one seen tells where a kill landed.
MARKERS = (
    ("Beginning flow run", "write"),
    ("appended ", "write-members"),
    ("audit passed", "audit"),
    ("cross-table rules passed", "merge"),
    ("published group shop", "after-merge"),
)


def shop_batch(folder: Path, first_order: int, orders: int = 20, seed: int = 0) -> dict[str, str]:
    order_table, items = generate_orders(orders, customers=30, first_id=first_order, seed=seed)
    return write_shop({"customers": generate_customers(30), "orders": order_table, "order_items": items}, folder)


def group_args(sources: dict[str, str], lake: Path) -> list[str]:
    return ["run", "--group", "shop", *[f"--source={m}={p}" for m, p in sources.items()], "--lakehouse", str(lake)]


def member_state(lake: Path) -> dict[str, tuple[str, int] | None]:
    client = connect("local", lake)
    return {
        m: (info.metadata_location, info.records)
        if client.has_table(m, MAIN, namespace="shop") and (info := client.get_table(m, MAIN, namespace="shop"))
        else None
        for m in MEMBERS
    }


def order_ids(lake: Path) -> list[int]:
    return sorted(connect("local", lake).scan("orders", ref=MAIN, namespace="shop").column("id").to_pylist())


@pytest.fixture
def shop(prefect_api: str, tmp_path: Path):
    """A lakehouse whose main holds the shop group's first publish (orders 1..20)."""
    env = gate_env(prefect_api)
    lake = tmp_path / "lake"
    first = run_wap(*group_args(shop_batch(tmp_path / "first", 1), lake), env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return env, lake


def test_a_group_whose_member_was_published_meanwhile_conflicts_and_publishes_nothing(shop, tmp_path):
    env, lake = shop
    paused = PausedRun("publish", group_args(shop_batch(tmp_path / "group", 21), lake), env)
    single = shop_batch(tmp_path / "single", 41)["orders"]
    alone = run_wap("run", "orders", "--source", single, "--lakehouse", str(lake), env=env)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    before = member_state(lake)
    head = connect("local", lake).get_branch(MAIN).hash

    result = paused.resume()
    assert_one_line_error(result, (3,), "merge conflict", "shop.orders")
    assert connect("local", lake).get_branch(MAIN).hash == head
    assert member_state(lake) == before  # nothing of the group, not even its customers or items
    assert order_ids(lake) == [*range(1, 21), *range(41, 61)]
    assert gate_branches(lake) == []


def test_a_member_append_that_lost_the_race_to_its_group_is_rebased_and_published(shop, tmp_path):
    env, lake = shop
    single = shop_batch(tmp_path / "single", 41)["orders"]
    paused = PausedRun("publish", ["run", "orders", "--source", single, "--lakehouse", str(lake)], env)
    group = run_wap(*group_args(shop_batch(tmp_path / "group", 21), lake), env=env)
    assert group.returncode == 0, group.stdout[-3000:] + group.stderr[-3000:]

    result = paused.resume()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "rebased 20 rows onto main" in result.stdout
    assert order_ids(lake) == list(range(1, 61))  # every order once: first publish, the group, the member
    head = connect("local", lake).get_commits(MAIN, limit=1)[0]
    assert head.properties["wap.dataset"] == "orders" and head.properties["wap.rebases"] == "1"
    assert gate_branches(lake) == []


@pytest.mark.crash
def test_a_group_killed_at_any_point_leaves_every_member_table_as_before_or_all_published(shop, tmp_path):
    env, lake = shop
    rng = random.Random(SEED)
    landed: list[str] = []
    for kill in range(KILLS):
        before = member_state(lake)
        head = connect("local", lake).get_branch(MAIN).hash
        first = 21 + 20 * kill
        sources = shop_batch(tmp_path / f"kill{kill}", first, seed=kill)
        phase_index = rng.randrange(len(MARKERS))
        needle, phase = MARKERS[phase_index]
        run = WatchedRun.start(group_args(sources, lake), env)
        if run.wait_for(needle, timeout=240):
            time.sleep(rng.uniform(0, 0.8))
        killed = run.kill()
        landed.append(phase if killed else "finished")

        after = member_state(lake)
        new_head = connect("local", lake).get_branch(MAIN).hash
        if new_head == head:
            assert after == before, f"kill {kill} ({phase}, seed {SEED}): main's commit kept, its tables changed"
        else:
            # The merge committed before the kill: every member as the run wrote it, in one commit.
            published = connect("local", lake).get_commits(MAIN, limit=1)[0]
            assert published.properties["wap.group"] == "shop", f"kill {kill} ({phase}, seed {SEED})"
            assert published.parent_hashes[0] == head
            assert all(after[m] != before[m] for m in ("orders", "order_items")), f"kill {kill}: part published"
            expected = {m: pq.read_metadata(p).num_rows for m, p in sources.items()}
            assert after["customers"][1] == expected["customers"]
            assert after["orders"][1] == before["orders"][1] + expected["orders"]
            assert after["order_items"][1] == before["order_items"][1] + expected["order_items"]
        # Whatever the kill left behind, gc collects it and main stays.
        gc = run_wap("gc", "--older-than", "0s", "--force", "--lakehouse", str(lake), env=env)
        assert gc.returncode == 0, gc.stdout + gc.stderr
        assert gate_branches(lake) == []
        assert member_state(lake) == after
    print(f"group kills (seed {SEED}): {landed}")
