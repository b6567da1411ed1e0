"""The ClickHouse mart against the PostgreSQL mart it copies (CONTRACT sections 2 and 3), on real PostgreSQL
and the local ClickHouse: the current rows reconcile, re-runs change nothing, corrections and late lines
arrive, and every dashboard metric is the same number in both engines."""

from __future__ import annotations

import datetime as dt

import pytest

from datagen import ShopSimulation
from tshop import metrics
from tshop.reconcile import differences

pytestmark = pytest.mark.slow

CUSTOMERS = "insert into raw.customer values (%s, %s, %s, %s, %s)"
PRODUCTS = "insert into raw.product values (%s, %s, %s, %s, %s, %s)"
SALES = "insert into raw.sales values (%s, %s, %s, %s, %s, %s, %s)"
ALL_VERSIONS = (
    "select * except (loaded_at, row_version) from cdm.sales_datamart final order by sale_id, valid_from"
)


def build_both(warehouse, clickhouse_mart) -> None:
    warehouse.build()
    clickhouse_mart.build()


def seed_shop(warehouse) -> None:
    """Two customers, two products, and a cheque of two lines on 2 January."""
    warehouse.execute(CUSTOMERS, (1, "Ann", "Lee", "1990-05-10", "2024-01-01 10:00"))
    warehouse.execute(CUSTOMERS, (2, "Bob", "Ray", "2006-03-01", "2024-01-01 10:00"))
    warehouse.execute(PRODUCTS, (10, "Oxford shirt", "Shirts", "M", "20.00", "2024-01-01 09:00"))
    warehouse.execute(PRODUCTS, (11, "Slim jeans", "Jeans", "32", "60.00", "2024-01-01 09:00"))
    warehouse.execute(SALES, (100, 1000, "2024-01-02 12:00", 1, 10, 2, "2024-01-02 12:00"))
    warehouse.execute(SALES, (101, 1000, "2024-01-02 12:00", 1, 11, 1, "2024-01-02 12:00"))


def current_line(clickhouse_mart, sale_id: int) -> list[tuple]:
    return clickhouse_mart.rows(
        f"select quantity, toString(total_cost) from cdm.sales_datamart_current where sale_id = {sale_id}"
    )


def test_a_generated_shop_reconciles_and_every_dashboard_metric_is_equal(warehouse, clickhouse_mart):
    simulation = ShopSimulation(warehouse.dsn, seed=3, initial_customers=3000)
    simulation.run(dt.date(2024, 3, 8), 3)  # Friday to Sunday: corrections, renames and repricing included
    build_both(warehouse, clickhouse_mart)
    simulation.run(dt.date(2024, 3, 11), 1)  # the next day through both increments
    build_both(warehouse, clickhouse_mart)

    assert differences(warehouse.config) == []
    assert clickhouse_mart.rows("select count() from cdm.sales_datamart_current")[0][0] > 500
    for metric in metrics.METRICS:
        in_postgres = warehouse.rows(metrics.query(metric, "postgres"))
        in_clickhouse = clickhouse_mart.rows(metrics.query(metric, "clickhouse"))
        assert in_postgres, metric
        assert metrics.normalised(in_clickhouse) == metrics.normalised(in_postgres), metric


def test_a_rerun_with_nothing_new_changes_nothing(warehouse, clickhouse_mart):
    seed_shop(warehouse)
    build_both(warehouse, clickhouse_mart)
    before = clickhouse_mart.rows("select * from cdm.sales_datamart order by sale_id, valid_from")
    watermark = warehouse.rows("select * from sl.load_metadata where table_name like 'clickhouse.%'")

    build_both(warehouse, clickhouse_mart)

    # not even an unmerged duplicate: no row was appended
    assert clickhouse_mart.rows("select * from cdm.sales_datamart order by sale_id, valid_from") == before
    after = warehouse.rows("select * from sl.load_metadata where table_name like 'clickhouse.%'")
    assert [row[:2] for row in after] == [row[:2] for row in watermark]
    assert differences(warehouse.config) == []


def test_a_corrected_sale_line_shows_once_with_its_new_values(warehouse, clickhouse_mart):
    seed_shop(warehouse)
    build_both(warehouse, clickhouse_mart)
    warehouse.execute(
        "update raw.sales set quantity = 3, updated_at = '2024-01-03 10:00' where sale_id = 100"
    )
    build_both(warehouse, clickhouse_mart)

    assert current_line(clickhouse_mart, 100) == [(3, "60")]
    versions = clickhouse_mart.rows(
        "select sale_id, quantity, is_current from cdm.sales_datamart final where sale_id = 100 order by valid_from"
    )
    assert versions == [(100, 2, False), (100, 3, True)]  # the first version closed in place
    assert differences(warehouse.config) == []


def test_a_line_whose_customer_arrives_late_appears_after_its_retry(warehouse, clickhouse_mart):
    seed_shop(warehouse)
    warehouse.execute(SALES, (102, 1001, "2024-01-02 15:00", 3, 10, 1, "2024-01-02 15:00"))
    build_both(warehouse, clickhouse_mart)
    assert current_line(clickhouse_mart, 102) == []  # waits in PostgreSQL's cdm.sales_rejected

    # the customer arrives after ClickHouse's watermark moved past the line's own timestamps
    warehouse.execute(SALES, (103, 1002, "2024-01-04 09:00", 1, 11, 1, "2024-01-04 09:00"))
    build_both(warehouse, clickhouse_mart)
    warehouse.execute(CUSTOMERS, (3, "Cy", "Noor", "1985-07-01", "2024-01-05 08:00"))
    build_both(warehouse, clickhouse_mart)

    assert current_line(clickhouse_mart, 102) == [(1, "20")]
    assert differences(warehouse.config) == []


def test_deletions_from_the_landing_zone_reach_dds_the_mart_and_clickhouse(
    warehouse, clickhouse_mart, tmp_path
):
    """A deleted customer, product and sale line, exported as files with `deleted = true` (CONTRACT.md
    section 7), ingested and built: each key leaves RAW, its DDS version closes at the deletion, the line
    leaves the current mart in both engines, and the engines still reconcile."""
    from tshop.config import settings
    from tshop.ingest import ingest

    seed_shop(warehouse)
    build_both(warehouse, clickhouse_mart)
    landing = tmp_path / "landing"
    exports = {
        "sales": "sale_id,order_id,sold_at,customer_id,product_id,quantity,updated_at,deleted\n"
        "101,1000,2024-01-02 12:00:00,1,11,1,2024-01-03 08:00:00,true\n",
        "customer": "customer_id,first_name,last_name,birth_date,updated_at,deleted\n"
        "2,Bob,Ray,2006-03-01,2024-01-03 09:00:00,true\n",
        "product": "product_id,name,category,size,price,updated_at,deleted\n"
        "11,Slim jeans,Jeans,32,60.00,2024-01-03 10:00:00,true\n",
    }
    for table, text in exports.items():
        (landing / "incoming" / table).mkdir(parents=True)
        (landing / "incoming" / table / f"{table}-deletions.csv").write_text(text)
    config = settings({**warehouse.config.env, "TSHOP_LANDING_URL": landing.as_uri()})
    ingest(config, run_id="test_deletions")
    assert warehouse.rows("select table_name, key_value from raw.deleted_key order by 1") == [
        ("customer", 2),
        ("product", 11),
        ("sales", 101),
    ]
    assert warehouse.rows("select count(*) from raw.sales where sale_id = 101") == [(0,)]
    build_both(warehouse, clickhouse_mart)

    for table, key, key_value, deleted_at in (
        ("customer", "customer_id", 2, "2024-01-03 09:00:00"),
        ("product", "product_id", 11, "2024-01-03 10:00:00"),
        ("sales", "sale_id", 101, "2024-01-03 08:00:00"),
    ):
        assert warehouse.rows(
            f"select valid_to::text from dds.{table} where {key} = %s order by valid_from", (key_value,)
        ) == [(deleted_at,)], table
    assert current_line(clickhouse_mart, 101) == []
    assert current_line(clickhouse_mart, 100) == [(2, "40")]
    assert clickhouse_mart.rows(
        "select is_current, toString(valid_to) from cdm.sales_datamart final where sale_id = 101"
    ) == [(False, "2024-01-03 08:00:00.000000")]
    assert clickhouse_mart.rows("select count() from cdm.fct_sales where sale_id = 101") == [(0,)]
    assert differences(warehouse.config) == []
