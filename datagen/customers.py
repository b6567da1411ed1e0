"""Customers: who they are and how many arrive.

Distributions:
- age at registration: 8% teenagers (13-17, uniform), the rest adults whose age follows a normal
  distribution (mean 38, sd 13) clipped to 18-85;
- names: first and last names sampled uniformly from mimesis pools (first names half female, half male);
- registration time (`updated_at` of a new row): the initial population registered uniformly over the year
  before the first simulated day; new customers of a day register uniformly over that day;
- growth: each day brings `GROWTH_PER_DAY` (0.1%) of the current customers, with Poisson noise.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from datagen.vocabulary import Vocabulary

GROWTH_PER_DAY = 0.001
TEEN_SHARE = 0.08
MICROS_PER_DAY = 86_400_000_000


def daily_growth(rng: np.random.Generator, current: int) -> int:
    return int(rng.poisson(current * GROWTH_PER_DAY)) if current else 0


def new_customers(
    rng: np.random.Generator,
    vocab: Vocabulary,
    first_id: int,
    count: int,
    registered_from: dt.datetime,
    registered_over_days: int,
) -> pl.DataFrame:
    """`count` customers with ids from `first_id`, registered uniformly over the given days."""
    teen = rng.random(count) < TEEN_SHARE
    age_years = np.where(teen, rng.uniform(13, 18, count), np.clip(rng.normal(38, 13, count), 18, 85.99))
    # sorted: ids grow with registration time, as a shop's sequence hands them out (and RAW's indexes
    # on the id and on updated_at are then appended to rather than split at random pages)
    offsets = np.sort(rng.integers(0, registered_over_days * MICROS_PER_DAY, count, dtype=np.int64))
    registered = np.datetime64(registered_from, "us") + offsets.astype("timedelta64[us]")
    birth = (registered.astype("datetime64[D]") - (age_years * 365.25).astype("timedelta64[D]")).astype(
        "datetime64[D]"
    )
    return pl.DataFrame(
        {
            "customer_id": np.arange(first_id, first_id + count, dtype=np.int64),
            "first_name": vocab.first_names[rng.integers(0, len(vocab.first_names), count)],
            "last_name": vocab.last_names[rng.integers(0, len(vocab.last_names), count)],
            "birth_date": birth,
            "updated_at": registered,
        }
    )
