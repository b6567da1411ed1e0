"""Clients of the two warehouses, configured from the settings."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import clickhouse_connect
import psycopg
from clickhouse_connect.driver.client import Client

from tshop.config import Settings


def clickhouse(config: Settings, role: str = "admin", **kwargs) -> Client:
    """A clickhouse-connect client on the ClickHouse HTTP interface of TSHOP_CLICKHOUSE_URL, logged in as
    `admin`, `writer` or `reader` (tshop/services/clickhouse/access.py)."""
    url = urlsplit(config.clickhouse_url_as(role))
    return clickhouse_connect.get_client(
        host=url.hostname,
        port=url.port or (8443 if url.scheme == "https" else 8123),
        username=unquote(url.username or "default"),
        password=unquote(url.password or ""),
        secure=url.scheme == "https",
        **kwargs,
    )


def postgres(config: Settings, role: str = "admin", **kwargs) -> psycopg.Connection:
    """A connection to the warehouse as one of the roles of `tshop.config.PG_ROLES` (or the superuser)."""
    return psycopg.connect(config.pg_dsn_as(role), **kwargs)
