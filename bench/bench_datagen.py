"""Issue 4 benchmark: the shop simulator against a naive baseline, its load against PostgreSQL's own COPY,
and the full-scale shop.

1. Customer rows per second end to end (generate + load + commit): the naive baseline calls mimesis once
   per row and inserts with psycopg 3's executemany; ours samples mimesis pools with numpy and loads with
   the generator's binary COPY. Same row count, same table. Target: 15x the baseline.
2. The load step alone against the physical limit: PostgreSQL's server-side `COPY FROM` a file holding the
   same rows (written by the server itself, binary), into the same tables with the same constraints and
   indexes. Target: at least 70% of it.
3. Full scale: `tshop-datagen generate` with 5,000,000 customers and 90 days: wall time, rows per table, peak
   RSS of the generator process. Targets: under 10 minutes, under 4 GiB.

Runs on a PostgreSQL of its own (state under .state/bench/datagen, removed afterwards). Knobs:
BENCH_DATAGEN_ROWS (rows for 1 and 2, default 500,000), BENCH_DATAGEN_FULL_CUSTOMERS (default 5,000,000; 0
skips part 3) and BENCH_DATAGEN_FULL_DAYS (default 90).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from mimesis import Locale, Person

from bench.report import markdown_table, write_section
from bench.timing import timed
from datagen.customers import new_customers
from datagen.purchases import day_sales
from datagen.record import IdRanges
from datagen.vocabulary import vocabulary
from datagen.writer import RawWriter, create_raw_tables
from tshop.config import REPO_ROOT, settings
from tshop.services._process import free_port
from tshop.services.postgres import LocalPostgres

STATE = REPO_ROOT / ".state" / "bench" / "datagen"
ROWS = int(os.environ.get("BENCH_DATAGEN_ROWS", "500000"))
FULL_CUSTOMERS = int(os.environ.get("BENCH_DATAGEN_FULL_CUSTOMERS", "5000000"))
FULL_DAYS = int(os.environ.get("BENCH_DATAGEN_FULL_DAYS", "90"))
REGISTERED_FROM = dt.datetime(2023, 3, 4)
SATURDAY = dt.date(2024, 3, 9)


def median_of(repeats: int, prepare: Callable[[], object], action: Callable[[], object]) -> float:
    samples = []
    for _ in range(repeats):
        prepare()
        samples.append(timed(action))
    return statistics.median(samples)


def naive_customers(conn: psycopg.Connection, count: int) -> None:
    """The baseline: one mimesis call per value, one parameter tuple per row, executemany."""
    person = Person(Locale.EN, seed=1)
    clock = random.Random(1)
    rows = []
    for customer_id in range(1, count + 1):
        registered = REGISTERED_FROM + dt.timedelta(seconds=clock.randrange(365 * 86_400))
        birth = person.birthdate(min_year=1940, max_year=2008)
        rows.append((customer_id, person.first_name(), person.last_name(), birth, registered))
    with conn.cursor() as cursor:
        cursor.executemany("insert into raw.customer values (%s, %s, %s, %s, %s)", rows)
    conn.commit()


def vectorised_customers(conn: psycopg.Connection, count: int) -> None:
    """Ours: mimesis pools sampled with numpy into a Polars frame, loaded with binary COPY."""
    frame = new_customers(np.random.default_rng(1), vocabulary(1), 1, count, REGISTERED_FROM, 365)
    RawWriter(conn).append("raw.customer", frame)
    conn.commit()


def end_to_end(conn: psycopg.Connection) -> tuple[list[tuple], float]:
    truncate = lambda: (conn.execute("truncate raw.customer"), conn.commit())  # noqa: E731
    baseline = median_of(1, truncate, lambda: naive_customers(conn, ROWS))
    ours = median_of(3, truncate, lambda: vectorised_customers(conn, ROWS))
    rows = [
        ("baseline: mimesis per row + executemany", f"{baseline:.2f}", f"{ROWS / baseline:,.0f}", "1.0x"),
        (
            "ours: numpy-sampled pools + binary COPY",
            f"{ours:.2f}",
            f"{ROWS / ours:,.0f}",
            f"{baseline / ours:.1f}x",
        ),
    ]
    return rows, baseline


def load_against_server_copy(conn: psycopg.Connection, exchange: Path) -> tuple[list[tuple], float]:
    rng = np.random.default_rng(2)
    frames = {
        "raw.customer": new_customers(rng, vocabulary(2), 1, ROWS, REGISTERED_FROM, 365),
        # a Saturday of a shop big enough for ROWS lines (5% buy, about 2.1 lines each)
        "raw.sales": day_sales(
            rng,
            SATURDAY,
            IdRanges.run(1, int(ROWS / 0.05 / 2.1)),
            np.arange(1, 1001),
            np.full(1000, 1 / 1000),
            1,
            1,
        ),
    }
    rows = []
    server_customer_seconds = 0.0
    for table, frame in frames.items():
        dump = exchange / f"{table}.bin"

        def truncate(table=table) -> None:
            conn.execute(f"truncate {table}")
            conn.commit()

        def ours(table=table, frame=frame) -> None:
            RawWriter(conn).copy(table, frame)
            conn.commit()

        def server(table=table, dump=dump) -> None:
            conn.execute(f"copy {table} from '{dump}' (format binary)")
            conn.commit()

        truncate()
        ours()
        conn.execute(f"copy {table} to '{dump}' (format binary)")  # the same rows, written by the server
        conn.commit()
        ours_seconds = median_of(3, truncate, ours)
        server_seconds = median_of(3, truncate, server)
        if table == "raw.customer":
            server_customer_seconds = server_seconds
        rows.append(
            (table, f"{frame.height:,}", f"{server_seconds:.2f}", f"{ours_seconds:.2f}",
             f"{frame.height / ours_seconds:,.0f}", f"{server_seconds / ours_seconds:.0%}")
        )  # fmt: skip
    return rows, server_customer_seconds


def full_scale(dsn: str) -> tuple[list[tuple], float, int]:
    command = [
        sys.executable, "-m", "datagen.cli", "generate", "--customers", str(FULL_CUSTOMERS),
        "--days", str(FULL_DAYS), "--seed", "7", "--start-date", "2024-01-01", "--dsn", dsn,
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"the full-scale generation failed with exit status {os.waitstatus_to_exitcode(status)}"
        )
    with psycopg.connect(dsn) as conn:
        counts = [
            (table, f"{conn.execute(f'select count(*) from raw.{table}').fetchone()[0]:,}")
            for table in ("customer", "product", "sales", "generated_day")
        ]
    return counts, wall, usage.ru_maxrss * 1024


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    config = settings({**os.environ, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(free_port())})
    server = LocalPostgres(config)
    server.start()
    exchange = Path(tempfile.mkdtemp(prefix="tshop-bench-"))
    exchange.chmod(0o777)  # the server's own COPY TO/FROM runs as the PostgreSQL system user
    try:
        with psycopg.connect(config.pg_dsn()) as conn:
            create_raw_tables(conn)
            conn.commit()
            speed, baseline_seconds = end_to_end(conn)
            load, server_seconds = load_against_server_copy(conn, exchange)
            conn.execute("drop schema raw cascade")
            conn.commit()
        full = full_scale(config.pg_dsn()) if FULL_CUSTOMERS else None
    finally:
        shutil.rmtree(exchange, ignore_errors=True)
        server.stop()
        shutil.rmtree(STATE, ignore_errors=True)

    body = [
        f"### 1. Customer rows end to end ({ROWS:,} rows, generate + load + commit)\n",
        markdown_table(["", "seconds", "rows/s", "vs baseline"], speed),
        f"\nTarget 15x the baseline. PostgreSQL's own server-side COPY of {ROWS:,} such rows into this table "
        f"(table 2) takes {server_seconds:.2f} s, so no client that loads them into this table can beat "
        f"{baseline_seconds / server_seconds:.1f}x the baseline on this machine, before generating a single row.\n",
        "### 2. Load step against PostgreSQL's server-side COPY FROM a file (same rows, same table)\n",
        markdown_table(
            ["table", "rows", "server COPY FROM file s", "ours s", "ours rows/s", "ours / server COPY"], load
        ),
        "\nTarget at least 70%. Both include the primary key, the checks and the `updated_at` index; medians of 3.\n",
    ]
    if full:
        counts, wall, rss = full
        body += [
            f"### 3. Full scale: {FULL_CUSTOMERS:,} customers, {FULL_DAYS} days\n",
            markdown_table(["table", "rows"], counts),
            f"\nWall time {wall / 60:.1f} min (target under 10), peak RSS of the generator {rss / 2**30:.2f} GiB "
            "(target under 4; PostgreSQL's own memory is not counted).",
        ]
    write_section("datagen", "Shop simulator (issue 4)", "\n".join(body))


if __name__ == "__main__":
    main()
