"""The shop, day by day: `ShopSimulation.run(start_date, days)` simulates each business day into a
`ShopWriter` (`datagen/shop_writer.py`): PostgreSQL's RAW (given a DSN), the landing zone's files, or memory;
each day is written whole or not at all (in RAW, one transaction per day).

Incremental: the shop is what the generator's own record says (`datagen/record.py`; in RAW
`raw.generator_shop`: its seed and initial customers, its customers, catalogue and sale lines, its last ids),
kept with each day, so a later run with a later start date continues the same shop, and rows that outside
writers put in RAW neither join it nor lend it their ids. Deterministic: every day draws from its own random
generator seeded by (seed, date), and the initial population and catalogue from (seed, 0) and (seed, 1), so
the same seed and arguments give the same rows, however the days are split between runs, and whichever
writer they go to.

Refused before anything is written (`datagen/errors.py`): a day already loaded or before the last loaded
day, days past 9999-12-31, before EARLIEST_DAY or not over yet (by the target's clock), and a seed or number
of initial customers other than the shop's own (a continuing shop would ignore them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from datagen import changes, customers, products, purchases
from datagen import events as events_module
from datagen.errors import ArgumentsDiffer, DayAlreadyLoaded, DaysOutOfRange
from datagen.record import IdRanges, ShopRecord
from datagen.shop_writer import DAY_COUNTS, ShopWriter
from datagen.vocabulary import Vocabulary, vocabulary
from datagen.writer import RawWriter

__all__ = ["DayAlreadyLoaded", "DayReport", "ShopSimulation"]

# a new shop's, when no seed or size is given; a continuing shop keeps its own
DEFAULT_SEED = 42
DEFAULT_CUSTOMERS = 20_000
DEFAULT_START_DATE = dt.date(2024, 3, 4)  # of `tshop-datagen generate` without --start-date or --through
HISTORY_DAYS = 365  # the initial population registered over the year before the first simulated day
# The first business day the simulator models: its customers, up to 86 years old and registered over the
# year before, must be born inside the calendars of Python and PostgreSQL (year 1 onwards), and 1900 keeps
# their ages and names those of a modern shop.
EARLIEST_DAY = dt.date(1900, 1, 1)


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
    clickstream_events: int = 0  # the day's web events and reviews, when the simulation writes events
    reviews: int = 0


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def requested_days(start_date: dt.date, days: int) -> tuple[dt.date, dt.date]:
    """The first and last of `days` days from `start_date`, or DaysOutOfRange when the calendar or the
    simulator cannot hold them."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if start_date < EARLIEST_DAY:
        raise DaysOutOfRange(
            f"{start_date} is before {EARLIEST_DAY}, the earliest business day the simulator models; "
            "nothing was written."
        )
    last = start_date.toordinal() + days - 1
    if last > dt.date.max.toordinal():
        raise DaysOutOfRange(
            f"{days:,} days from {start_date} run past {dt.date.max}, the calendar's last day; "
            "nothing was written."
        )
    return start_date, dt.date.fromordinal(last)


class ShopSimulation:
    def __init__(
        self,
        target: str | ShopWriter,
        seed: int | None = None,
        initial_customers: int | None = None,
        events: events_module.EventSink | None = None,
        event_rates: events_module.EventRates | None = None,
    ):
        """`target`: a postgresql:// DSN (RAW, by `RawWriter`), or any `ShopWriter` (`LandingWriter`,
        `MemoryWriter`). `seed` and `initial_customers` make a new shop (DEFAULT_SEED, DEFAULT_CUSTOMERS
        when None); a shop the target already holds keeps its own, and refuses others (None continues it
        whatever they were). `events`: where each simulated day's clickstream and reviews go
        (`datagen/events.py`; None: no events), drawn with `event_rates` (the defaults when None); the
        sales are the same with or without them."""
        if initial_customers is not None and initial_customers < 1:
            raise ValueError(f"initial_customers must be at least 1, got {initial_customers}")
        if seed is not None and not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in 0..{2**63 - 1}, got {seed}")
        self.writer: ShopWriter = RawWriter(target) if isinstance(target, str) else target
        self.seed = seed
        self.initial_customers = initial_customers
        self.events = events
        self.event_rates = event_rates or events_module.EventRates()
        self._vocabularies: dict[int, Vocabulary] = {}

    def run(
        self,
        start_date: dt.date,
        days: int,
        skip_loaded: bool = False,
        on_day: Callable[[DayReport], None] | None = None,
    ) -> list[DayReport]:
        """Simulate `days` business days from `start_date`. A day already loaded is refused before anything
        is written (DayAlreadyLoaded), or skipped with `skip_loaded`; so are days that cannot be simulated
        (DaysOutOfRange) and arguments the shop would ignore (ArgumentsDiffer)."""
        first_day, last_day = requested_days(start_date, days)
        with self.writer as writer:
            today = writer.today()
            if last_day >= today:
                raise DaysOutOfRange(
                    f"{max(first_day, today)} is not over yet ({writer.clock_name} says {today} UTC): a "
                    "business day is simulated after it ends, and RAW refuses rows from the future; "
                    "nothing was written."
                )
            wanted = [first_day + dt.timedelta(days=offset) for offset in range(days)]
            writer.prepare()
            record = writer.shop_record()
            self._refuse_other_arguments(record, writer.place)
            loaded = writer.loaded_days(wanted)
            last_loaded = writer.last_day()
            if loaded and not skip_loaded:
                raise DayAlreadyLoaded(
                    f"{', '.join(map(str, loaded))} already loaded into {writer.place}; nothing was written. "
                    "Generate later days, or pass --skip-loaded to leave loaded days as they are."
                )
            earlier = [day for day in wanted if day not in loaded and last_loaded and day < last_loaded]
            if earlier:
                raise DayAlreadyLoaded(
                    f"{earlier[0]} is before the last loaded day {last_loaded}: the shop only moves forward; "
                    "nothing was written."
                )
            reports = []
            for day in wanted:
                if day in loaded:
                    report = DayReport(day, 0, 0, 0, 0, 0, 0, skipped=True)
                else:
                    with writer.day(day):
                        # a run that wrote a day meanwhile left the newer record
                        record = writer.shop_record() or record
                        record, report = self._simulate_day(writer, record, day, first_day)
                reports.append(report)
                if on_day:
                    on_day(report)
            return reports

    def catch_up(
        self,
        through: dt.date,
        new_shop_days: int = 1,
        on_day: Callable[[DayReport], None] | None = None,
    ) -> list[DayReport]:
        """Simulate every business day after the last one the target holds through `through`, in order,
        each once (CONTRACT.md section 6): a machine that was off for three nights catches up in one call,
        and a second call simulates nothing. A new shop gets `new_shop_days` days ending `through`. A day not
        over yet is refused (DaysOutOfRange) before anything is written."""
        with self.writer as writer:
            today = writer.today()
            if through >= today:
                raise DaysOutOfRange(
                    f"{through} is not over yet ({writer.clock_name} says {today} UTC): a business day is "
                    f"simulated after it ends, so the latest day there is to catch up to is "
                    f"{today - dt.timedelta(days=1)}; nothing was written."
                )
            writer.prepare()
            last_loaded = writer.last_day()
        if last_loaded is None:
            # clamped at the calendar's start: a first day before EARLIEST_DAY is refused by `run`
            first_day = dt.date.fromordinal(max(1, through.toordinal() - new_shop_days + 1))
        elif last_loaded >= through:
            return []
        else:
            first_day = last_loaded + dt.timedelta(days=1)
        # another catch-up may write the same days meanwhile: each day is written once, the other skips it
        return self.run(first_day, (through - first_day).days + 1, skip_loaded=True, on_day=on_day)

    def _refuse_other_arguments(self, record: ShopRecord | None, place: str) -> None:
        """A continuing shop keeps the seed and initial customers it was made with: asked for others, it
        would ignore them, so it refuses. The same values again are fine (the DAG passes its own each day)."""
        if record is None:
            return
        differ = []
        if self.initial_customers is not None and self.initial_customers != record.initial_customers:
            differ.append(
                f"{self.initial_customers:,} initial customers (--customers), but it began with "
                f"{record.initial_customers:,} (and has {record.customers:,} now)"
            )
        if self.seed is not None and self.seed != record.seed:
            differ.append(f"seed {self.seed} (--seed), but its seed is {record.seed}")
        if differ:
            raise ArgumentsDiffer(
                f"{place[0].upper()}{place[1:]} holds a shop already, and a continuing shop keeps what it was made with; asked for "
                f"{'; and '.join(differ)}. Leave them out (or give the shop's own) to continue it, or "
                "generate elsewhere (an empty database or landing zone) for a new shop; nothing was written."
            )

    def _vocabulary(self, seed: int) -> Vocabulary:
        if seed not in self._vocabularies:
            self._vocabularies[seed] = vocabulary(seed)
        return self._vocabularies[seed]

    def _simulate_day(
        self, writer: ShopWriter, record: ShopRecord | None, day: dt.date, first_day: dt.date
    ) -> tuple[ShopRecord, DayReport]:
        """Write `day` and the record of the shop after it; the caller's `writer.day()` keeps both or
        neither."""
        if record is None:
            record = ShopRecord(
                seed=DEFAULT_SEED if self.seed is None else self.seed,
                initial_customers=self.initial_customers or DEFAULT_CUSTOMERS,
            )
        seed, vocab = record.seed, self._vocabulary(record.seed)
        # a new id comes after the target's greatest too: never one an outside writer already used
        raw = writer.greatest_ids()
        record = replace(
            record,
            last_customer_id=max(record.last_customer_id, raw.customer),
            last_order_id=max(record.last_order_id, raw.order),
            last_sale_id=max(record.last_sale_id, raw.sale),
        )
        if not record.customers:
            history_start = dt.datetime.combine(first_day, dt.time()) - dt.timedelta(days=HISTORY_DAYS)
            first_id, count = record.last_customer_id + 1, record.initial_customers
            writer.append(
                "raw.customer",
                customers.new_customers(_rng(seed, 0), vocab, first_id, count, history_start, HISTORY_DAYS),
            )
            record = record.with_customers(first_id, count)
        if not len(record.product_ids):
            listed_at = dt.datetime.combine(first_day, dt.time()) - dt.timedelta(days=HISTORY_DAYS + 1)
            listed = products.catalogue(_rng(seed, 1), vocab, listed_at, first_id=raw.product + 1)
            writer.append("raw.product", listed)
            record = replace(record, product_ids=IdRanges.run(raw.product + 1, listed.height))
        rng = _rng(seed, day.toordinal())

        # changes to the shop's own rows of earlier days, drawn before today's rows exist
        renamed = changes.last_name_changes(rng, vocab, day, record.customer_ids)
        writer.overwrite("raw.customer", "customer_id", renamed)
        catalogue = writer.products(record.product_ids)
        repriced = changes.price_changes(rng, day, catalogue.select("product_id", "price"))
        writer.overwrite("raw.product", "product_id", repriced)
        corrected = changes.sale_corrections(
            rng, day, writer.lines_sold(day - dt.timedelta(days=1), record.sale_ids)
        )
        writer.overwrite("raw.sales", "sale_id", corrected)

        # the day's purchases by the shop's customers registered before it, then the day's new customers
        weights = products.popularity(catalogue.select("product_id", "name"), _rng(seed, 1, 1))
        first_sale_id = record.last_sale_id + 1
        lines = purchases.day_sales(
            rng, day, record.customer_ids, catalogue["product_id"].to_numpy(), weights,
            record.last_order_id + 1, first_sale_id,
        )  # fmt: skip
        writer.append("raw.sales", lines)
        registered, sold_before = record.customer_ids, record.sale_ids
        if lines.height:
            record = replace(
                record,
                sale_ids=record.sale_ids.added(first_sale_id, lines.height),
                last_order_id=int(lines["order_id"].max()),
                last_sale_id=int(lines["sale_id"].max()),
            )
        added = customers.daily_growth(rng, record.customers)
        if added:
            first_id = record.last_customer_id + 1
            day_start = dt.datetime.combine(day, dt.time())
            writer.append("raw.customer", customers.new_customers(rng, vocab, first_id, added, day_start, 1))
            record = record.with_customers(first_id, added)
        clicks, reviews = 0, 0
        if self.events is not None:
            # written before the day is recorded: a day generated again writes the same files over them
            clicks, reviews = self._write_events(
                writer, seed, day, lines, registered, sold_before, catalogue["product_id"].to_numpy(), weights
            )
        writer.save_record(record)

        report = DayReport(
            day=day,
            customers_added=added,
            orders=lines["order_id"].n_unique(),
            sale_lines=lines.height,
            last_name_changes=renamed.height,
            price_changes=repriced.height,
            sale_corrections=corrected.height,
            clickstream_events=clicks,
            reviews=reviews,
        )
        writer.record_day(day, seed, {name: getattr(report, name) for name in DAY_COUNTS})
        return record, report

    def _write_events(
        self,
        writer: ShopWriter,
        seed: int,
        day: dt.date,
        lines: pl.DataFrame,
        registered: IdRanges,
        sold_before: IdRanges,
        product_ids: np.ndarray,
        weights: np.ndarray,
    ) -> tuple[int, int]:
        """The day's clickstream (its sessions, one per cheque of `lines`) and the reviews created on it,
        into the event sink; their counts. `registered`: the customers before the day's; `sold_before`:
        the shop's own lines before the day's."""
        rates, sink = self.event_rates, self.events
        assert sink is not None
        clicks = events_module.clickstream(
            events_module.events_rng(seed, day, events_module.CLICKSTREAM_STREAM),
            day, lines, registered, product_ids, weights, rates,
        )  # fmt: skip
        since = day - dt.timedelta(days=events_module.REVIEW_WINDOW)
        due = events_module.due_reviews(seed, day, writer.lines_per_day(since), sold_before, rates)
        written = events_module.reviews(due, writer.sale_lines(due["sale_id"].to_numpy()))
        sink.write("clickstream", day, clicks)
        sink.write("reviews", day, written)
        return clicks.height, written.height
