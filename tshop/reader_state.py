"""What a reader sees of the platform, for comparing two histories: every row of RAW (the contract's columns),
every DDS version, the CDM mart and queue, the star schema and the customer mart, the SL watermarks, and
ClickHouse's current rows and versions and customer mart.

Load times, run ids and transaction ids are left out: they differ between two runs of the same days by
design. A run that failed and was re-run must end with the same reader state as a clean run.
"""

from __future__ import annotations

import psycopg

from tshop import clients
from tshop.config import Settings

MART_VALUES = (
    "sale_id, order_id, sale_date, sold_at, customer_id, customer_name, customer_age, product_id, product_name, "
    "product_category, product_size, product_price, quantity, total_cost, valid_from, valid_to, is_current"
)
CUSTOMER_MONTHLY_VALUES = (
    "month, customer_id, orders, items, revenue, first_purchase_date, last_purchase_date, recency_days, "
    "frequency, monetary, segment, coupon_code, coupon_discount_pct"
)
POSTGRES_QUERIES = {
    "raw.customer": "select customer_id, first_name, last_name, birth_date, updated_at from raw.customer order by 1",
    "raw.product": "select product_id, name, category, size, price, updated_at from raw.product order by 1",
    "raw.sales": "select sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at from raw.sales order by 1",
    "dds.customer": "select customer_id, first_name, last_name, birth_date, valid_from, valid_to from dds.customer order by 1, 5",
    "dds.product": "select product_id, name, category, size, price, valid_from, valid_to from dds.product order by 1, 6",
    "dds.sales": "select sale_id, order_id, quantity, valid_from, valid_to from dds.sales order by 1, 4",
    "cdm.sales_datamart": f"select {MART_VALUES} from cdm.sales_datamart order by sale_id, valid_from",
    "cdm.sales_rejected": "select sale_id, reason from cdm.sales_rejected order by sale_id",
    "cdm.dim_customer": (
        "select customer_key, customer_id, first_name, last_name, birth_date, valid_from, valid_to, is_current"
        " from cdm.dim_customer order by 1"
    ),
    "cdm.dim_product": (
        "select product_key, product_id, name, category, size, price, valid_from, valid_to, is_current"
        " from cdm.dim_product order by 1"
    ),
    "cdm.dim_date": "select * from cdm.dim_date order by date_key",
    "cdm.fct_sales": (
        "select sale_id, order_id, date_key, customer_key, product_key, sold_at, quantity, unit_price, total_cost"
        " from cdm.fct_sales order by 1"
    ),
    "cdm.customer_monthly": f"select {CUSTOMER_MONTHLY_VALUES} from cdm.customer_monthly order by customer_id, month",
    # the watermarks of ClickHouse's copies and of the customer mart are run times (the mart's loaded_at),
    # not data: left out
    "sl.load_metadata": (
        "select table_name, max_updated_at from sl.load_metadata where table_name not like 'clickhouse.%' "
        "and table_name <> 'cdm.customer_monthly' order by table_name"
    ),
}
CLICKHOUSE_QUERIES = {
    "clickhouse current": "select * from cdm.sales_datamart_current order by sale_id",
    "clickhouse versions": (
        "select sale_id, valid_from, valid_to from cdm.sales_datamart final order by sale_id, valid_from"
    ),
    "clickhouse customer_monthly": (
        f"select {CUSTOMER_MONTHLY_VALUES} from cdm.customer_monthly final order by customer_id, month"
    ),
}


def reader_state(config: Settings) -> dict[str, list[tuple]]:
    """Every table a reader sees, in key order, as lists of rows."""
    with psycopg.connect(config.pg_dsn()) as conn:
        found = {name: conn.execute(query).fetchall() for name, query in POSTGRES_QUERIES.items()}
    ch = clients.clickhouse(config)
    try:
        found |= {name: ch.query(query).result_rows for name, query in CLICKHOUSE_QUERIES.items()}
    finally:
        ch.close()
    return found
