"""The shop, day by day: `ShopSimulation.run(start_date, days)` simulates each business day into RAW, one
transaction per day.

Incremental: the shop's state (customers, catalogue, last ids, loaded days) is read from RAW, so a later
run with a later start date continues the same shop. Deterministic: every day draws from its own random
generator seeded by (seed, date), and the initial population and catalogue from (seed, 0) and (seed, 1), so
the same seed and arguments give the same rows, however the days are split between runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg

from datagen import changes, customers, products, purchases
from datagen.vocabulary import vocabulary
from datagen.writer import RawWriter, create_raw_tables

HISTORY_DAYS = 365  # the initial population registered over the year before the first simulated day


class DayAlreadyLoaded(RuntimeError):
    """A requested day is already in RAW (or earlier than the last loaded day); nothing was written."""


@dataclass(frozen=True)
class DayReport:
    day: dt.date
    customers_added: int
    orders: int
    sale_lines: int
    last_name_changes: int
    price_changes: int
    sale_corrections: int
    skipped: bool = False


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


class ShopSimulation:
    def __init__(self, dsn: str, seed: int = 42, initial_customers: int = 20_000):
        if initial_customers < 1:
            raise ValueError(f"initial_customers must be at least 1, got {initial_customers}")
        self.dsn = dsn
        self.seed = seed
        self.initial_customers = initial_customers
        self.vocab = vocabulary(seed)

    def run(
        self,
        start_date: dt.date,
        days: int,
        skip_loaded: bool = False,
        on_day: Callable[[DayReport], None] | None = None,
    ) -> list[DayReport]:
        """Simulate `days` business days from `start_date`. A day already loaded is refused before anything
        is written (DayAlreadyLoaded), or skipped with `skip_loaded`."""
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        wanted = [start_date + dt.timedelta(days=offset) for offset in range(days)]
        # autocommit outside the explicit transactions: each `conn.transaction()` below is a real
        # BEGIN ... COMMIT of its own, not a savepoint of an open transaction
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            with conn.transaction():
                create_raw_tables(conn)
            writer = RawWriter(conn)
            loaded = writer.loaded_days(wanted)
            last_day = writer.state().last_day
            if loaded and not skip_loaded:
                raise DayAlreadyLoaded(
                    f"{', '.join(map(str, loaded))} already loaded into RAW; nothing was written. "
                    "Generate later days, or pass --skip-loaded to leave loaded days as they are."
                )
            earlier = [day for day in wanted if day not in loaded and last_day and day < last_day]
            if earlier:
                raise DayAlreadyLoaded(
                    f"{earlier[0]} is before the last loaded day {last_day}: the shop only moves forward; "
                    "nothing was written."
                )
            reports = []
            for day in wanted:
                if day in loaded:
                    report = DayReport(day, 0, 0, 0, 0, 0, 0, skipped=True)
                else:
                    with conn.transaction():
                        report = self._simulate_day(writer, day, first_day=start_date)
                reports.append(report)
                if on_day:
                    on_day(report)
            return reports

    def _simulate_day(self, writer: RawWriter, day: dt.date, first_day: dt.date) -> DayReport:
        state = writer.state()
        day_start = dt.datetime.combine(day, dt.time())
        if state.customers == 0:
            history_start = dt.datetime.combine(first_day, dt.time()) - dt.timedelta(days=HISTORY_DAYS)
            writer.copy(
                "raw.customer",
                customers.new_customers(
                    _rng(self.seed, 0), self.vocab, 1, self.initial_customers, history_start, HISTORY_DAYS
                ),
            )
        if state.products == 0:
            listed_at = dt.datetime.combine(first_day, dt.time()) - dt.timedelta(days=HISTORY_DAYS + 1)
            writer.copy("raw.product", products.catalogue(_rng(self.seed, 1), self.vocab, listed_at))
        state = writer.state()
        rng = _rng(self.seed, day.toordinal())

        # changes to rows of earlier days, drawn before today's rows exist
        renamed = changes.last_name_changes(rng, self.vocab, day, state.customers)
        writer.overwrite("raw.customer", "customer_id", renamed)
        prices = writer.prices()
        repriced = changes.price_changes(rng, day, prices)
        writer.overwrite("raw.product", "product_id", repriced)
        corrected = changes.sale_corrections(rng, day, writer.lines_sold(day - dt.timedelta(days=1)))
        writer.overwrite("raw.sales", "sale_id", corrected)

        # the day's purchases by the customers registered before it, then the day's new customers
        catalogue = prices.sort("product_id")
        weights = products.popularity(_catalogue_names(writer), _rng(self.seed, 1, 1))
        lines = purchases.day_sales(
            rng, day, state.customers, catalogue["product_id"].to_numpy(), weights,
            state.next_order_id, state.next_sale_id,
        )  # fmt: skip
        writer.copy("raw.sales", lines)
        added = customers.daily_growth(rng, state.customers)
        if added:
            writer.copy(
                "raw.customer",
                customers.new_customers(rng, self.vocab, state.customers + 1, added, day_start, 1),
            )
        report = DayReport(
            day=day,
            customers_added=added,
            orders=lines["order_id"].n_unique(),
            sale_lines=lines.height,
            last_name_changes=renamed.height,
            price_changes=repriced.height,
            sale_corrections=corrected.height,
        )
        counts = {name: getattr(report, name) for name in (
            "customers_added", "orders", "sale_lines", "last_name_changes", "price_changes", "sale_corrections")}  # fmt: skip
        writer.record_day(day, self.seed, counts)
        return report


def _catalogue_names(writer: RawWriter):
    import polars as pl

    rows = writer.conn.execute("select product_id, name from raw.product order by product_id").fetchall()
    return pl.DataFrame(rows, schema={"product_id": pl.Int64, "name": pl.Utf8}, orient="row")
