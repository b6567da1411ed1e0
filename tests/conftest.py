"""Session fixtures: real servers, started once per test session.

Tests never touch the services of `make services`: they run their own in `.state/test` on their own ports,
unless TSHOP_PG_DSN / TSHOP_CLICKHOUSE_URL point them at external servers. TSHOP_TEST_STATE_DIR,
TSHOP_TEST_PG_PORT and TSHOP_TEST_CLICKHOUSE_PORT move them, so two test sessions can run side by side. The session stops them when it
ends; their data stays in `.state/test` for a look after a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tshop.config import REPO_ROOT, Settings, settings

TEST_ENV = {
    "TSHOP_STATE_DIR": os.environ.get("TSHOP_TEST_STATE_DIR", str(REPO_ROOT / ".state" / "test")),
    "TSHOP_PG_PORT": os.environ.get("TSHOP_TEST_PG_PORT", "25432"),
    "TSHOP_CLICKHOUSE_PORT": os.environ.get("TSHOP_TEST_CLICKHOUSE_PORT", "28123"),
}


@pytest.fixture(scope="session")
def test_settings() -> Settings:
    """Settings of the test services: the caller's environment with the test state folder and ports."""
    return settings({**os.environ, **TEST_ENV})


@pytest.fixture(scope="session")
def pg_dsn(test_settings: Settings):
    """DSN of a running PostgreSQL with the warehouse database (external when TSHOP_PG_DSN is set)."""
    from tshop.services.postgres import LocalPostgres

    server = LocalPostgres(test_settings)
    server.start()
    yield test_settings.pg_dsn()
    server.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def clickhouse_url(test_settings: Settings):
    """URL of a running ClickHouse HTTP interface (the local chDB endpoint unless TSHOP_CLICKHOUSE_URL is set)."""
    from tshop.services.clickhouse import LocalClickHouse

    server = LocalClickHouse(test_settings)
    server.start()
    yield test_settings.clickhouse_url
    server.stop()


@pytest.fixture
def clickhouse_client(test_settings: Settings, clickhouse_url: str):
    from tshop import clients

    client = clients.clickhouse(test_settings)
    yield client
    client.close()
