"""The simulated shop in memory (`MemoryWriter`), no database: the day's frames against CONTRACT.md section
4, determinism, and what the simulation refuses. Fast: these run under `make test-fast`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from datagen import ArgumentsDiffer, DayAlreadyLoaded, DaysOutOfRange, ShopSimulation
from datagen.memory import MemoryWriter
from datagen.purchases import day_sales
from datagen.record import IdRanges

START = dt.date(2024, 3, 4)  # a Monday
SATURDAY = dt.date(2024, 3, 9)


def shop(days: int = 7, start: dt.date = START, writer: MemoryWriter | None = None, **kwargs) -> MemoryWriter:
    writer = writer or MemoryWriter()
    arguments = {"seed": 5, "initial_customers": 3_000, **kwargs}
    ShopSimulation(writer, **arguments).run(start, days)
    return writer


@pytest.fixture(scope="module")
def week() -> MemoryWriter:
    return shop()


def test_a_days_lines_are_one_purchase_per_buyer_of_distinct_products_at_one_moment():
    lines = day_sales(
        np.random.default_rng(7),
        SATURDAY,
        IdRanges.run(1, 20_000),
        np.arange(1, 301),
        np.full(300, 1 / 300),
        1,
        1,
    )
    orders = lines.group_by("order_id").agg(
        pl.col("customer_id").n_unique().alias("customers"),
        pl.col("sold_at").n_unique().alias("moments"),
        pl.len().alias("lines"),
        pl.col("product_id").n_unique().alias("products"),
    )
    assert (orders["customers"] == 1).all() and (orders["moments"] == 1).all()
    assert (orders["lines"] == orders["products"]).all(), "a purchase's lines are distinct products"
    assert orders["lines"].max() <= 8 and lines["quantity"].min() >= 1
    assert lines.group_by("customer_id").agg(pl.col("order_id").n_unique())["order_id"].max() == 1
    # 5% of 20,000 on a Saturday
    assert 850 < orders.height < 1150
    assert lines["sale_id"].to_list() == list(range(1, lines.height + 1)), "sale ids from the first, no gap"
    assert (lines["updated_at"] == lines["sold_at"]).all()
    assert (lines["sold_at"].dt.date() == SATURDAY).all()
    assert lines["order_id"].is_sorted() and lines["sold_at"].is_sorted(), "ids grow with purchase time"


def test_every_sale_is_of_a_customer_and_product_of_the_shop(week):
    sales, customers, products = (week.rows(table) for table in ("raw.sales", "raw.customer", "raw.product"))
    assert sales.height > 0
    assert sales["customer_id"].is_in(customers["customer_id"].implode()).all()
    assert sales["product_id"].is_in(products["product_id"].implode()).all()
    # only customers registered before the day buy: ids 1..N, where N grows with each day's new customers
    registered_before = 3_000
    for day, counts in sorted(week.days.items()):
        buyers = sales.filter(pl.col("sold_at").dt.date() == day)["customer_id"]
        assert buyers.max() <= registered_before, day
        registered_before += counts["customers_added"]


def test_weekends_sell_about_five_times_what_weekdays_do(week):
    orders = {day: counts["orders"] for day, counts in week.days.items()}
    weekday = np.mean([count for day, count in orders.items() if day.weekday() < 5])
    weekend = np.mean([count for day, count in orders.items() if day.weekday() >= 5])
    assert 3 < weekend / weekday < 8, orders


def test_changes_overwrite_rows_and_move_updated_at_into_the_day_of_the_change(week):
    sales = week.rows("raw.sales")
    corrected = sales.filter(pl.col("updated_at") > pl.col("sold_at"))
    assert corrected.height == sum(counts["sale_corrections"] for counts in week.days.values()) > 0
    # a line is corrected on the day after its sale
    assert (corrected["updated_at"].dt.date() == corrected["sold_at"].dt.date() + dt.timedelta(days=1)).all()
    products = week.rows("raw.product")
    assert products.filter(pl.col("updated_at") > pl.col("updated_at").min()).height > 0
    assert (products["price"] > 0).all()


def test_the_same_seed_gives_the_same_rows_however_the_days_are_split():
    whole = shop(6)
    split = shop(2)
    shop(4, START + dt.timedelta(days=2), writer=split)
    for table in whole.tables:
        assert_frame_equal(split.rows(table), whole.rows(table))
    assert split.days == whole.days and split.record == whole.record
    other = shop(6, seed=6)
    assert not other.rows("raw.sales").equals(whole.rows("raw.sales"))


def test_a_generated_day_an_earlier_one_and_other_arguments_are_refused_with_nothing_written():
    writer = shop(2)
    before = dict(writer.tables)
    with pytest.raises(DayAlreadyLoaded, match="2024-03-05 already loaded into memory"):
        shop(2, START + dt.timedelta(days=1), writer=writer)
    with pytest.raises(DayAlreadyLoaded, match="before the last loaded day"):
        shop(1, START - dt.timedelta(days=1), writer=writer)
    with pytest.raises(ArgumentsDiffer, match="seed 6 .* its seed is 5"):
        shop(1, START + dt.timedelta(days=2), writer=writer, seed=6)
    with pytest.raises(ArgumentsDiffer, match=r"3,001 initial customers .* began with 3,000"):
        shop(1, START + dt.timedelta(days=2), writer=writer, initial_customers=3_001)
    assert all(writer.tables[table] is frame for table, frame in before.items()), "nothing written"
    reports = ShopSimulation(writer).run(START + dt.timedelta(days=1), 2, skip_loaded=True)
    assert [report.skipped for report in reports] == [True, False]


def test_a_day_not_over_by_the_writers_clock_is_refused():
    with pytest.raises(DaysOutOfRange, match="2024-03-06 is not over yet"):
        shop(3, writer=MemoryWriter(today=dt.date(2024, 3, 6)))


def test_a_failed_day_leaves_nothing_and_runs_again_as_a_clean_run_does(monkeypatch):
    writer, clean = shop(2), shop(3)
    before = dict(writer.tables)
    real_append = MemoryWriter.append

    def failing_append(self, table, frame):
        if table == "raw.sales":
            raise OSError("disk full")
        real_append(self, table, frame)

    monkeypatch.setattr(MemoryWriter, "append", failing_append)
    with pytest.raises(OSError, match="disk full"):
        shop(1, START + dt.timedelta(days=2), writer=writer)
    assert all(writer.tables[table] is frame for table, frame in before.items()) and len(writer.days) == 2
    monkeypatch.undo()
    shop(1, START + dt.timedelta(days=2), writer=writer)
    for table in writer.tables:
        assert_frame_equal(writer.rows(table), clean.rows(table))
