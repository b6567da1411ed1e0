"""The day's changes to rows written on earlier days; each overwrites its RAW row and moves `updated_at`
to a moment of that day.

Distributions (per day):
- last names: 0.03% of the customers registered before the day take a new last name from the pool;
- prices: 1% of the products get a new price, the old one times a factor uniform in 0.8-1.2, ending in .99;
- corrected sale lines: 0.3% of the lines sold on the day before get a new quantity (1-4, never the same).
The moment of each change is uniform over the day. Each draws only from the shop's own rows (those the
generator made, `datagen/record.py`): an outside writer's rows in RAW are never changed.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from datagen.record import IdRanges
from datagen.vocabulary import Vocabulary

LAST_NAME_CHANGE_RATE = 0.0003
PRICE_CHANGE_RATE = 0.01
CORRECTION_RATE = 0.003
MICROS_PER_DAY = 86_400_000_000


def _moments(rng: np.random.Generator, day: dt.date, count: int) -> np.ndarray:
    start = np.datetime64(dt.datetime.combine(day, dt.time()), "us")
    return start + rng.integers(0, MICROS_PER_DAY, count, dtype=np.int64).astype("timedelta64[us]")


def last_name_changes(
    rng: np.random.Generator, vocab: Vocabulary, day: dt.date, customers: IdRanges
) -> pl.DataFrame:
    """New last names for some of `customers` (the shop's own, registered before the day)."""
    count = int(rng.binomial(len(customers), LAST_NAME_CHANGE_RATE)) if len(customers) else 0
    ids = (
        customers.ids(np.sort(rng.choice(len(customers), size=count, replace=False)))
        if count
        else np.array([], np.int64)
    )
    return pl.DataFrame(
        {
            "customer_id": ids.astype(np.int64),
            "last_name": vocab.last_names[rng.integers(0, len(vocab.last_names), count)],
            "updated_at": _moments(rng, day, count),
        }
    )


def price_changes(rng: np.random.Generator, day: dt.date, prices: pl.DataFrame) -> pl.DataFrame:
    """`prices` holds product_id and price; returns the changed ones with their new price."""
    count = int(rng.binomial(prices.height, PRICE_CHANGE_RATE))
    picked = (
        prices[np.sort(rng.choice(prices.height, size=count, replace=False))] if count else prices.head(0)
    )
    factor = rng.uniform(0.8, 1.2, picked.height)
    new_price = np.maximum(np.floor(picked["price"].cast(pl.Float64).to_numpy() * factor), 1) + 0.99
    return pl.DataFrame(
        {
            "product_id": picked["product_id"],
            "price": pl.Series(np.round(new_price, 2)).cast(pl.Decimal(12, 2)),
            "updated_at": _moments(rng, day, picked.height),
        }
    )


def sale_corrections(rng: np.random.Generator, day: dt.date, previous_lines: pl.DataFrame) -> pl.DataFrame:
    """`previous_lines` holds sale_id and quantity of the day before's lines; returns corrected lines."""
    count = int(rng.binomial(previous_lines.height, CORRECTION_RATE)) if previous_lines.height else 0
    picked = (
        previous_lines[np.sort(rng.choice(previous_lines.height, size=count, replace=False))]
        if count
        else previous_lines.head(0)
    )
    shift = rng.integers(1, 4, picked.height)  # 1-3: the new quantity differs from the old
    new_quantity = (picked["quantity"].to_numpy() - 1 + shift) % 4 + 1
    return pl.DataFrame(
        {
            "sale_id": picked["sale_id"],
            "quantity": new_quantity.astype(np.int32),
            "updated_at": _moments(rng, day, picked.height),
        }
    )
