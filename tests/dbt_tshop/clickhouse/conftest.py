"""The ClickHouse mart built by the dbt-clickhouse project from a test's PostgreSQL warehouse."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tshop import clients
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt


@dataclass
class ClickHouseMart:
    warehouse: object
    client: object

    def build(self):
        """`dbt build` of the ClickHouse project: the mart, its current view and their tests."""
        return run_dbt(self.warehouse.config, ["build"], project=CLICKHOUSE_PROJECT)

    def rows(self, query: str) -> list[tuple]:
        return self.client.query(query).result_rows


@pytest.fixture
def clickhouse_mart(warehouse, clickhouse_url):
    """An empty `cdm` database in the test ClickHouse, fed from this test's warehouse, and no `events` (another
    shop's events would enter this one's funnel)."""
    client = clients.clickhouse(warehouse.config)
    for database in ("cdm", "events"):
        client.command(f"drop database if exists {database}")
    yield ClickHouseMart(warehouse, client)
    client.command("drop database if exists cdm")
    client.close()
