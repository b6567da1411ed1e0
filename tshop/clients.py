"""Clients of the two warehouses, configured from the settings."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import clickhouse_connect
import psycopg
from clickhouse_connect.driver.client import Client

from tshop.config import Settings


def clickhouse(config: Settings, **kwargs) -> Client:
    """A clickhouse-connect client on the ClickHouse HTTP interface of TSHOP_CLICKHOUSE_URL."""
    url = urlsplit(config.clickhouse_url)
    return clickhouse_connect.get_client(
        host=url.hostname,
        port=url.port or (8443 if url.scheme == "https" else 8123),
        username=unquote(url.username or "default"),
        password=unquote(url.password or ""),
        secure=url.scheme == "https",
        **kwargs,
    )


def postgres(config: Settings, **kwargs) -> psycopg.Connection:
    return psycopg.connect(config.pg_dsn(), **kwargs)
