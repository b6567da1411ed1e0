"""Issue 21 benchmark: `tshop forget-customer` of 1,000 customers in one operation, per engine.

The shop (seed 7, BENCH_ERASURE_CUSTOMERS initial customers, BENCH_ERASURE_DAYS days from 2024-01-01; default
the full scale, 5,000,000 x 90; `--trial` or BENCH_ERASURE_SCALE=trial for 200,000 x 14) is generated as files
into a landing folder (`--to landing`), ingested into RAW and built through both dbt projects (no tests), on a
PostgreSQL and a ClickHouse endpoint of its own (free ports, under .state/bench-erasure, stopped and deleted at
the end; never the user's services). The landing files are loaded in two ingests and two PostgreSQL builds
(the first day, then the rest), so customers renamed later have two DDS versions, as in a shop built daily.

A first erasure runs right after that build, when dbt's staging table of the mart increment holds every day
built at once; then one more day is generated, ingested and built as the daily pipeline does, and the
erasures below run on that daily state. Each erasure takes BENCH_ERASURE_COUNT (default 1,000) customers
drawn at random (seed 7) among those with sales, distinct between the runs: the first with ClickHouse's lightweight `UPDATE` (patch parts), the second
with `ALTER TABLE ... UPDATE` mutations (`mutations_sync = 2`). Each reports the seconds of each step
(PostgreSQL's transaction, ClickHouse, the landing zone's files) and the rows it rewrote per table, against
the table's rows: the share of each table an erasure rewrites (the target: under a minute, without rewriting
whole tables). A third run of the first customers measures the idempotent re-run (nothing to rewrite).

Writes the section "erasure" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg

from bench.report import markdown_table, write_section
from datagen import ShopSimulation
from datagen.landing import LandingWriter
from datagen.writer import create_raw_tables
from tshop import clients
from tshop.config import REPO_ROOT, Settings, settings
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
from tshop.erasure import forget_customers
from tshop.ingest import ingest
from tshop.services._process import free_port
from tshop.services.clickhouse import LocalClickHouse
from tshop.services.postgres import LocalPostgres

STATE = REPO_ROOT / ".state" / "bench-erasure"
FULL_SCALE = (5_000_000, 90)
TRIAL_SCALE = (200_000, 14)
SEED = 7
FIRST_DAY = dt.date(2024, 1, 1)
BUILD = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
TARGET_SECONDS = 60
FOREIGN = (
    "TSHOP_PG_DSN",
    "TSHOP_CLICKHOUSE_URL",
    "TSHOP_LANDING_URL",
    "TSHOP_STATE_DIR",
    "TSHOP_PG_PORT",
    "TSHOP_CLICKHOUSE_PORT",
)


def bench_settings(pg_port: int, ch_port: int) -> Settings:
    base = {key: value for key, value in os.environ.items() if key not in FOREIGN}
    return settings(
        {**base, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(pg_port),
         "TSHOP_CLICKHOUSE_PORT": str(ch_port), "TSHOP_LANDING_URL": (STATE / "landing").as_uri()}
    )  # fmt: skip


@contextmanager
def servers() -> Iterator[Settings]:
    if STATE.exists():  # a killed earlier run's servers, then its files
        leftover = bench_settings(free_port(), free_port())
        for server in (LocalClickHouse(leftover), LocalPostgres(leftover)):
            with suppress(Exception):
                server.stop()
        shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    config = bench_settings(free_port(), free_port())
    postgres, endpoint = LocalPostgres(config), LocalClickHouse(config)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    try:
        postgres.start()
        endpoint.start()
        # the servers' secrets (roles' passwords) were written on start: read them
        yield bench_settings(config.pg_port, config.clickhouse_port)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for server in (endpoint, postgres):
            with suppress(Exception):
                server.stop()
        if os.environ.get("BENCH_ERASURE_KEEP") != "1":
            shutil.rmtree(STATE, ignore_errors=True)


def build_shop(config: Settings, customers: int, days: int) -> dict[str, float]:
    seconds = {}
    with psycopg.connect(config.pg_dsn_as("loader"), autocommit=True) as conn:
        create_raw_tables(conn)
    started = time.perf_counter()
    ShopSimulation(LandingWriter(config.landing_url), seed=SEED, initial_customers=customers).run(
        FIRST_DAY, 1
    )
    ingest(config, run_id="bench_erasure_1")
    run_dbt(config, BUILD)
    ShopSimulation(LandingWriter(config.landing_url), seed=SEED, initial_customers=customers).run(
        FIRST_DAY + dt.timedelta(days=1), days - 1
    )
    ingest(config, run_id="bench_erasure_2")
    run_dbt(config, BUILD)
    run_dbt(config, BUILD, project=CLICKHOUSE_PROJECT)
    seconds["build"] = time.perf_counter() - started
    return seconds


def next_day(config: Settings, customers: int, days: int) -> float:
    """One more day generated, ingested and built, as the daily pipeline leaves a shop: its staging tables
    (cdm.sales_datamart_increment) then hold that day, not the build of all the days before."""
    started = time.perf_counter()
    ShopSimulation(LandingWriter(config.landing_url), seed=SEED, initial_customers=customers).run(
        FIRST_DAY + dt.timedelta(days=days), 1
    )
    ingest(config, run_id="bench_erasure_3")
    run_dbt(config, BUILD)
    run_dbt(config, BUILD, project=CLICKHOUSE_PROJECT)
    return time.perf_counter() - started


def table_rows(config: Settings) -> dict[str, int]:
    rows = {}
    with psycopg.connect(config.pg_dsn()) as conn:
        for table in ("raw.customer", "dds.customer", "cdm.dim_customer", "cdm.sales_datamart"):
            rows[table] = conn.execute(f"select count(*) from {table}").fetchone()[0]
    client = clients.clickhouse(config)
    try:
        for table in ("cdm.dim_customer", "cdm.sales_datamart"):
            rows[f"clickhouse:{table}"] = client.query(f"select count() from {table}").result_rows[0][0]
    finally:
        client.close()
    landing = STATE / "landing"
    rows["landing:customer files"] = sum(
        1 for path in (landing / "incoming" / "customer").rglob("*.csv") for _ in path.open()
    ) - sum(1 for _ in (landing / "incoming" / "customer").rglob("*.csv"))
    return rows


def draw(config: Settings, count: int, sets: int) -> list[list[int]]:
    """`sets` distinct sets of `count` customers with sales."""
    with psycopg.connect(config.pg_dsn()) as conn:
        ids = [
            row[0] for row in conn.execute("select distinct customer_id from cdm.sales_datamart order by 1")
        ]
    chosen = random.Random(SEED).sample(ids, sets * count)
    return [sorted(chosen[start : start + count]) for start in range(0, sets * count, count)]


def erase(config: Settings, label: str, ids: list[int], mode: str) -> tuple[str, object, float]:
    started = time.perf_counter()
    report = forget_customers(
        config,
        ids,
        run_id="bench_erasure_" + "_".join(word for word in label.split() if word.isalnum()),
        clickhouse_update=mode,
    )
    total = time.perf_counter() - started
    assert report.ok, report.lines()
    print(label, "\n".join(report.lines()), flush=True)
    return label, report, total


def slowest_tables(report) -> str:
    """PostgreSQL's seconds per table, the slowest first."""
    timed = sorted(report.postgres_seconds.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in timed[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial", action="store_true", help="200,000 customers x 14 days")
    args = parser.parse_args()
    trial = args.trial or os.environ.get("BENCH_ERASURE_SCALE") == "trial"
    customers, days = TRIAL_SCALE if trial else FULL_SCALE
    customers = int(os.environ.get("BENCH_ERASURE_CUSTOMERS", customers))
    days = int(os.environ.get("BENCH_ERASURE_DAYS", days))
    count = int(os.environ.get("BENCH_ERASURE_COUNT", "1000"))
    load = [os.getloadavg()[0]]
    with servers() as config:
        print(f"building the shop: {customers:,} customers, {days} days", flush=True)
        built = build_shop(config, customers, days)
        print(f"  built in {built['build']:.0f} s", flush=True)
        first, second, after_backfill = draw(config, count, 3)
        # right after the build of all the days at once: its staging tables hold every day of it
        backfill = erase(
            config,
            f"right after the {days - 1}-day build (lightweight UPDATE)",
            after_backfill,
            "lightweight",
        )
        daily = next_day(config, customers, days)
        print(f"  one more day built in {daily:.0f} s", flush=True)
        sizes = table_rows(config)
        runs = [
            erase(config, label, ids, mode)
            for label, ids, mode in (
                ("lightweight UPDATE", first, "lightweight"),
                ("ALTER TABLE ... UPDATE (mutation)", second, "mutation"),
                ("again (idempotent re-run)", first, "lightweight"),
            )
        ]
        runs.append(backfill)
    load.append(os.getloadavg()[0])
    rows = []
    for label, report, total in runs:
        landing_rows = sum(report.landing.values())
        rows.append(
            [
                label,
                f"{report.seconds['postgres']:.2f}",
                f"{report.seconds['clickhouse']:.2f}",
                f"{report.seconds['landing']:.2f}",
                f"{total:.2f}",
                "yes" if total < TARGET_SECONDS else "no",
                f"{sum(report.postgres.values()):,}",
                f"{sum(report.clickhouse.values()):,}",
                f"{landing_rows:,} in {sum(1 for rows in report.landing.values() if rows)} file(s)",
                slowest_tables(report),
            ]
        )
    first_report = runs[0][1]
    per_table = []
    for table, total_rows in sizes.items():
        if table.startswith("clickhouse:"):
            rewritten = first_report.clickhouse.get(table.removeprefix("clickhouse:"), 0)
        elif table.startswith("landing:"):
            rewritten = sum(
                rows for name, rows in first_report.landing.items() if name.startswith("incoming/")
            )
        else:
            rewritten = first_report.postgres.get(table, 0)
        share = rewritten / total_rows if total_rows else 0
        per_table.append([table, f"{total_rows:,}", f"{rewritten:,}", f"{share:.4%}"])
    body = (
        f"{count:,} customers erased in one `tshop forget-customer` (tshop/erasure.py) on a shop of "
        f"{customers:,} customers and {days} days{' (trial scale)' if trial else ''}, generated as landing files, "
        f"ingested and built through both dbt projects in {built['build']:.0f} s (the first day, then the "
        f"{days - 1} others at once), then one more day built as the daily pipeline builds it ({daily:.0f} s). "
        "The first three runs erase on that daily state; the last ran right after the build of the "
        f"{days - 1} days at once, when dbt's staging table `cdm.sales_datamart_increment` (which carries "
        "`customer_name`, and is rebuilt by every run) held all of them. Load average "
        f"{load[0]:.2f} at the start, {load[1]:.2f} at the end (above 2: something else shared the 2 cores). "
        f"Seconds per step, and rows rewritten (target: the whole erasure under {TARGET_SECONDS} s):\n\n"
        + markdown_table(
            [
                "run",
                "PostgreSQL s",
                "ClickHouse s",
                "landing s",
                "total s",
                "< 1 min",
                "PG rows",
                "CH rows",
                "landing rows",
                "PostgreSQL's slowest tables, s",
            ],
            rows,
        )  # fmt: skip
        + "\n\nRows rewritten by the first erasure against each table's rows (no table is rewritten whole; "
        "ClickHouse's lightweight update writes patch parts of the changed rows only, a mutation rewrites the "
        "changed columns of every part holding one of the customers):\n\n"
        + markdown_table(["table", "rows", "rewritten", "share"], per_table)
    )
    write_section("erasure", "Erasure on request (tshop forget-customer)", body)


if __name__ == "__main__":
    main()
