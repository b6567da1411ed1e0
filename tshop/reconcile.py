"""Reconciliation: ClickHouse's marts against PostgreSQL's.

The same aggregates are computed on both sides and compared exactly: for the flat mart the row count, the
sums, revenue per day and per category; for the star schema the fact table's rows, costs and keys per day,
each dimension's versions, the calendar; for the customer mart its rows, revenue per month and segment and
its coupons. The DAG's reconcile_clickhouse task runs it; a mismatch fails the run and says where.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tshop import clients
from tshop.config import Settings

# each check: a name, then the same query in PostgreSQL and in ClickHouse, giving (key, value) rows
CHECKS: dict[str, tuple[str, str]] = {
    "current rows": (
        "select 'all', count(*)::numeric from cdm.sales_datamart where is_current",
        "select 'all', toDecimal128(count(), 0) from cdm.sales_datamart_current",
    ),
    "sum of total_cost": (
        "select 'all', coalesce(sum(total_cost), 0) from cdm.sales_datamart where is_current",
        "select 'all', toDecimal128(sum(total_cost), 2) from cdm.sales_datamart_current",
    ),
    "sum of quantity": (
        "select 'all', coalesce(sum(quantity), 0)::numeric from cdm.sales_datamart where is_current",
        "select 'all', toDecimal128(sum(quantity), 0) from cdm.sales_datamart_current",
    ),
    "distinct sale lines": (
        "select 'all', count(distinct sale_id)::numeric from cdm.sales_datamart where is_current",
        "select 'all', toDecimal128(uniqExact(sale_id), 0) from cdm.sales_datamart_current",
    ),
    "revenue per day": (
        "select sale_date::text, sum(total_cost) from cdm.sales_datamart where is_current group by 1",
        "select toString(sale_date), toDecimal128(sum(total_cost), 2) from cdm.sales_datamart_current group by 1",
    ),
    "revenue per category": (
        "select product_category, sum(total_cost) from cdm.sales_datamart where is_current group by 1",
        "select toString(product_category), toDecimal128(sum(total_cost), 2) from cdm.sales_datamart_current group by 1",
    ),
    # the star schema: a sum of keys per day checks that every line points at the same versions on both sides
    "fct_sales lines per day": (
        "select date_key::text, count(*)::numeric from cdm.fct_sales group by 1",
        "select toString(date_key), toDecimal128(count(), 0) from cdm.fct_sales group by 1",
    ),
    "fct_sales total_cost per day": (
        "select date_key::text, sum(total_cost) from cdm.fct_sales group by 1",
        "select toString(date_key), toDecimal128(sum(total_cost), 2) from cdm.fct_sales group by 1",
    ),
    "fct_sales keys per day": (
        "select date_key::text, sum(customer_key::numeric) + 3 * sum(product_key::numeric) from cdm.fct_sales group by 1",
        "select toString(date_key), toDecimal128(sum(toInt128(customer_key)) + 3 * sum(toInt128(product_key)), 0)"
        " from cdm.fct_sales group by 1",
    ),
    "dimension versions": (
        "select 'customer', count(*)::numeric from cdm.dim_customer"
        " union all select 'customer current', count(*) filter (where is_current) from cdm.dim_customer"
        " union all select 'customer keys', coalesce(sum(customer_key::numeric), 0) from cdm.dim_customer"
        " union all select 'product', count(*) from cdm.dim_product"
        " union all select 'product current', count(*) filter (where is_current) from cdm.dim_product"
        " union all select 'product keys', coalesce(sum(product_key::numeric), 0) from cdm.dim_product",
        "select 'customer', toDecimal128(count(), 0) from cdm.dim_customer final"
        " union all select 'customer current', toDecimal128(countIf(is_current), 0) from cdm.dim_customer final"
        " union all select 'customer keys', toDecimal128(sum(toInt128(customer_key)), 0) from cdm.dim_customer final"
        " union all select 'product', toDecimal128(count(), 0) from cdm.dim_product final"
        " union all select 'product current', toDecimal128(countIf(is_current), 0) from cdm.dim_product final"
        " union all select 'product keys', toDecimal128(sum(toInt128(product_key)), 0) from cdm.dim_product final",
    ),
    "calendar days": (
        "select 'days', count(*)::numeric from cdm.dim_date"
        " union all select 'weekend days', count(*) filter (where is_weekend) from cdm.dim_date"
        " union all select 'date keys', coalesce(sum(date_key), 0) from cdm.dim_date",
        "select 'days', toDecimal128(count(), 0) from cdm.dim_date"
        " union all select 'weekend days', toDecimal128(countIf(is_weekend), 0) from cdm.dim_date"
        " union all select 'date keys', toDecimal128(sum(date_key), 0) from cdm.dim_date",
    ),
    "customer_monthly revenue per month and segment": (
        "select month::text || ' ' || segment, sum(revenue) from cdm.customer_monthly group by 1",
        "select toString(month) || ' ' || segment, toDecimal128(sum(revenue), 2)"
        " from cdm.customer_monthly final group by 1",
    ),
    "customer_monthly rows per month and segment": (
        "select month::text || ' ' || segment, count(*)::numeric from cdm.customer_monthly group by 1",
        "select toString(month) || ' ' || segment, toDecimal128(count(), 0) from cdm.customer_monthly final group by 1",
    ),
    "customer_monthly coupons": (
        "select 'distinct codes', count(distinct coupon_code)::numeric from cdm.customer_monthly"
        " union all select 'discount points', coalesce(sum(coupon_discount_pct), 0) from cdm.customer_monthly"
        " union all select 'orders to date', coalesce(sum(frequency), 0) from cdm.customer_monthly",
        "select 'distinct codes', toDecimal128(uniqExact(coupon_code), 0) from cdm.customer_monthly final"
        " union all select 'discount points', toDecimal128(sum(coupon_discount_pct), 0) from cdm.customer_monthly final"
        " union all select 'orders to date', toDecimal128(sum(frequency), 0) from cdm.customer_monthly final",
    ),
}


class ReconciliationError(AssertionError):
    """ClickHouse and PostgreSQL disagree; the message lists each difference."""


@dataclass(frozen=True)
class Difference:
    check: str
    key: str
    postgres: Decimal | None
    clickhouse: Decimal | None

    def __str__(self) -> str:
        return f"{self.check} [{self.key}]: PostgreSQL {self.postgres} != ClickHouse {self.clickhouse}"


def differences(config: Settings) -> list[Difference]:
    found: list[Difference] = []
    ch = clients.clickhouse(config, "reader")
    try:
        with clients.postgres(config, "reader") as pg:
            for check, (pg_query, ch_query) in CHECKS.items():
                in_postgres = {str(key): Decimal(value) for key, value in pg.execute(pg_query).fetchall()}
                in_clickhouse = {str(key): Decimal(value) for key, value in ch.query(ch_query).result_rows}
                for key in sorted(in_postgres.keys() | in_clickhouse.keys()):
                    if in_postgres.get(key) != in_clickhouse.get(key):
                        found.append(Difference(check, key, in_postgres.get(key), in_clickhouse.get(key)))
    finally:
        ch.close()
    return found


def reconcile(config: Settings) -> None:
    """Raise ReconciliationError naming every difference; return quietly when both sides agree."""
    found = differences(config)
    if found:
        shown = "\n  ".join(str(difference) for difference in found[:20])
        more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
        raise ReconciliationError(f"ClickHouse does not reconcile with PostgreSQL:\n  {shown}{more}")
