"""RAW in PostgreSQL: the tables with the contract's constraints, and `RawWriter`, the `ShopWriter`
(`datagen/shop_writer.py`) that loads the simulated days into them (binary COPY in chunks, updates through a
COPY into a temporary table). A day is one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl
import psycopg

from datagen import pgbinary
from datagen.errors import RecordUnreadable
from datagen.record import IdRanges, ShopRecord
from datagen.shop_writer import GreatestIds

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
            "do $$ begin if to_regnamespace('raw') is null then create schema raw; end if; end $$; create table if not exists raw.ddl_version "
            "(version text primary key, applied_at timestamptz not null default clock_timestamp())"
        )
        if conn.execute("select 1 from raw.ddl_version where version = %s", (version,)).fetchone():
            return
        conn.execute(ddl)
        conn.execute("insert into raw.ddl_version (version) values (%s)", (version,))


class RawWriter:
    """The shop in PostgreSQL's RAW. Given a DSN, each run (`with writer:`) opens a connection of its own;
    given an open connection, it writes through it and the caller commits (the benchmarks' loads)."""

    place = "RAW"
    # RAW refuses rows from the future by the database's clock: a day is simulated once that says it is over
    clock_name = "the database's clock"

    def __init__(self, target: psycopg.Connection | str):
        self.dsn = target if isinstance(target, str) else None
        self._conn = None if isinstance(target, str) else target

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            raise RuntimeError("RawWriter: open a run first (`with writer:`)")
        return self._conn

    def __enter__(self) -> Self:
        if self.dsn is not None:
            # autocommit outside the explicit transactions: each `conn.transaction()` of `day()` is a real
            # BEGIN ... COMMIT of its own, not a savepoint of an open transaction
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.dsn is not None and self._conn is not None:
            self._conn.close()
            self._conn = None

    def today(self) -> dt.date:
        return self.conn.execute("select (now() at time zone 'UTC')::date").fetchone()[0]

    def prepare(self) -> None:
        with self.conn.transaction():
            create_raw_tables(self.conn)

    @contextmanager
    def day(self, day: dt.date) -> Iterator[None]:
        with self.conn.transaction():
            self.lock()
            yield

    def lock(self) -> None:
        """Generators writing one RAW take turns, a day at a time (a transaction-level advisory lock)."""
        self.conn.execute("select pg_advisory_xact_lock(hashtext('tshop generator'))")

    def greatest_ids(self) -> GreatestIds:
        # order_id has no index: a scan of raw.sales, as the generator has always done once a day
        return GreatestIds(
            *self.conn.execute(
                """select (select coalesce(max(customer_id), 0) from raw.customer),
                          (select coalesce(max(product_id), 0) from raw.product),
                          (select coalesce(max(order_id), 0) from raw.sales),
                          (select coalesce(max(sale_id), 0) from raw.sales)"""
            ).fetchone()
        )

    def last_day(self) -> dt.date | None:
        return self.conn.execute("select max(business_day) from raw.generated_day").fetchone()[0]

    def loaded_days(self, days: list[dt.date]) -> list[dt.date]:
        rows = self.conn.execute(
            "select business_day from raw.generated_day where business_day = any(%s) order by 1", (days,)
        ).fetchall()
        return [row[0] for row in rows]

    def shop_record(self) -> ShopRecord | None:
        """The generator's record of the shop, or one derived from a RAW made by a generator that kept
        none; None for a new shop."""
        return self.record() or self.derived_record()

    def record(self) -> ShopRecord | None:
        """The generator's record of the shop (raw.generator_shop), None when there is none yet."""
        row = self.conn.execute(
            f"""select seed, initial_customers, {_runs("customer_ids")}, {_runs("product_ids")},
                       {_runs("sale_ids")}, last_customer_id, last_order_id, last_sale_id, derived_from_raw
                from raw.generator_shop"""
        ).fetchone()
        if row is None:
            return None
        seed, initial, *runs, last_customer, last_order, last_sale, derived = row
        customer_ids, product_ids, sale_ids = (IdRanges(*runs[at : at + 2]) for at in (0, 2, 4))
        return ShopRecord(
            seed, initial, customer_ids, product_ids, sale_ids, last_customer, last_order, last_sale, derived
        )

    def derived_record(self) -> ShopRecord | None:
        """The record of a shop simulated by a generator that kept none, derived from RAW; None when RAW
        holds no simulated day (a new shop, whatever outside writers put in RAW).

        That generator handed out customer, product and sale-line ids 1, 2, 3... with no gap, so its
        customers and catalogue are the unbroken runs of ids from 1 (an outside writer's ids, such as
        99,000,003, lie past them), its initial customers are that run less the customers its days added,
        and its sale lines are the first as many as its days sold."""
        row = self.conn.execute(
            "select seed, (sum(customers_added) over ())::bigint, (sum(sale_lines) over ())::bigint "
            "from raw.generated_day order by business_day desc limit 1"
        ).fetchone()
        if row is None:
            return None
        seed, added, lines = row
        customers, products = _unbroken_run(self.conn, "customer"), _unbroken_run(self.conn, "product")
        if customers - added < 1 or products < 1:
            raise RecordUnreadable(
                f"RAW holds simulated days but not the shop that made them (customers 1..{customers}, "
                f"{added} of them added by those days; products 1..{products}), and the generator's record "
                "of the shop (raw.generator_shop) is missing: it cannot tell its own rows from others'. "
                "Generate into an empty database, or restore raw.generator_shop. Nothing was written."
            )
        raw = self.greatest_ids()
        return ShopRecord(
            seed=seed,
            initial_customers=customers - added,
            customer_ids=IdRanges.run(1, customers),
            product_ids=IdRanges.run(1, products),
            sale_ids=IdRanges.run(1, lines),
            last_customer_id=raw.customer,
            last_order_id=raw.order,
            last_sale_id=raw.sale,
            derived_from_raw=True,
        )

    def save_record(self, record: ShopRecord) -> None:
        self.conn.execute(
            f"""insert into raw.generator_shop (shop, seed, initial_customers, customers, customer_ids,
                    product_ids, sale_ids, last_customer_id, last_order_id, last_sale_id, derived_from_raw)
                values (true, %(seed)s, %(initial)s, %(customers)s, {_multirange("customer")},
                        {_multirange("product")}, {_multirange("sale")}, %(last_customer)s, %(last_order)s,
                        %(last_sale)s, %(derived)s)
                on conflict (shop) do update set
                    seed = excluded.seed, initial_customers = excluded.initial_customers,
                    customers = excluded.customers, customer_ids = excluded.customer_ids,
                    product_ids = excluded.product_ids, sale_ids = excluded.sale_ids,
                    last_customer_id = excluded.last_customer_id, last_order_id = excluded.last_order_id,
                    last_sale_id = excluded.last_sale_id, derived_from_raw = excluded.derived_from_raw,
                    updated_at = clock_timestamp()""",
            {
                "seed": record.seed,
                "initial": record.initial_customers,
                "customers": record.customers,
                **{
                    f"{kind}_{end}": getattr(ids, f"{end}s").tolist()
                    for kind, ids in (
                        ("customer", record.customer_ids),
                        ("product", record.product_ids),
                        ("sale", record.sale_ids),
                    )
                    for end in ("lower", "upper")
                },
                "last_customer": record.last_customer_id,
                "last_order": record.last_order_id,
                "last_sale": record.last_sale_id,
                "derived": record.derived_from_raw,
            },
        )

    def products(self, ids: IdRanges) -> pl.DataFrame:
        """The shop's own products as RAW holds them now (product_id, name, price), by product_id."""
        rows = self.conn.execute(
            "select product_id, name, price from raw.product where product_id between %s and %s "
            "order by product_id",
            (int(ids.lowers[0]) if len(ids) else 1, ids.last),
        ).fetchall()
        frame = pl.DataFrame(
            rows, schema={"product_id": pl.Int64, "name": pl.Utf8, "price": pl.Decimal(12, 2)}, orient="row"
        )
        return frame.filter(pl.Series(ids.contains(frame["product_id"].to_numpy())))

    def lines_sold(self, day: dt.date, ids: IdRanges) -> pl.DataFrame:
        """The shop's own sale lines sold on `day` (sale_id, quantity), by sale_id."""
        rows = self.conn.execute(
            "select sale_id, quantity from raw.sales where sold_at >= %s and sold_at < %s order by sale_id",
            (day, day + dt.timedelta(days=1)),
        ).fetchall()
        frame = pl.DataFrame(rows, schema={"sale_id": pl.Int64, "quantity": pl.Int32}, orient="row")
        return frame.filter(pl.Series(ids.contains(frame["sale_id"].to_numpy())))

    def lines_per_day(self, since: dt.date) -> dict[dt.date, int]:
        rows = self.conn.execute(
            "select business_day, sale_lines from raw.generated_day where business_day >= %s order by 1",
            (since,),
        ).fetchall()
        return {day: int(lines) for day, lines in rows}

    def sale_lines(self, ids: np.ndarray) -> pl.DataFrame:
        """The lines with these sale_ids (sale_id, order_id, sold_at, customer_id, product_id), by sale_id:
        primary-key lookups, a few thousand a day."""
        rows = (
            self.conn.execute(
                "select sale_id, order_id, sold_at, customer_id, product_id from raw.sales "
                "where sale_id = any(%s::bigint[]) order by sale_id",
                ([int(sale_id) for sale_id in ids],),
            ).fetchall()
            if len(ids)
            else []
        )
        return pl.DataFrame(
            rows,
            schema={"sale_id": pl.Int64, "order_id": pl.Int64, "sold_at": pl.Datetime("us"),
                    "customer_id": pl.Int64, "product_id": pl.Int64},
            orient="row",
        )  # fmt: skip

    def append(self, table: str, frame: pl.DataFrame) -> None:
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


def _runs(column: str) -> str:
    """An int8multirange column as two arrays: its runs' lower and upper bounds, in order."""
    return (
        f"array(select lower(run) from unnest({column}) as run), "
        f"array(select upper(run) from unnest({column}) as run)"
    )


def _multirange(kind: str) -> str:
    """An int8multirange from the arrays %(kind_lower)s and %(kind_upper)s."""
    return (
        f"(select coalesce(range_agg(int8range(lower_id, upper_id)), '{{}}') "
        f"from unnest(%({kind}_lower)s::bigint[], %({kind}_upper)s::bigint[]) as run(lower_id, upper_id))"
    )


def _unbroken_run(conn: psycopg.Connection, table: str) -> int:
    """N such that raw.<table> holds every key 1..N (and N + 1 is missing): the first key whose position
    in key order differs from it ends the run. Reads the primary key's index once."""
    return conn.execute(
        f"""select coalesce(
                (select position - 1
                 from (select {table}_id as id, row_number() over (order by {table}_id) as position
                       from raw.{table} where {table}_id >= 1) as keys
                 where id <> position order by position limit 1),
                (select count(*) from raw.{table} where {table}_id >= 1))"""
    ).fetchone()[0]


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    schema, name = table.split(".")
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position",
        (schema, name),
    ).fetchall()
    return [row[0] for row in rows]
