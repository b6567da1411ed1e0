"""Purchases of one day: who buys, how many lines, which products, how many of each, and when.

Distributions:
- each of the shop's own customers (those the generator made, not an outside writer's) registered before
  the day buys with probability 1% on weekdays and 5% on Saturdays and Sundays (one Bernoulli draw per
  customer: at most one purchase per customer per day);
- lines per purchase: 1 + Poisson(1.2), at most 8, products drawn by popularity; a product drawn twice in
  one purchase is kept once, so lines are distinct products;
- quantity per line: 1 + Geometric(0.75) - 1, so 1 most of the time, sometimes 2 or 3;
- time of purchase: a mixture over the day: 20% uniform, 35% around 13:00 (sd 1.5 h), 45% around 20:00
  (sd 2 h), folded into the day, microsecond precision; `updated_at` equals `sold_at`.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from datagen.record import IdRanges

WEEKDAY_CONVERSION = 0.01
WEEKEND_CONVERSION = 0.05
MAX_LINES = 8
MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR


def conversion(day: dt.date) -> float:
    return WEEKEND_CONVERSION if day.weekday() >= 5 else WEEKDAY_CONVERSION


def purchase_times(rng: np.random.Generator, count: int) -> np.ndarray:
    kind = rng.choice(3, size=count, p=[0.20, 0.35, 0.45])
    micros = np.where(
        kind == 0,
        rng.uniform(0, MICROS_PER_DAY, count),
        np.where(kind == 1, rng.normal(13, 1.5, count), rng.normal(20, 2, count)) * MICROS_PER_HOUR,
    )
    return np.mod(micros, MICROS_PER_DAY).astype(np.int64)


def day_sales(
    rng: np.random.Generator,
    day: dt.date,
    customers: IdRanges,
    product_ids: np.ndarray,
    product_weights: np.ndarray,
    first_order_id: int,
    first_sale_id: int,
) -> pl.DataFrame:
    """The sale lines of `day` by the given customers (the shop's own, registered before the day), with
    order and sale ids from the given firsts."""
    # one draw per customer in id order; a customer's position maps to its id (k -> k + 1 for ids 1..N)
    buyers = customers.ids(np.flatnonzero(rng.random(len(customers)) < conversion(day)))
    # order ids grow with purchase time (as a shop's sequence hands them out); buyers come in random order
    buyers = rng.permutation(buyers)
    orders = len(buyers)
    lines_per_order = np.minimum(1 + rng.poisson(1.2, orders), MAX_LINES)
    order_index = np.repeat(np.arange(orders), lines_per_order)
    start = np.datetime64(dt.datetime.combine(day, dt.time()), "us")
    sold_at = start + np.sort(purchase_times(rng, orders)).astype("timedelta64[us]")
    lines = pl.DataFrame(
        {
            "order_id": first_order_id + order_index,
            "sold_at": sold_at[order_index],
            "customer_id": buyers[order_index],
            "product_id": rng.choice(product_ids, size=len(order_index), p=product_weights),
            "quantity": rng.geometric(0.75, len(order_index)).astype(np.int32),
        }
    ).unique(subset=["order_id", "product_id"], keep="first", maintain_order=True)
    return lines.with_columns(
        pl.int_range(first_sale_id, first_sale_id + lines.height, dtype=pl.Int64).alias("sale_id"),
        pl.col("sold_at").alias("updated_at"),
    ).select("sale_id", "order_id", "sold_at", "customer_id", "product_id", "quantity", "updated_at")
