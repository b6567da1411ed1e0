"""What a reader sees of the platform, for comparing two histories: every row of RAW (the contract's columns),
every DDS version, the CDM mart and queue, the SL watermarks, and ClickHouse's current rows and versions.

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
POSTGRES_QUERIES = {
    "raw.customer": "select customer_id, first_name, last_name, birth_date, updated_at from raw.customer order by 1",
    "raw.product": "select product_id, name, category, size, price, updated_at from raw.product order by 1",
    "raw.sales": "select sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at from raw.sales order by 1",
    "dds.customer": "select customer_id, first_name, last_name, birth_date, valid_from, valid_to from dds.customer order by 1, 5",
    "dds.product": "select product_id, name, category, size, price, valid_from, valid_to from dds.product order by 1, 6",
    "dds.sales": "select sale_id, order_id, quantity, valid_from, valid_to from dds.sales order by 1, 4",
    "cdm.sales_datamart": f"select {MART_VALUES} from cdm.sales_datamart order by sale_id, valid_from",
    "cdm.sales_rejected": "select sale_id, reason from cdm.sales_rejected order by sale_id",
    # ClickHouse's watermark is a run time (the mart's loaded_at), not data: left out
    "sl.load_metadata": (
        "select table_name, max_updated_at from sl.load_metadata where table_name not like 'clickhouse.%' "
        "order by table_name"
    ),
}
CLICKHOUSE_QUERIES = {
    "clickhouse current": "select * from cdm.sales_datamart_current order by sale_id",
    "clickhouse versions": (
        "select sale_id, valid_from, valid_to from cdm.sales_datamart final order by sale_id, valid_from"
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
