"""The star schema and the customer mart (contract section 9), in both engines, on a shop built day by day.

A shop of 2,000 customers opens on 2024-02-20; its first 14 days are built at once, then one customer in ten
changes name, one product in ten price, and two days are built one by one, after the month boundary, so the dimensions, the fact table and the customer mart all run their
incremental path. The checks compare them with the flat mart and with the contract's rules computed here
in SQL, and PostgreSQL with ClickHouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from datagen import ShopSimulation
from datagen.writer import create_raw_tables
from tshop import clients
from tshop.config import Settings, settings
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
from tshop.reconcile import differences

pytestmark = pytest.mark.slow

FIRST_DAY = dt.date(2024, 2, 20)
CUSTOMER_MONTHLY_COLUMNS = (
    "month, customer_id, orders, items, revenue, first_purchase_date, last_purchase_date, recency_days, "
    "frequency, monetary, segment, coupon_code, coupon_discount_pct"
)


@dataclass
class Shop:
    config: Settings
    dsn: str
    simulation: ShopSimulation

    def rows(self, query: str, params: tuple | None = None) -> list[tuple]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()

    def execute(self, query: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(query)

    def clickhouse(self, query: str) -> list[tuple]:
        client = clients.clickhouse(self.config)
        try:
            return client.query(query).result_rows
        finally:
            client.close()

    def build(self, *args: str) -> None:
        """The daily build: the PostgreSQL project, then the ClickHouse one."""
        run_dbt(self.config, ["build", *args])
        run_dbt(self.config, ["build"], project=CLICKHOUSE_PROJECT)


@pytest.fixture(scope="module")
def shop(test_settings: Settings, pg_dsn: str, clickhouse_url: str) -> Iterator[Shop]:
    name = "star_schema"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = test_settings.pg_dsn(database=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
    config = settings({**test_settings.env, "TSHOP_PG_DSN": dsn})
    client = clients.clickhouse(config)
    client.command("drop database if exists cdm")
    client.close()
    simulation = ShopSimulation(dsn, seed=11, initial_customers=2_000)
    built = Shop(config, dsn, simulation)
    simulation.run(FIRST_DAY, 14)
    built.build()
    # on the evening of 2024-03-04 one customer in ten marries and one product in ten gets dearer: their
    # later lines see the new versions, their earlier ones the old
    built.execute(
        "update raw.customer set last_name = last_name || '-Wed', updated_at = '2024-03-04 23:00:00'"
        " where customer_id % 10 = 0;"
        " update raw.product set price = price + 1, updated_at = '2024-03-04 23:00:00' where product_id % 10 = 0"
    )
    for day in (14, 15):  # 2024-03-05 and 2024-03-06, one run each
        simulation.run(FIRST_DAY + dt.timedelta(days=day), 1)
        built.build()
    yield built
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_fct_sales_has_one_row_per_current_mart_line_with_the_same_total_cost(shop: Shop):
    mart = shop.rows(
        "select sale_id, order_id, total_cost from cdm.sales_datamart where is_current order by 1"
    )
    facts = shop.rows("select sale_id, order_id, total_cost from cdm.fct_sales order by 1")
    assert len(mart) > 1_000
    assert facts == mart


def test_each_key_points_at_the_version_valid_at_sold_at(shop: Shop):
    """The contract's rule (1.4), written here from DDS directly: the version with valid_from <= sold_at <
    valid_to, or the first version when the sale predates them all."""
    for dimension, key in (("customer", "customer_id"), ("product", "product_id")):
        wrong, later_versions = shop.rows(
            f"""
            with expected as (
                select line.sale_id, (
                    select dim.{dimension}_key
                    from cdm.dim_{dimension} as dim
                    where dim.{key} = line.{key}
                    order by dim.valid_from <= line.sold_at desc,
                        case when dim.valid_from <= line.sold_at then dim.valid_from end desc,
                        dim.valid_from
                    limit 1
                ) as expected_key
                from dds.sales as line
                where line.valid_to is null
            )
            select
                count(*) filter (where fact.{dimension}_key is distinct from expected.expected_key),
                count(*) filter (where version.valid_from > (
                    select min(valid_from) from cdm.dim_{dimension} as first where first.{key} = version.{key}))
            from cdm.fct_sales as fact
            join expected using (sale_id)
            join cdm.dim_{dimension} as version on version.{dimension}_key = fact.{dimension}_key
            """
        )[0]
        assert wrong == 0, dimension
        # the rule was exercised: some lines point at a version after the first one
        assert later_versions > 0, dimension
    # one key per version, as many versions as DDS holds
    for dimension in ("customer", "product"):
        assert (
            shop.rows(f"select count(*), count(distinct {dimension}_key) from cdm.dim_{dimension}")[0]
            == (shop.rows(f"select count(*), count(*) from dds.{dimension}")[0])
        )


def test_dim_date_covers_every_sale_date(shop: Shop):
    missing = shop.rows(
        "select distinct sale_date from cdm.sales_datamart where is_current"
        " except select date from cdm.dim_date"
    )
    assert missing == []
    assert shop.rows(
        "select count(*) from cdm.fct_sales where date_key not in (select date_key from cdm.dim_date)"
    ) == [(0,)]
    # a known day, as the contract describes it
    assert shop.rows(
        "select date_key, year, quarter, month, month_name, iso_week, day_of_week, day_name, is_weekend"
        " from cdm.dim_date where date = '2024-03-03'"
    ) == [(20240303, 2024, 1, 3, "March", 9, 7, "Sunday", True)]


def test_customer_monthly_revenue_per_month_equals_the_mart(shop: Shop):
    per_month = shop.rows(
        "select month, sum(revenue), sum(orders) from cdm.customer_monthly group by 1 order by 1"
    )
    mart = shop.rows(
        "select date_trunc('month', sale_date)::date, sum(total_cost), count(distinct order_id)"
        " from cdm.sales_datamart where is_current group by 1 order by 1"
    )
    assert [row[0] for row in per_month] == [dt.date(2024, 2, 1), dt.date(2024, 3, 1)]
    assert per_month == mart


def test_coupon_codes_are_unique_and_unchanged_by_a_full_rebuild(shop: Shop):
    query = f"select {CUSTOMER_MONTHLY_COLUMNS} from cdm.customer_monthly order by customer_id, month"
    before = shop.rows(query)
    codes = [row[11] for row in before]
    assert len(codes) == len(set(codes)) > 500
    run_dbt(shop.config, ["run", "--full-refresh", "--select", "customer_monthly"])
    assert shop.rows(query) == before
    # each segment with its documented discount; a shop of three weeks has new and returning customers
    discounts = dict(shop.rows("select segment, coupon_discount_pct from cdm.customer_monthly group by 1, 2"))
    assert {"new", "returning"} <= discounts.keys()
    assert discounts == {
        segment: pct
        for segment, pct in {"new": 10, "returning": 5, "loyal": 10, "champion": 15}.items()
        if segment in discounts
    }


def test_both_engines_hold_the_same_rows(shop: Shop):
    assert differences(shop.config) == []
    postgres = shop.rows(
        f"select {CUSTOMER_MONTHLY_COLUMNS} from cdm.customer_monthly order by customer_id, month"
    )
    clickhouse = shop.clickhouse(
        f"select {CUSTOMER_MONTHLY_COLUMNS} from cdm.customer_monthly final order by customer_id, month"
    )
    assert [tuple(map(str, row)) for row in clickhouse] == [tuple(map(str, row)) for row in postgres]
    fact_query = "select sale_id, date_key, customer_key, product_key, quantity, unit_price, total_cost from cdm.fct_sales order by sale_id"
    assert [tuple(map(str, row)) for row in shop.clickhouse(fact_query)] == [
        tuple(map(str, row)) for row in shop.rows(fact_query)
    ]


def test_a_rerun_with_nothing_new_changes_nothing(shop: Shop):
    queries = {
        "fct_sales": "select * from cdm.fct_sales order by sale_id",
        "customer_monthly": "select * from cdm.customer_monthly order by customer_id, month",
        "dim_customer": "select * from cdm.dim_customer order by customer_key",
    }
    before = {name: shop.rows(query) for name, query in queries.items()}
    shop.build()
    assert {name: shop.rows(query) for name, query in queries.items()} == before
    assert differences(shop.config) == []


def test_a_late_correction_of_last_month_updates_every_mart(shop: Shop):
    """A February line corrected in March: the fact row, the customer's February figures and every later
    month's figures to date change by exactly the correction, in both engines."""
    sale_id, customer_id, quantity, price = shop.rows(
        "select sale_id, customer_id, quantity, product_price from cdm.sales_datamart"
        " where is_current and sale_date = '2024-02-25' order by sale_id limit 1"
    )[0]
    months_before = dict(
        shop.rows("select month, monetary from cdm.customer_monthly where customer_id = %s", (customer_id,))
    )
    february_before = shop.rows(
        "select revenue from cdm.customer_monthly where customer_id = %s and month = '2024-02-01'",
        (customer_id,),
    )[0][0]
    shop.execute(
        f"update raw.sales set quantity = quantity + 2, updated_at = '2024-03-08 09:00:00' where sale_id = {sale_id}"
    )
    shop.build()

    assert shop.rows("select quantity, total_cost from cdm.fct_sales where sale_id = %s", (sale_id,)) == [
        (quantity + 2, (quantity + 2) * price)
    ]
    assert shop.rows(
        "select revenue from cdm.customer_monthly where customer_id = %s and month = '2024-02-01'",
        (customer_id,),
    ) == [(february_before + 2 * price,)]
    months_after = dict(
        shop.rows("select month, monetary from cdm.customer_monthly where customer_id = %s", (customer_id,))
    )
    assert months_after == {month: value + 2 * price for month, value in months_before.items()}
    assert differences(shop.config) == []


def test_the_reconciliation_names_a_customer_month_missing_in_clickhouse(shop: Shop):
    client = clients.clickhouse(shop.config)
    try:
        client.command("create table cdm.customer_monthly_saved as cdm.customer_monthly")
        client.command("insert into cdm.customer_monthly_saved select * from cdm.customer_monthly")
        client.command(
            "delete from cdm.customer_monthly where customer_id = (select min(customer_id) from cdm.customer_monthly)"
        )
        found = {difference.check for difference in differences(shop.config)}
        assert "customer_monthly rows per month and segment" in found
        assert "customer_monthly coupons" in found
    finally:
        client.command("exchange tables cdm.customer_monthly_saved and cdm.customer_monthly")
        client.command("drop table cdm.customer_monthly_saved")
        client.close()
    assert differences(shop.config) == []
