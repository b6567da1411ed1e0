"""kill -9 of `tshop ingest` in the middle of a large file, then a re-run, ends exactly like one clean ingest:
the killed file's transaction leaves nothing (no RAW row, no rejected row, no sl.landing_file row), the
files before it stay ingested once, and the re-run takes the killed file up again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import polars as pl
import psycopg
import pytest
from psycopg import sql

from datagen.writer import create_raw_tables
from tshop.config import settings
from tshop.ingest import ingest
from tshop.ingest.run import APPLICATION_NAME

ROWS = 2_000_000

# what a reader of RAW and SL sees, without load times, transaction ids and run ids
STATE = {
    "customer": "select count(*), sum(hashtext(row(customer_id, first_name, last_name, birth_date, updated_at)::text)) from raw.customer",
    "sales": "select count(*), sum(hashtext(row(sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at)::text)) from raw.sales",
    "rejected": "select count(*), sum(hashtext(row(table_name, file_path, line_number, reason, row_data)::text)) from raw.rejected_row",
    "deleted": "select count(*), sum(hashtext(row(table_name, key_value, deleted_at)::text)) from raw.deleted_key",
    "landing_file": """select coalesce(array_agg(row(file_path, checksum, table_name, size_bytes, status, rows_read,
                           rows_loaded, rows_rejected, error, rows_removed)::text order by file_path), '{}')
                       from sl.landing_file""",
}  # fmt: skip


def _database(test_settings, pg_dsn: str, name: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = test_settings.pg_dsn(database=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
        conn.execute(
            "insert into raw.sales select i, i, timestamp '2024-01-01', i, i, 1, timestamp '2024-01-01' "
            "from generate_series(1, 1000) i"
        )
    return dsn


def _state(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchone() for name, query in STATE.items()}


def _large_sales() -> pl.DataFrame:
    ids = np.arange(1, ROWS + 1)
    start = np.datetime64("2024-03-01T00:00:00", "us")
    return pl.DataFrame(
        {
            "sale_id": ids,  # overlaps the 1,000 sales already in RAW: newer versions of them
            "order_id": ids // 3,
            "sold_at": start + (ids % 86_400).astype("timedelta64[s]"),
            "customer_id": ids % 5000 + 1,
            "product_id": ids % 300 + 1,
            "quantity": np.where(ids % 100_000 == 7, 0, ids % 4 + 1).astype(np.int32),  # 20 bad rows
            "updated_at": start + (ids % 86_400).astype("timedelta64[s]"),
        }
    )


@pytest.mark.slow
def test_kill_9_mid_file_then_a_rerun_equals_a_clean_ingest(test_settings, pg_dsn, landing):
    landing.drop(
        "incoming/customer/a.csv",
        landing.csv(
            "customer_id,first_name,last_name,birth_date,updated_at",
            "1,Ann,Lee,1990-05-01,2024-03-05 10:00:00",
        ),
    )
    landing.drop("incoming/sales/big.parquet", landing.parquet(_large_sales()))
    landing.drop(
        "incoming/sales/z.csv", landing.csv("sale_id,updated_at,deleted", f"{ROWS},2024-03-09 00:00:00,true")
    )
    killed_dsn = _database(test_settings, pg_dsn, "tshop_ingest_killed")
    clean_dsn = _database(test_settings, pg_dsn, "tshop_ingest_clean")
    env = {**test_settings.env, "TSHOP_LANDING_URL": landing.root.as_uri()}

    process = subprocess.Popen(
        [sys.executable, "-m", "tshop.cli", "ingest", "--run-id", "killed"],
        env={**os.environ, **env, "TSHOP_PG_DSN": killed_dsn},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                busy = watcher.execute(
                    """select count(*) from pg_stat_activity
                       where application_name = %s and datname = 'tshop_ingest_killed' and xact_start is not null
                         and (query ilike 'copy raw.sales %%' or query ilike 'copy ingest_sales %%'
                              or query ilike 'insert into raw.sales%%')""",
                    (APPLICATION_NAME,),
                ).fetchone()[0]
                if busy:
                    os.kill(process.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
            assert process.wait(timeout=30) == -signal.SIGKILL, (
                "the ingest finished before it could be killed"
            )
            # the server ends the dead client's session: its transaction rolled back, its lock released
            while watcher.execute(
                "select count(*) from pg_stat_activity where application_name = %s and datname = 'tshop_ingest_killed'",
                (APPLICATION_NAME,),
            ).fetchone()[0]:
                time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()

    after_kill = _state(killed_dsn)
    assert after_kill["sales"][0] == 1000  # nothing of the killed file
    assert after_kill["rejected"][0] == 0
    with psycopg.connect(killed_dsn) as conn:
        assert conn.execute("select file_path from sl.landing_file").fetchall() == [
            ("incoming/customer/a.csv",)
        ]

    rerun = ingest(settings({**env, "TSHOP_PG_DSN": killed_dsn}), "rerun")
    assert [f.path for f in rerun.files] == ["incoming/sales/big.parquet", "incoming/sales/z.csv"]
    assert rerun.skipped == 1
    clean = ingest(settings({**env, "TSHOP_PG_DSN": clean_dsn}), "clean")
    assert [(f.rows_loaded, f.rows_rejected) for f in clean.files] == [(1, 0), (ROWS - 20, 20), (1, 0)]
    assert _state(killed_dsn) == _state(clean_dsn)
    assert _state(clean_dsn)["deleted"][0] == 1
