"""Session fixtures: real servers, started once per test session.

Tests never touch the services of `make services`: they run their own in `.state/test` on their own ports,
unless TSHOP_PG_DSN / TSHOP_CLICKHOUSE_URL point them at external servers. TSHOP_TEST_STATE_DIR,
TSHOP_TEST_PG_PORT, TSHOP_TEST_CLICKHOUSE_PORT and TSHOP_TEST_S3_PORT move them, so two test sessions can run side by side. The session stops them when it
ends; their data stays in `.state/test` for a look after a failure.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tshop.config import REPO_ROOT, Settings, settings
from tshop.services._process import free_port

TEST_ENV = {
    "TSHOP_STATE_DIR": os.environ.get("TSHOP_TEST_STATE_DIR", str(REPO_ROOT / ".state" / "test")),
    "TSHOP_PG_PORT": os.environ.get("TSHOP_TEST_PG_PORT", "25432"),
    "TSHOP_CLICKHOUSE_PORT": os.environ.get("TSHOP_TEST_CLICKHOUSE_PORT", "28123"),
    "TSHOP_S3_PORT": os.environ.get("TSHOP_TEST_S3_PORT", "29100"),
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


@pytest.fixture(scope="session")
def s3_env(test_settings: Settings):
    """The standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) of
    a running local S3-compatible server (moto's, tshop/services/s3.py; TSHOP_TEST_S3_PORT moves it)."""
    from tshop.services.s3 import LocalS3

    server = LocalS3(test_settings)
    server.start()
    yield server.client_env()
    server.stop()


@pytest.fixture
def clickhouse_client(test_settings: Settings, clickhouse_url: str):
    from tshop import clients

    client = clients.clickhouse(test_settings)
    yield client
    client.close()


@dataclass
class Receiver:
    """A webhook on 127.0.0.1: answers each POST with the next of `statuses` (then 200), keeps the bodies."""

    port: int
    statuses: list[int] = field(default_factory=list)
    posts: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0001/B0001/hook-token-f00d"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.posts.append(
                {"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)}
            )
            status = found.statuses.pop(0) if found.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", found.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def _clickhouse_rows(config: Settings, query: str) -> list[tuple]:
    from tshop import clients

    client = clients.clickhouse(config)
    try:
        return client.query(query).result_rows
    finally:
        client.close()


@pytest.fixture(scope="session")
def clickhouse_rows():
    """clickhouse_rows(config, query): the rows of a query in the ClickHouse of `config`."""
    return _clickhouse_rows


@pytest.fixture(scope="session")
def build_shop(test_settings: Settings, pg_dsn: str, clickhouse_url: str):
    """build_shop(name, first_day, days, customers, **env): see `_build_shop`."""
    return lambda *args, **env: _build_shop(test_settings, *args, **env)


def _build_shop(
    test_settings: Settings, name: str, first_day, days: int, customers: int, events: bool = False, **env: str
) -> Settings:
    """A warehouse database `name` made anew, `days` generated days from `first_day` (seed 8) built through
    both dbt projects into the test ClickHouse's `cdm` (dropped first); its settings, with `env` on top.
    `events`: the days' clickstream and reviews too, written into a landing folder of the shop's own
    (emptied first) and loaded into ClickHouse's `events` (dropped first)."""
    import shutil

    import psycopg
    from psycopg import sql

    from datagen import ShopSimulation
    from datagen.landing import LandingEventSink
    from datagen.writer import create_raw_tables
    from tshop import clients
    from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
    from tshop.ingest.events import load_events

    with psycopg.connect(test_settings.pg_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = test_settings.pg_dsn(database=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
    if events and "TSHOP_LANDING_URL" not in env:
        landing = test_settings.state_dir / f"landing-{name}"
        shutil.rmtree(landing, ignore_errors=True)
        env = {**env, "TSHOP_LANDING_URL": landing.as_uri()}
    config = settings({**test_settings.env, "TSHOP_PG_DSN": dsn, **env})
    sink = LandingEventSink(config.landing_url) if events else None
    ShopSimulation(config.pg_dsn_as("loader"), seed=8, initial_customers=customers, events=sink).run(
        first_day, days
    )
    client = clients.clickhouse(config)
    try:
        client.command("drop database if exists cdm")
        client.command("drop database if exists events")
    finally:
        client.close()
    run_dbt(config, ["build"])
    run_dbt(config, ["build"], project=CLICKHOUSE_PROJECT)
    if events:
        load_events(config, run_id=f"test_{name}")
    return config
