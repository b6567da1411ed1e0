"""Fixtures of the ingest's tests: a warehouse database of their own, emptied before each test and seeded with
a few RAW rows of every table that no test means to change (each test's teardown checks they are intact), a
landing folder, and helpers to drop files and read RAW back."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psycopg
import pytest
from psycopg import sql

from datagen.writer import create_raw_tables
from tshop.config import Settings, settings
from tshop.ingest.run import LANDING_FILE_DDL

DATABASE = "tshop_ingest_test"

# RAW rows already there before any file lands: keys 1-3 of each table
BASELINE = {
    "customer": """insert into raw.customer (customer_id, first_name, last_name, birth_date, updated_at)
                   select i, 'Base', 'Line' || i, date '1980-01-01', timestamp '2024-01-01 00:00:00'
                   from generate_series(1, 3) i""",
    "product": """insert into raw.product (product_id, name, category, size, price, updated_at)
                  select i, 'Item ' || i, 'shoes', '42', 10.00 * i, timestamp '2024-01-01 00:00:00'
                  from generate_series(1, 3) i""",
    "sales": """insert into raw.sales (sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at)
                select i, i, timestamp '2024-01-01 00:00:00', i, i, 1, timestamp '2024-01-01 00:00:00'
                from generate_series(1, 3) i""",
}
KEYS = {"customer": "customer_id", "product": "product_id", "sales": "sale_id"}


@pytest.fixture(scope="session")
def ingest_dsn(test_settings: Settings, pg_dsn: str) -> str:
    """A database of the ingest tests' own, with RAW and sl.landing_file."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    dsn = test_settings.pg_dsn(database=DATABASE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
        conn.execute(LANDING_FILE_DDL.read_text())
    return dsn


@dataclass
class Warehouse:
    dsn: str
    # baseline keys a test changes on purpose: (table, key)
    touched: set[tuple[str, int]] = field(default_factory=set)

    def query(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()

    def rows(self, table: str) -> list[tuple]:
        """RAW's rows of `table` without RAW's own columns (loaded_at, loaded_xid), by key."""
        columns = {
            "customer": "customer_id, first_name, last_name, birth_date, updated_at",
            "product": "product_id, name, category, size, price, updated_at",
            "sales": "sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at",
        }[table]
        return self.query(f"select {columns} from raw.{table} order by 1")

    def row(self, table: str, key: int) -> tuple | None:
        return next((row for row in self.rows(table) if row[0] == key), None)

    def landing_files(self) -> list[dict]:
        with psycopg.connect(self.dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return cursor.execute("select * from sl.landing_file order by file_path, ingested_at").fetchall()

    def rejected(self) -> list[tuple]:
        return self.query(
            "select table_name, file_path, line_number, reason, row_data from raw.rejected_row "
            "order by file_path, line_number"
        )

    def deleted(self) -> list[tuple]:
        return self.query("select table_name, key_value, deleted_at from raw.deleted_key order by 1, 2, 3")


@pytest.fixture
def warehouse(ingest_dsn: str):
    """The tests' database emptied and seeded with the baseline; after the test, the baseline rows it did not
    touch on purpose are still there, unchanged: nothing already in RAW is lost."""
    with psycopg.connect(ingest_dsn, autocommit=True) as conn:
        conn.execute(
            "truncate raw.customer, raw.product, raw.sales, raw.deleted_key, raw.rejected_row, sl.landing_file"
        )
        for statement in BASELINE.values():
            conn.execute(statement)
    found = Warehouse(ingest_dsn)
    before = {table: found.rows(table) for table in BASELINE}
    yield found
    for table, rows in before.items():
        after = {row[0]: row for row in found.rows(table)}
        for row in rows:
            if (table, row[0]) not in found.touched:
                assert after.get(row[0]) == row, f"baseline raw.{table} row {row[0]} was changed or lost"


class Landing:
    """A landing folder, and how tests put files in it."""

    def __init__(self, root: Path):
        self.root = root

    def drop(self, path: str, data: bytes | str) -> Path:
        """Put a file at `path` (written whole under a hidden name, then renamed, as a source should)."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name("." + target.name + ".part")
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)
        temporary.rename(target)
        return target

    @staticmethod
    def csv(*lines: str) -> str:
        return "\n".join(lines) + "\n"

    @staticmethod
    def gzip(data: str | bytes) -> bytes:
        return gzip.compress(data.encode() if isinstance(data, str) else data)

    @staticmethod
    def parquet(frame: pl.DataFrame) -> bytes:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return buffer.getvalue()


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    return Landing(tmp_path / "landing")


@pytest.fixture
def config(test_settings: Settings, ingest_dsn: str, landing: Landing) -> Settings:
    return settings(
        {**test_settings.env, "TSHOP_PG_DSN": ingest_dsn, "TSHOP_LANDING_URL": landing.root.as_uri()}
    )
