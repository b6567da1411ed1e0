"""The generator's own record of the shop in memory: id runs, sampling by position, and the days it
refuses to simulate before connecting anywhere."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from datagen import DaysOutOfRange
from datagen.purchases import day_sales
from datagen.record import IdRanges, ShopRecord
from datagen.simulation import EARLIEST_DAY, requested_days


def test_a_shop_nobody_else_writes_to_is_one_run_and_position_k_is_id_k_plus_1():
    # what keeps a shop without outside writers exactly as it was before the record existed
    ids = IdRanges.run(1, 3000).added(3001, 4).added(3005, 1)
    assert (ids.lowers.tolist(), ids.uppers.tolist()) == ([1], [3006])
    assert len(ids) == 3005 and ids.last == 3005
    positions = np.array([0, 1, 2999, 3004])
    assert ids.ids(positions).tolist() == (positions + 1).tolist()


def test_positions_map_over_gaps_in_order_and_only_to_own_ids():
    # the initial 3 customers, then an outside writer took 4..99, then 2 customers, then 1000..1001
    ids = IdRanges.run(1, 3).added(100, 2).added(1000, 2)
    assert len(ids) == 7 and ids.last == 1001
    assert ids.ids(np.arange(7)).tolist() == [1, 2, 3, 100, 101, 1000, 1001]
    assert ids.contains(np.array([0, 1, 3, 4, 99, 100, 102, 1001, 1002])).tolist() == [
        False, True, True, False, False, True, False, True, False,
    ]  # fmt: skip
    with pytest.raises(IndexError):
        ids.ids(np.array([7]))
    with pytest.raises(ValueError, match="do not follow"):
        ids.added(1001, 1)
    assert IdRanges().ids(np.array([], np.int64)).tolist() == [] and IdRanges().last == 0


def test_a_record_counts_its_customers_and_moves_its_last_id_past_new_ones():
    record = ShopRecord(seed=5, initial_customers=3).with_customers(1, 3)
    record = record.with_customers(9_000_004, 2)  # after an outside customer 9,000,003
    assert record.customers == 5 and record.last_customer_id == 9_000_005


def test_purchases_are_made_only_by_the_shops_own_customers():
    own = IdRanges.run(1, 2000).added(9_000_004, 2000)
    lines = day_sales(
        np.random.default_rng(1), dt.date(2024, 3, 9), own, np.arange(1, 51), np.full(50, 1 / 50), 1, 1
    )
    buyers = lines["customer_id"].unique().to_numpy()
    assert own.contains(buyers).all()
    assert (buyers > 9_000_003).any() and (buyers <= 2000).any(), "both runs buy"
    # 5% of 4,000 customers on a Saturday, not 5% of 9 million
    assert 120 < lines["order_id"].n_unique() < 290


def test_days_past_the_calendar_or_before_the_earliest_day_are_refused():
    with pytest.raises(DaysOutOfRange, match="5 days from 9999-12-30 run past 9999-12-31"):
        requested_days(dt.date(9999, 12, 30), 5)
    assert requested_days(dt.date(9999, 12, 30), 2) == (dt.date(9999, 12, 30), dt.date(9999, 12, 31))
    with pytest.raises(DaysOutOfRange, match="before 1900-01-01"):
        requested_days(EARLIEST_DAY - dt.timedelta(days=1), 3)
