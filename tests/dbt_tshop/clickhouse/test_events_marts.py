"""The web events of a generated shop through ClickHouse (CONTRACT.md section 8): the funnel's buyers are the
shop's buyers, every checkout is a cheque of RAW, the conversion is the specification's 1% / 5%, the ratings
are the reviews', and loading again changes nothing."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import psycopg
import pytest

from datagen.purchases import conversion as expected_conversion
from tshop.config import Settings
from tshop.ingest.events import load_events

FIRST_DAY = dt.date(2024, 5, 6)  # a Monday: two weekends in the fortnight
DAYS = 14
CUSTOMERS = 20_000


@pytest.fixture(scope="module")
def shop(build_shop) -> Settings:
    return build_shop("tshop_events_marts", FIRST_DAY, DAYS, CUSTOMERS, events=True)


def postgres_rows(config: Settings, query: str) -> list[tuple]:
    with psycopg.connect(config.pg_dsn()) as conn:
        return conn.execute(query).fetchall()


def test_buyers_per_day_are_the_distinct_customers_of_raw_sales(shop: Settings, clickhouse_rows):
    funnel = dict(clickhouse_rows(shop, "select event_date, buyers from cdm.conversion_funnel_daily"))
    sales = dict(
        postgres_rows(shop, "select sold_at::date, count(distinct customer_id) from raw.sales group by 1")
    )
    assert len(sales) == DAYS
    assert funnel == sales


def test_every_checkout_is_a_cheque_of_raw_sales_by_its_customer_at_its_time(shop: Settings, clickhouse_rows):
    checkouts = clickhouse_rows(
        shop,
        "select order_id, customer_id, occurred_at from events.clickstream where event_type = 'checkout' "
        "order by order_id",
    )
    cheques = postgres_rows(
        shop,
        "select order_id, min(customer_id), min(sold_at) from raw.sales group by order_id order by order_id",
    )
    assert [(order, customer, at.replace(tzinfo=None)) for order, customer, at in checkouts] == cheques


def test_conversion_is_the_specifications_within_the_generators_tolerance(shop: Settings, clickhouse_rows):
    rows = clickhouse_rows(
        shop, "select event_date, customers, conversion, expected_conversion from cdm.conversion_funnel_daily"
    )
    assert len(rows) == DAYS
    for day, customers, conversion, expected in rows:
        assert expected == expected_conversion(day)
        # each customer buys with probability p: five standard deviations of a binomial share
        tolerance = 5 * math.sqrt(expected * (1 - expected) / customers)
        assert abs(conversion - expected) < tolerance, (day, conversion, expected)


def test_the_funnel_narrows_from_sessions_to_buyers(shop: Settings, clickhouse_rows):
    for day, sessions, viewers, adders, buyers in clickhouse_rows(
        shop,
        "select event_date, sessions, product_viewers, cart_adders, buyers from cdm.conversion_funnel_daily",
    ):
        assert sessions >= viewers >= adders >= buyers > 0, day


def test_anonymous_visitors_browse_and_never_check_out(shop: Settings, clickhouse_rows):
    ((anonymous, anonymous_checkouts),) = clickhouse_rows(
        shop,
        "select countIf(customer_id is null), countIf(customer_id is null and event_type = 'checkout') "
        "from events.clickstream",
    )
    assert anonymous > 0 and anonymous_checkouts == 0


def test_reviews_are_of_lines_bought_before_and_the_ratings_average_them(shop: Settings, clickhouse_rows):
    reviews = clickhouse_rows(
        shop, "select order_id, customer_id, product_id, rating, created_at from events.review"
    )
    assert reviews
    bought = {
        (order, customer, product): sold_at
        for order, customer, product, sold_at in postgres_rows(
            shop, "select order_id, customer_id, product_id, sold_at from raw.sales"
        )
    }
    by_product = defaultdict(list)
    for order, customer, product, rating, created_at in reviews:
        assert created_at.replace(tzinfo=None) > bought[(order, customer, product)]
        by_product[product].append(rating)
    ratings = {
        product: (reviews, average)
        for product, reviews, average in clickhouse_rows(
            shop, "select product_id, reviews, average_rating from cdm.product_rating"
        )
    }
    assert ratings.keys() == by_product.keys()
    for product, given in by_product.items():
        assert ratings[product][0] == len(given)
        assert ratings[product][1] == pytest.approx(sum(given) / len(given))


def test_the_events_are_each_once_and_none_was_refused(shop: Settings, clickhouse_rows):
    ((events, distinct, rejected),) = clickhouse_rows(
        shop,
        "select count(), uniqExact(event_id), (select count() from events.rejected_event) "
        "from events.clickstream",
    )
    assert events == distinct > 0
    assert rejected == 0


def test_loading_again_changes_nothing(shop: Settings, clickhouse_rows):
    queries = [
        "select * except (loaded_at, run_id) from events.clickstream order by event_id",
        "select * except (loaded_at, run_id) from events.review order by review_id",
        "select * from cdm.conversion_funnel_daily order by event_date",
        "select * from cdm.product_rating order by product_id",
    ]
    before = [clickhouse_rows(shop, query) for query in queries]
    report = load_events(shop, run_id="test_again")
    assert not report.registered and not report.loaded
    assert [clickhouse_rows(shop, query) for query in queries] == before
