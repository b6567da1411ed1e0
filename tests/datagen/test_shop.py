"""The simulated shop against CONTRACT section 4, on a 14-day shop of 20,000 customers in real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math

import psycopg
import pytest

from datagen import ShopSimulation
from datagen.purchases import WEEKDAY_CONVERSION, WEEKEND_CONVERSION

pytestmark = pytest.mark.slow

START = dt.date(2024, 3, 4)  # a Monday
DAYS = 14


@pytest.fixture(scope="module")
def shop(new_database) -> str:
    dsn = new_database("shop")
    ShopSimulation(dsn, seed=11, initial_customers=20_000).run(START, DAYS)
    return dsn


def rows(dsn: str, query: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_each_customer_buys_with_1_percent_on_weekdays_and_5_on_weekends(shop):
    # the customers who could buy on a day: the initial 20,000 and those added on earlier days
    per_day = rows(
        shop,
        """select business_day, orders,
                  20000 + coalesce(sum(customers_added) over (order by business_day
                                   rows between unbounded preceding and 1 preceding), 0)::int
           from raw.generated_day order by business_day""",
    )
    assert len(per_day) == DAYS
    for day, orders, customers in per_day:
        p = WEEKEND_CONVERSION if day.weekday() >= 5 else WEEKDAY_CONVERSION
        expected, sd = customers * p, math.sqrt(customers * p * (1 - p))
        assert abs(orders - expected) < 4.5 * sd, (day, orders, expected)


def test_at_most_one_purchase_per_customer_per_day(shop):
    assert rows(
        shop,
        "select count(*) from (select customer_id, sold_at::date from raw.sales "
        "group by 1, 2 having count(distinct order_id) > 1) as repeated",
    ) == [(0,)]


def test_a_purchase_has_distinct_products_in_quantities_of_one_or_more(shop):
    [(min_lines, max_lines, average_lines)] = rows(
        shop,
        "select min(n), max(n), avg(n) from (select count(*) as n from raw.sales group by order_id) as o",
    )
    assert min_lines == 1 and 2 <= max_lines <= 8 and 1.5 < average_lines < 3.5
    assert rows(
        shop,
        "select count(*) from (select 1 from raw.sales group by order_id, product_id having count(*) > 1) d",
    ) == [(0,)]
    [(min_quantity, max_quantity, average_quantity)] = rows(
        shop, "select min(quantity), max(quantity), avg(quantity) from raw.sales"
    )
    assert min_quantity == 1 and max_quantity >= 2 and 1.0 < average_quantity < 2.0
    # a cheque is bought at one moment by one customer
    assert rows(shop, "select count(*) from (select order_id from raw.sales group by 1 "
                      "having count(distinct sold_at) > 1 or count(distinct customer_id) > 1) as split") == [(0,)]  # fmt: skip


def test_customers_are_adults_and_teenagers_of_realistic_ages(shop):
    [(youngest, oldest, teen_share, adult_mean)] = rows(
        shop,
        """select min(age), max(age), avg((age < 18)::int), avg(age) filter (where age >= 18)
           from (select date_part('year', age(updated_at::date, birth_date)) as age from raw.customer
                 where customer_id <= 20000 and updated_at < '2024-03-04') as ages""",
    )
    assert youngest >= 13 and oldest <= 86
    assert 0.06 < teen_share < 0.10
    assert 35 < adult_mean < 42


def test_the_shop_grows_every_day(shop):
    added = rows(shop, "select business_day, customers_added from raw.generated_day order by 1")
    assert len(added) == DAYS and all(count > 0 for _, count in added)
    assert rows(shop, "select count(*) from raw.customer") == [(20_000 + sum(count for _, count in added),)]


def test_every_kind_of_change_happens_and_moves_updated_at_forward(shop):
    [(renamed, repriced, corrected)] = rows(
        shop,
        """select (select sum(last_name_changes) from raw.generated_day),
                  (select count(*) from raw.product where updated_at > (select min(updated_at) from raw.product)),
                  (select count(*) from raw.sales where updated_at > sold_at)""",
    )
    assert renamed > 0 and repriced > 0 and corrected > 0
    # a correction happens on a later day than the sale
    assert rows(
        shop,
        "select count(*) from raw.sales where updated_at > sold_at and updated_at::date <= sold_at::date",
    ) == [(0,)]


def test_no_sale_without_its_customer_and_product(shop):
    assert rows(
        shop,
        """select count(*) from raw.sales as s
           where not exists (select 1 from raw.customer as c where c.customer_id = s.customer_id)
              or not exists (select 1 from raw.product as p where p.product_id = s.product_id)""",
    ) == [(0,)]


def test_the_catalogue_is_clothing_with_sizes_and_realistic_prices(shop):
    categories = rows(
        shop, "select category, count(distinct size), min(price), max(price) from raw.product group by 1"
    )
    assert len(categories) >= 10
    assert {"Jeans", "Shoes", "Dresses", "T-shirts"} <= {category for category, *_ in categories}
    for _category, sizes, lowest, highest in categories:
        assert sizes >= 1 and 1 <= lowest <= highest <= 600
    assert rows(
        shop, "select count(*) from (select 1 from raw.product group by name, size having count(*) > 1) d"
    ) == [(0,)]
