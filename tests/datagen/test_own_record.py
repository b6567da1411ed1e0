"""The generator's own record of the shop (raw.generator_shop) against outside writers: rows others put in
RAW never join the shop nor lend it their ids, a RAW from a generator that kept no record is continued as
the same shop, and arguments the shop would ignore are refused with nothing written."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from datagen import ArgumentsDiffer, DaysOutOfRange, ShopSimulation

pytestmark = pytest.mark.slow

START = dt.date(2024, 3, 4)  # a Monday
OUTSIDE_CUSTOMER = 9_000_003  # 3,000 times the shop: sized by max(customer_id), a day sold ~200,000 lines
OUTSIDE_PRODUCT = 7_000_001
OUTSIDE_SALE, OUTSIDE_ORDER = 8_000_001, 6_000_001


def simulate(dsn: str, days: int, start: dt.date = START, **kwargs):
    arguments = {"seed": 5, "initial_customers": 3_000, **kwargs}
    return ShopSimulation(dsn, **arguments).run(start, days)


def rows(dsn: str, query: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def write_as_an_outsider(dsn: str) -> None:
    """What a landing-zone ingest or a person at psql might write: a customer, a product and a sale line
    of the day before, each with an id far past the shop's."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "insert into raw.customer values (%s, 'Outside', 'Writer', '1990-01-01', '2024-03-05 09:00')",
            (OUTSIDE_CUSTOMER,),
        )
        conn.execute(
            "insert into raw.product values (%s, 'Outside tee', 'T-shirts', 'M', 10, '2024-03-05 09:00')",
            (OUTSIDE_PRODUCT,),
        )
        conn.execute(
            "insert into raw.sales values (%s, %s, '2024-03-05 10:00', %s, %s, 1, '2024-03-05 10:00')",
            (OUTSIDE_SALE, OUTSIDE_ORDER, OUTSIDE_CUSTOMER, OUTSIDE_PRODUCT),
        )


def day_lines(dsn: str, day: dt.date) -> list[tuple]:
    """A day's sale lines without their ids: what the generator drew."""
    return rows(
        dsn,
        "select sold_at, customer_id, product_id, quantity, updated_at from raw.sales "
        "where sold_at >= %s and sold_at < %s and sale_id <> %s order by 1, 2, 3",
        (day, day + dt.timedelta(days=1), OUTSIDE_SALE),
    )


def test_outside_rows_neither_join_the_shop_nor_lend_it_their_ids(new_database):
    clean, written_to = new_database("own_clean"), new_database("own_outside")
    simulate(clean, 3)
    simulate(written_to, 2)
    write_as_an_outsider(written_to)
    [day_three] = simulate(written_to, 1, start=START + dt.timedelta(days=2))

    # the day is what it would have been without the outsider: the same purchases, lines and quantities
    third = START + dt.timedelta(days=2)
    assert day_lines(written_to, third) == day_lines(clean, third)
    assert 30 < day_three.orders < 100, "1% of about 3,000 customers buy on a weekday"
    assert rows(
        written_to,
        """select count(*) from raw.sales as s where sale_id <> %s and (
               not exists (select 1 from raw.customer as c where c.customer_id = s.customer_id)
               or customer_id = %s or product_id = %s)""",
        (OUTSIDE_SALE, OUTSIDE_CUSTOMER, OUTSIDE_PRODUCT),
    ) == [(0,)], "every line is the shop's own customer's, of the shop's own catalogue"

    # new ids come after the outsider's; the outsider's rows are left as they were written
    assert rows(
        written_to,
        "select min(customer_id), count(*) from raw.customer where customer_id > %s",
        (OUTSIDE_CUSTOMER,),
    ) == [(OUTSIDE_CUSTOMER + 1, day_three.customers_added)]
    assert rows(written_to, "select count(*) - 1 from raw.customer") == rows(
        clean, "select count(*) from raw.customer"
    )
    assert rows(
        written_to, "select min(order_id), min(sale_id) from raw.sales where sold_at >= %s", (third,)
    ) == [(OUTSIDE_ORDER + 1, OUTSIDE_SALE + 1)]
    assert rows(
        written_to,
        """select (select last_name from raw.customer where customer_id = %s),
                  (select price from raw.product where product_id = %s),
                  (select quantity from raw.sales where sale_id = %s)""",
        (OUTSIDE_CUSTOMER, OUTSIDE_PRODUCT, OUTSIDE_SALE),
    ) == [("Writer", 10, 1)]
    [(customers, last_customer_id)] = rows(
        written_to, "select customers, last_customer_id from raw.generator_shop"
    )
    assert customers == rows(clean, "select count(*) from raw.customer")[0][0]
    assert last_customer_id == OUTSIDE_CUSTOMER + day_three.customers_added


def test_a_raw_without_a_record_is_continued_as_the_same_shop(new_database, raw_digest):
    whole, upgraded = new_database("rec_whole"), new_database("rec_upgraded")
    simulate(whole, 4)
    simulate(upgraded, 2)
    # what a generator that kept no record leaves: simulated days and RAW, no raw.generator_shop, and an
    # older raw.sql applied (so the next run applies this one)
    with psycopg.connect(upgraded) as conn:
        conn.execute("drop table raw.generator_shop; delete from raw.ddl_version")
    simulate(upgraded, 2, start=START + dt.timedelta(days=2))
    assert raw_digest(upgraded) == raw_digest(whole)
    [(initial, customers, derived)] = rows(
        upgraded, "select initial_customers, customers, derived_from_raw from raw.generator_shop"
    )
    assert (initial, derived) == (3000, True)
    assert customers == rows(whole, "select count(*) from raw.customer")[0][0]


def test_a_record_derived_from_raw_leaves_out_an_outside_customer(new_database):
    dsn = new_database("rec_outside")
    simulate(dsn, 2)
    with psycopg.connect(dsn) as conn:
        conn.execute("delete from raw.generator_shop")
    write_as_an_outsider(dsn)
    simulate(dsn, 1, start=START + dt.timedelta(days=2))  # --customers 3000 again: accepted
    [(initial, customers, first_ids)] = rows(
        dsn, "select initial_customers, customers, lower(customer_ids) from raw.generator_shop"
    )
    assert initial == 3000 and first_ids == 1
    assert customers == rows(dsn, "select count(*) - 1 from raw.customer")[0][0]
    assert rows(dsn, "select count(*) from raw.sales where customer_id = %s", (OUTSIDE_CUSTOMER,)) == [(1,)]
    assert (
        30
        < rows(dsn, "select count(distinct order_id) from raw.sales where sold_at >= '2024-03-06'")[0][0]
        < 100
    )


def test_customers_or_a_seed_other_than_the_shops_are_refused_and_nothing_is_written(
    new_database, raw_digest
):
    dsn = new_database("own_refused")
    simulate(dsn, 1)
    before = raw_digest(dsn)
    tuesday = START + dt.timedelta(days=1)
    with pytest.raises(ArgumentsDiffer, match=r"3,001 initial customers .* began with 3,000"):
        simulate(dsn, 1, start=tuesday, initial_customers=3001)
    with pytest.raises(ArgumentsDiffer, match="seed 6 .* its seed is 5"):
        simulate(dsn, 1, start=tuesday, seed=6)
    assert raw_digest(dsn) == before
    assert rows(dsn, "select count(*) from raw.generated_day") == [(1,)]
    # the same values again (as the DAG passes them every day), or none, continue the shop
    simulate(dsn, 1, start=tuesday)
    ShopSimulation(dsn).run(tuesday + dt.timedelta(days=1), 1)
    assert rows(dsn, "select count(*) from raw.generated_day") == [(3,)]


def test_a_day_that_is_not_over_is_refused_before_anything_is_written(new_database):
    dsn = new_database("not_over")
    today = rows(dsn, "select (now() at time zone 'UTC')::date")[0][0]
    with pytest.raises(DaysOutOfRange, match=f"{today} is not over yet"):
        simulate(dsn, 3, start=today - dt.timedelta(days=2))
    assert rows(dsn, "select to_regclass('raw.customer') is null") == [(True,)], "not even RAW's tables"
