"""Reconciliation: ClickHouse's current view against PostgreSQL's current mart rows.

The same aggregates are computed on both sides and compared exactly: the row count, the sums, revenue per
day and per category. The DAG's last task runs it; a mismatch fails the run and says where.
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
    ch = clients.clickhouse(config)
    try:
        with clients.postgres(config) as pg:
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
