"""Issue 5 benchmark: the warehouse's initial build, one following day's increment, and the same increment
with unfiltered snapshot sources (dbt's default: every snapshot reads all of RAW).

On a generated shop (default the full scale: 5,000,000 customers, 90 days), `dbt build` of the PostgreSQL
project without its data and unit tests (those scan whole tables by design), then the next two business
days are generated and built one at a time. The first is also built from a copy of the database taken
before it, with `unfiltered_snapshot_sources`; both must end with the same DDS and CDM rows. Targets: the
increment costs at most 5% of the initial build and at least 10x less than the unfiltered one. The shop
is left in `.state/bench/shop` for bench_clickhouse_mart.

Knobs: BENCH_WAREHOUSE_CUSTOMERS (default 5,000,000), BENCH_WAREHOUSE_DAYS (default 90).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import psycopg
from psycopg import sql

from bench.report import markdown_table, write_section
from bench.shop import BUILD, STATE
from bench.timing import timed
from datagen import ShopSimulation
from tshop.config import settings
from tshop.dbt import run_dbt
from tshop.services._process import free_port
from tshop.services.postgres import LocalPostgres

CUSTOMERS = int(os.environ.get("BENCH_WAREHOUSE_CUSTOMERS", "5000000"))
DAYS = int(os.environ.get("BENCH_WAREHOUSE_DAYS", "90"))
FIRST_DAY = dt.date(2024, 1, 1)
TABLES = ("dds.customer", "dds.product", "dds.sales", "cdm.sales_datamart")


def timed_build(config, *extra: str) -> float:
    return timed(lambda: run_dbt(config, [*BUILD, *extra]))


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}


def main() -> None:
    # the shop is left in bench/shop.py's folder for the benchmarks that read the mart
    shutil.rmtree(STATE, ignore_errors=True)
    config = settings({**os.environ, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(free_port())})
    server = LocalPostgres(config)
    server.start()
    try:
        dsn = config.pg_dsn()
        admin_dsn = config.pg_dsn(database="postgres")
        warehouse = settings({**config.env, "TSHOP_PG_DSN": dsn})
        unfiltered = settings({**config.env, "TSHOP_PG_DSN": config.pg_dsn(database="unfiltered")})
        simulation = ShopSimulation(dsn, seed=7, initial_customers=CUSTOMERS)

        generate_seconds = timed(lambda: simulation.run(FIRST_DAY, DAYS))
        initial = timed_build(warehouse)
        initial_lines = counts(dsn)["dds.sales"]

        increments = []  # (day, seconds, rows added per table)
        for offset in (0, 1):
            day = FIRST_DAY + dt.timedelta(days=DAYS + offset)
            before = counts(dsn)
            simulation.run(day, 1)
            if offset == 0:
                with psycopg.connect(admin_dsn, autocommit=True) as conn:
                    template = sql.Identifier(config.pg_database)
                    conn.execute(sql.SQL("create database unfiltered template {}").format(template))
            seconds = timed_build(warehouse)
            after = counts(dsn)
            increments.append((day, seconds, {table: after[table] - before[table] for table in TABLES}))
            if offset == 0:
                unfiltered_seconds = timed_build(unfiltered, "--vars", "{unfiltered_snapshot_sources: true}")
                if counts(unfiltered.pg_dsn()) != after:
                    raise SystemExit(f"the two increments disagree: {after} vs {counts(unfiltered.pg_dsn())}")
                with psycopg.connect(admin_dsn, autocommit=True) as conn:
                    conn.execute("drop database unfiltered")
        with psycopg.connect(dsn) as conn:
            raw_rows = {
                table: conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
                for table in ("customer", "product", "sales")
            }
        (STATE / "shop.json").write_text(json.dumps({"customers": CUSTOMERS, "days": DAYS + 2}))
    finally:
        server.stop()

    sunday_seconds = increments[0][1]
    rows = [("initial build", f"{DAYS} days", f"{initial_lines:,}", f"{initial:.1f}", "100%", "")]
    for day, seconds, added in increments:
        rows.append(
            (f"daily increment, {day:%a %Y-%m-%d}", "1 day", f"{added['dds.sales']:,}", f"{seconds:.1f}",
             f"{seconds / initial:.1%}", f"{seconds / sunday_seconds:.2f}x")
        )  # fmt: skip
        if day == increments[0][0]:
            rows.append(
                (f"the same {day:%a} increment, unfiltered snapshot sources", "all of RAW",
                 f"{added['dds.sales']:,}", f"{unfiltered_seconds:.1f}", f"{unfiltered_seconds / initial:.1%}",
                 f"{unfiltered_seconds / seconds:.2f}x")
            )  # fmt: skip
    body = "\n".join(
        [
            f"Shop: {CUSTOMERS:,} initial customers, {DAYS} days (generated in {generate_seconds / 60:.1f} min), "
            "then two more days, each built on its own; RAW after them: "
            + ", ".join(f"raw.{table} {count:,}" for table, count in raw_rows.items())
            + ". Weekends sell five times as much as weekdays (5% against 1% of customers), so a Sunday "
            "carries about 2.7% of 90 days' sale lines and a Monday about 0.5%.\n",
            markdown_table(
                [
                    "`dbt build` (no tests)",
                    "RAW read",
                    "new sale line versions",
                    "seconds",
                    "of initial build",
                    "vs the Sunday increment",
                ],
                rows,
            ),  # fmt: skip
            "\nTargets: the increment at most 5% of the initial build, and at least 10x cheaper than with "
            "unfiltered sources. The filtered and unfiltered Sunday increments start from copies of the same "
            "database and end with the same DDS and CDM rows. Tests are left out on both sides: they check "
            "whole tables by design (`make test` runs them).",
        ]
    )
    write_section("warehouse", "Warehouse: initial build vs daily increment (issue 5)", body)


if __name__ == "__main__":
    main()
