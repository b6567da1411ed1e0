"""RAW in PostgreSQL: the tables with the contract's constraints, and the loads (binary COPY in chunks,
updates through a COPY into a temporary table). A day is one transaction: the caller commits it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import psycopg

from datagen import pgbinary

CHUNK_ROWS = 250_000

RAW_DDL = """
create schema if not exists raw;

create table if not exists raw.customer (
    customer_id bigint primary key,
    first_name text not null constraint customer_first_name_not_blank check (btrim(first_name) <> ''),
    last_name text not null constraint customer_last_name_not_blank check (btrim(last_name) <> ''),
    birth_date date not null constraint customer_birth_date_in_the_past check (birth_date < updated_at),
    updated_at timestamp not null
);

create table if not exists raw.product (
    product_id bigint primary key,
    name text not null,
    category text not null,
    size text not null,
    price numeric(12, 2) not null constraint product_price_positive check (price > 0),
    updated_at timestamp not null
);

create table if not exists raw.sales (
    sale_id bigint primary key,
    order_id bigint not null,
    sold_at timestamp not null,
    customer_id bigint not null,
    product_id bigint not null,
    quantity integer not null constraint sales_quantity_positive check (quantity > 0),
    updated_at timestamp not null
);

-- the DDS increments read RAW by updated_at; the generator finds a day's lines by sold_at
create index if not exists customer_updated_at_idx on raw.customer (updated_at);
create index if not exists product_updated_at_idx on raw.product (updated_at);
create index if not exists sales_updated_at_idx on raw.sales (updated_at);
create index if not exists sales_sold_at_idx on raw.sales (sold_at);

-- one row per simulated business day: a loaded day is never generated twice
create table if not exists raw.generated_day (
    business_day date primary key,
    seed bigint not null,
    customers_added bigint not null,
    orders bigint not null,
    sale_lines bigint not null,
    last_name_changes bigint not null,
    price_changes bigint not null,
    sale_corrections bigint not null,
    loaded_at timestamptz not null default clock_timestamp()
);
"""

TYPES = {
    "raw.customer": ["bigint", "text", "text", "date", "timestamp"],
    "raw.product": ["bigint", "text", "text", "text", "numeric", "timestamp"],
    "raw.sales": ["bigint", "bigint", "timestamp", "bigint", "bigint", "integer", "timestamp"],
}


def create_raw_tables(conn: psycopg.Connection) -> None:
    conn.execute(RAW_DDL)


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
        types = dict(zip(_columns(self.conn, table), TYPES[table], strict=True))
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
