"""Issue 5 benchmark: the warehouse's initial build, one following day's increment, and the same increment
with unfiltered snapshot sources (dbt's default: every snapshot reads all of RAW).

On a generated shop (default the full scale: 5,000,000 customers, 90 days), `dbt build` of the PostgreSQL
project without its data and unit tests (those scan whole tables by design and are timed apart), then the
next business day is generated and built twice from the same starting point: once as the project runs
(snapshots read RAW past the SL watermark) and once on a copy of the database with
`unfiltered_snapshot_sources`. Both must end with the same DDS and CDM rows. Targets: the increment costs at
most 5% of the initial build and at least 10x less than the unfiltered one.

Knobs: BENCH_WAREHOUSE_CUSTOMERS (default 5,000,000), BENCH_WAREHOUSE_DAYS (default 90).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time

import psycopg
from psycopg import sql

from bench.bench_clickhouse_endpoint import free_port
from bench.report import markdown_table, write_section
from datagen import ShopSimulation
from tshop.config import REPO_ROOT, settings
from tshop.dbt import run_dbt
from tshop.services.postgres import LocalPostgres

STATE = REPO_ROOT / ".state" / "bench" / "warehouse"
CUSTOMERS = int(os.environ.get("BENCH_WAREHOUSE_CUSTOMERS", "5000000"))
DAYS = int(os.environ.get("BENCH_WAREHOUSE_DAYS", "90"))
FIRST_DAY = dt.date(2024, 1, 1)
BUILD = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
TABLES = ("dds.customer", "dds.product", "dds.sales", "cdm.sales_datamart")


def timed_build(config, *extra: str) -> float:
    started = time.perf_counter()
    run_dbt(config, [*BUILD, *extra])
    return time.perf_counter() - started


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    config = settings({**os.environ, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(free_port())})
    server = LocalPostgres(config)
    server.start()
    try:
        dsn = config.pg_dsn()
        copy_dsn = config.pg_dsn(database="unfiltered")
        warehouse = settings({**config.env, "TSHOP_PG_DSN": dsn})
        unfiltered = settings({**config.env, "TSHOP_PG_DSN": copy_dsn})
        simulation = ShopSimulation(dsn, seed=7, initial_customers=CUSTOMERS)

        started = time.perf_counter()
        simulation.run(FIRST_DAY, DAYS)
        generate_seconds = time.perf_counter() - started
        initial = timed_build(warehouse)
        before = counts(dsn)

        simulation.run(FIRST_DAY + dt.timedelta(days=DAYS), 1)
        with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database unfiltered template {}").format(sql.Identifier(config.pg_database))
            )
        increment = timed_build(warehouse)
        unfiltered_increment = timed_build(unfiltered, "--vars", "{unfiltered_snapshot_sources: true}")
        after, after_unfiltered = counts(dsn), counts(copy_dsn)
        if after != after_unfiltered:
            raise SystemExit(f"the two increments disagree: {after} vs {after_unfiltered}")
        with psycopg.connect(dsn) as conn:
            raw_rows = {
                table: conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
                for table in ("customer", "product", "sales")
            }
    finally:
        server.stop()
        shutil.rmtree(STATE, ignore_errors=True)

    rows = [
        ("initial build", f"{DAYS} days", f"{initial:.1f}", "100%", ""),
        ("daily increment (watermark-filtered sources)", "1 day", f"{increment:.1f}", f"{increment / initial:.1%}", "1.0x"),
        ("same increment, unfiltered snapshot sources", "1 day", f"{unfiltered_increment:.1f}",
         f"{unfiltered_increment / initial:.1%}", f"{unfiltered_increment / increment:.1f}x"),
    ]  # fmt: skip
    new_rows = ", ".join(f"{table} +{after[table] - before[table]:,}" for table in TABLES)
    body = "\n".join(
        [
            f"Shop: {CUSTOMERS:,} initial customers, {DAYS} days (generated in {generate_seconds / 60:.1f} min); RAW "
            + ", ".join(f"raw.{table} {count:,}" for table, count in raw_rows.items())
            + f" rows after the extra day. The increment added {new_rows}.\n",
            markdown_table(
                ["`dbt build` (no tests)", "RAW read", "seconds", "of initial build", "vs increment"], rows
            ),
            "\nTargets: the increment at most 5% of the initial build, and at least 10x cheaper than with unfiltered "
            "sources. Both increments start from copies of the same database and end with the same DDS and CDM rows.",
        ]
    )
    write_section("warehouse", "Warehouse: initial build vs daily increment (issue 5)", body)


if __name__ == "__main__":
    main()
