"""A generated shop with its PostgreSQL warehouse built, for the benchmarks that read the mart.

Generating and building the full-scale shop takes a quarter of an hour here, so it is kept in
`.state/bench/shop` (its own PostgreSQL data) and reused while its scale matches; `make clean` removes it.
Knobs: BENCH_SHOP_CUSTOMERS (default 5,000,000) and BENCH_SHOP_DAYS (default 90).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from datagen import ShopSimulation
from tshop.config import REPO_ROOT, Settings, settings
from tshop.dbt import run_dbt
from tshop.services._process import free_port
from tshop.services.postgres import LocalPostgres

STATE = REPO_ROOT / ".state" / "bench" / "shop"
CUSTOMERS = int(os.environ.get("BENCH_SHOP_CUSTOMERS", "5000000"))
DAYS = int(os.environ.get("BENCH_SHOP_DAYS", "90"))
BUILD = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
FIRST_DAY = dt.date(2024, 1, 1)


def beside_shop(shop: Settings, state: Path, *ports: str) -> Settings:
    """The built shop's warehouse, with a state folder of the benchmark's own and a free port for each of
    `ports` (its ClickHouse endpoint, its Superset)."""
    return settings(
        {
            **shop.env,
            "TSHOP_PG_DSN": shop.pg_dsn(),
            "TSHOP_STATE_DIR": str(state),
            **{port: str(free_port()) for port in ports},
        }
    )


@contextmanager
def built_shop() -> Iterator[Settings]:
    """Settings of a running PostgreSQL whose warehouse holds the shop, built by `dbt build` (no tests)."""
    config = settings({**os.environ, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(free_port())})
    server = LocalPostgres(config)
    server.start()
    try:
        marker = STATE / "shop.json"
        scale = {"customers": CUSTOMERS, "days": DAYS}
        # bench_warehouse leaves its shop here too, a day or two longer than it generated
        held = json.loads(marker.read_text()) if marker.exists() else {}
        if held.get("customers") != CUSTOMERS or held.get("days", 0) < DAYS:
            marker.unlink(missing_ok=True)
            with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True) as conn:
                name = sql.Identifier(config.pg_database)
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(name))
                conn.execute(sql.SQL("create database {}").format(name))
            print(f"building the benchmark shop: {CUSTOMERS:,} customers, {DAYS} days", flush=True)
            ShopSimulation(config.pg_dsn(), seed=7, initial_customers=CUSTOMERS).run(FIRST_DAY, DAYS)
            run_dbt(config, BUILD)
            marker.write_text(json.dumps(scale))
        yield config
    finally:
        server.stop()
