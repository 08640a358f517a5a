"""Shop-shaped data for the `shop` group (customers, orders, order_items), generated in code: no network.

Each call makes a consistent set: every order's customer and every item's order exist in the set, or, for an
append, in what `existing_orders` / `existing_customers` says main already has. `orphan_items` breaks exactly
that for some items, which only the group's cross-table rules can see: each table alone passes its own suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHOP_TABLES = ("customers", "orders", "order_items")
COUNTRIES = ["DE", "FR", "GB", "IT", "NL", "SE", "US"]
STATUSES = ["placed", "paid", "shipped", "delivered", "returned"]
PRODUCTS = ["mug", "kettle", "teapot", "grinder", "scale", "filter", "beans", "tin"]
PRICES = np.array([9.5, 34.0, 27.0, 59.0, 22.5, 4.0, 12.75, 6.5])


def generate_customers(n: int = 200, *, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    return pa.table(
        {
            "id": ids,
            "name": [f"customer {i}" for i in ids],
            "email": [f"c{i}@shop.example" for i in ids],
            "country": pa.array(np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)].tolist(), pa.string()),
        }
    )


def generate_orders(n: int, *, customers: int, first_id: int = 1, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """``n`` orders of customers 1..``customers`` (ids from ``first_id``), and their items (1 to 4 each)."""
    rng = np.random.default_rng(seed)
    order_ids = np.arange(first_id, first_id + n, dtype=np.int64)
    per_order = rng.integers(1, 5, n)
    item_orders = np.repeat(order_ids, per_order)
    products = rng.integers(0, len(PRODUCTS), len(item_orders))
    quantity = rng.integers(1, 6, len(item_orders)).astype(np.int64)
    unit_price = PRICES[products]
    totals = np.zeros(n)
    np.add.at(totals, np.repeat(np.arange(n), per_order), quantity * unit_price)
    # Item ids follow from the order ids (at most 4 items per order): unique across batches without coordination.
    item_ids = item_orders * 10 + np.concatenate([np.arange(k) for k in per_order]).astype(np.int64)
    orders = pa.table(
        {
            "id": order_ids,
            "customer_id": rng.integers(1, customers + 1, n).astype(np.int64),
            "status": pa.array(np.array(STATUSES)[rng.integers(0, len(STATUSES), n)].tolist(), pa.string()),
            "total": np.round(totals, 2),
        }
    )
    items = pa.table(
        {
            "id": item_ids,
            "order_id": item_orders,
            "product": pa.array(np.array(PRODUCTS)[products].tolist(), pa.string()),
            "quantity": quantity,
            "unit_price": unit_price,
        }
    )
    return orders, items


def orphan_items(items: pa.Table, count: int, *, missing_from: int) -> pa.Table:
    """Point the first ``count`` items at orders that exist nowhere (ids from ``missing_from`` on)."""
    order_id = items.column("order_id").to_numpy().copy()
    order_id[:count] = np.arange(missing_from, missing_from + count)
    return items.set_column(items.schema.get_field_index("order_id"), "order_id", pa.array(order_id, pa.int64()))


def write_shop(tables: dict[str, pa.Table], directory: Path) -> dict[str, str]:
    """Each table as ``<directory>/<name>.parquet``; returns the member -> source path mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    sources = {}
    for name, table in tables.items():
        path = directory / f"{name}.parquet"
        pq.write_table(table, path)
        sources[name] = str(path)
    return sources
