"""RAW in PostgreSQL: the tables with the contract's constraints, and the loads (binary COPY in chunks,
updates through a COPY into a temporary table). A day is one transaction: the caller commits it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import psycopg

from datagen import pgbinary

CHUNK_ROWS = 250_000

# RAW's tables, constraints and indexes: one file that every writer of RAW and the tests run
RAW_DDL_FILE = Path(__file__).with_name("raw.sql")

TYPES = {
    "raw.customer": ["bigint", "text", "text", "date", "timestamp"],
    "raw.product": ["bigint", "text", "text", "text", "numeric", "timestamp"],
    "raw.sales": ["bigint", "bigint", "timestamp", "bigint", "bigint", "integer", "timestamp"],
}


def create_raw_tables(conn: psycopg.Connection) -> None:
    """Create or upgrade RAW from raw.sql, once per version of the file: it re-checks every constraint
    against every row, which costs seconds on a full-scale shop, so an unchanged file is not run again.
    Writers starting together take turns (a transaction-level advisory lock)."""
    ddl = RAW_DDL_FILE.read_text()
    version = hashlib.sha256(ddl.encode()).hexdigest()[:16]
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('tshop raw ddl'))")
        conn.execute(
            "create schema if not exists raw; create table if not exists raw.ddl_version "
            "(version text primary key, applied_at timestamptz not null default clock_timestamp())"
        )
        if conn.execute("select 1 from raw.ddl_version where version = %s", (version,)).fetchone():
            return
        conn.execute(ddl)
        conn.execute("insert into raw.ddl_version (version) values (%s)", (version,))


@dataclass(frozen=True)
class ShopState:
    """What the shop is before a day: counts and the next free ids."""

    customers: int
    products: int
    next_order_id: int
    next_sale_id: int
    last_day: dt.date | None


class RawWriter:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def state(self) -> ShopState:
        customers, products, order_id, sale_id, last_day = self.conn.execute(
            """select (select coalesce(max(customer_id), 0) from raw.customer),
                      (select count(*) from raw.product),
                      (select coalesce(max(order_id), 0) from raw.sales),
                      (select coalesce(max(sale_id), 0) from raw.sales),
                      (select max(business_day) from raw.generated_day)"""
        ).fetchone()
        return ShopState(customers, products, order_id + 1, sale_id + 1, last_day)

    def loaded_days(self, days: list[dt.date]) -> list[dt.date]:
        rows = self.conn.execute(
            "select business_day from raw.generated_day where business_day = any(%s) order by 1", (days,)
        ).fetchall()
        return [row[0] for row in rows]

    def prices(self) -> pl.DataFrame:
        rows = self.conn.execute("select product_id, price from raw.product order by product_id").fetchall()
        return pl.DataFrame(rows, schema={"product_id": pl.Int64, "price": pl.Decimal(12, 2)}, orient="row")

    def lines_sold(self, day: dt.date) -> pl.DataFrame:
        rows = self.conn.execute(
            "select sale_id, quantity from raw.sales where sold_at >= %s and sold_at < %s order by sale_id",
            (day, day + dt.timedelta(days=1)),
        ).fetchall()
        return pl.DataFrame(rows, schema={"sale_id": pl.Int64, "quantity": pl.Int32}, orient="row")

    def copy(self, table: str, frame: pl.DataFrame) -> None:
        """Append `frame` (columns in the table's order) with binary COPY, a chunk at a time: encoded whole
        by `pgbinary`, or row by row by psycopg for the types it does not encode (the small catalogue)."""
        columns = ", ".join(frame.columns)
        types = TYPES[table]
        with self.conn.cursor().copy(f"copy {table} ({columns}) from stdin (format binary)") as copy:
            if pgbinary.supports(types):
                copy.write(pgbinary.SIGNATURE)
                for chunk in frame.iter_slices(CHUNK_ROWS):
                    copy.write(pgbinary.encode(chunk, types))
                copy.write(pgbinary.TRAILER)
                return
            copy.set_types(types)
            for row in frame.iter_rows():
                copy.write_row(row)

    def overwrite(self, table: str, key: str, frame: pl.DataFrame) -> None:
        """SCD1: overwrite the columns of `frame` in the rows with its keys (COPY into a temporary table,
        then one UPDATE)."""
        if frame.is_empty():
            return
        changes = f"{table.split('.')[1]}_changes"
        # the contract's columns lead; RAW's own loaded_at / loaded_xid follow and are set by the database
        types = dict(zip(_columns(self.conn, table)[: len(TYPES[table])], TYPES[table], strict=True))
        columns = ", ".join(f"{column} {types[column]}" for column in frame.columns)
        self.conn.execute(f"create temporary table {changes} ({columns}) on commit drop")
        with self.conn.cursor().copy(
            f"copy {changes} ({', '.join(frame.columns)}) from stdin (format binary)"
        ) as copy:
            copy.set_types([types[column] for column in frame.columns])
            for row in frame.iter_rows():
                copy.write_row(row)
        assignments = ", ".join(f"{column} = {changes}.{column}" for column in frame.columns if column != key)
        self.conn.execute(
            f"update {table} set {assignments} from {changes} where {table}.{key} = {changes}.{key}"
        )

    def record_day(self, day: dt.date, seed: int, counts: dict[str, int]) -> None:
        self.conn.execute(
            """insert into raw.generated_day (business_day, seed, customers_added, orders, sale_lines,
                   last_name_changes, price_changes, sale_corrections)
               values (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (day, seed, counts["customers_added"], counts["orders"], counts["sale_lines"],
             counts["last_name_changes"], counts["price_changes"], counts["sale_corrections"]),
        )  # fmt: skip


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    schema, name = table.split(".")
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position",
        (schema, name),
    ).fetchall()
    return [row[0] for row in rows]
