"""`tshop forget-customer`: erase customers' personal data everywhere, in one audited operation (CONTRACT.md
section 10).

Personal data is a customer's `first_name`, `last_name` and `birth_date`, and what is made of them
(`customer_name` in the marts). Erasing sets the names to `erased` (so `customer_name` becomes
`erased erased`) and the birth date to null, and leaves every other column as it was: every sale, every
`customer_age`, every key and timestamp, so every dashboard number stays the same. Three steps, in order:

1. PostgreSQL, one transaction: every base table of `raw`, `dds` and `cdm` that has a `customer_id` and a
   personal column (found in the catalogue, so a new table is covered without a change here: RAW, every
   DDS version, `cdm.dim_customer`, `cdm.sales_datamart`), the values as read of rejected landing rows
   (`raw.rejected_row`), and one row per customer in `sl.erasure_log`. It takes an advisory lock (two
   erasures run one after the other) and ACCESS EXCLUSIVE locks on the DDS and CDM tables: a dbt node that
   read the old values commits before the erasure goes on, and one that starts later reads the erased values,
   so no load writes a name back from a read made before the erasure (RAW's writers are covered by its
   triggers).
2. ClickHouse: every MergeTree table (any database) with a `customer_id` and a personal column: a
   lightweight `UPDATE` (patch parts: only the rows changed are written) or, with `clickhouse_update=
   "mutation"`, `ALTER TABLE ... UPDATE` with `mutations_sync`; `birth_date` is made Nullable first where it
   is not (once per table).
3. The landing zone: each customer file under `incoming/customer/` (CSV, CSV.gz, Parquet) holding an erased
   customer's values, and the generator's `_generator/customer-*.parquet`, rewritten with the values erased
   (whatever they were: plain or `enc:v1:` ciphertext); `sl.landing_file`'s row of a rewritten file gets the
   new checksum, size and stamp, so ingest does not take it for a new file. Holds the ingest's lock meanwhile.

Nothing is left behind silently: `sl.erasure_log.clickhouse_done_at` / `landing_done_at` stay null until that
step finished, and each erasure first completes the steps left by earlier ones. Every step is idempotent: it
rewrites only rows still holding something other than the erased values, so running it again changes
nothing and reports the customers as already erased.

After the erasure nothing brings the data back: RAW's triggers (datagen/raw.sql) erase again any row that a
later write gives an erased customer (a rename by the generator, an outside file); the DDS snapshot reads the
erased RAW row with its `updated_at` unchanged, so it makes no new version; the marts and ClickHouse copy from
the erased rows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl
import psycopg
from psycopg import sql

from tshop import clients
from tshop.config import Settings
from tshop.errors import TShopError
from tshop.services.clickhouse.access import DATA_DATABASES

ERASED = "erased"
LOCK_KEY = "tshop erasure"
INGEST_LOCK_KEY = "tshop ingest"  # tshop/ingest/run.py: the landing zone's files change only between ingests
SCHEMAS = ("raw", "dds", "cdm")
# personal columns, and the erased value each gets (None: null)
PERSONAL = {
    "first_name": ERASED,
    "last_name": ERASED,
    "birth_date": None,
    "customer_name": f"{ERASED} {ERASED}",
}
LANDING_PERSONAL = {"first_name": ERASED, "last_name": ERASED, "birth_date": None}
CLICKHOUSE_UPDATES = ("lightweight", "mutation")


class ErasureError(TShopError):
    """The erasure could not be done (or not completely: the message says what is left)."""


class UnknownCustomers(ErasureError):
    """Customer ids that are neither in RAW nor in DDS: nothing was changed."""


@dataclass
class ErasureReport:
    run_id: str
    requested: list[int]
    erased: list[int] = field(default_factory=list)  # newly erased by this run
    already: list[int] = field(default_factory=list)  # erased before: nothing of theirs was left
    completed: list[int] = field(default_factory=list)  # erased before, with data left that this run erased
    postgres: dict[str, int] = field(default_factory=dict)  # table: rows rewritten
    clickhouse: dict[str, int] = field(default_factory=dict)
    landing: dict[str, int] = field(default_factory=dict)  # file: rows rewritten
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    postgres_seconds: dict[str, float] = field(default_factory=dict)  # per PostgreSQL table (and its lock)
    left: list[str] = field(default_factory=list)  # steps that failed: a re-run completes them

    @property
    def ok(self) -> bool:
        return not self.left

    def lines(self) -> list[str]:
        lines = []
        if self.erased:
            lines.append(f"erased {len(self.erased)} customer(s): {_ids(self.erased)}")
        if self.completed:
            lines.append(
                f"completed the erasure of {len(self.completed)} customer(s): {_ids(self.completed)}"
            )
        if self.already:
            if sum(self.clickhouse.values()) or sum(self.landing.values()):
                lines.append(f"erased before; this run completed the steps left: {_ids(self.already)}")
            else:
                lines.append(f"already erased, nothing changed: {_ids(self.already)}")
        for step, tables in (
            ("postgres", self.postgres),
            ("clickhouse", self.clickhouse),
            ("landing", self.landing),
        ):
            if step in self.seconds:
                rewritten = ", ".join(f"{name} {rows}" for name, rows in sorted(tables.items()) if rows)
                lines.append(
                    f"  {step}: {sum(tables.values())} row(s) rewritten in {self.seconds[step]:.2f} s"
                    + (f" ({rewritten})" if rewritten else "")
                )
        lines += [f"LEFT: {left}" for left in self.left]
        if self.left:
            lines.append("run the same command again to complete it (sl.erasure_log marks the customers)")
        return lines


def _ids(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    shown = ", ".join(str(customer_id) for customer_id in ids[:20])
    return shown + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def default_run_id() -> str:
    return f"manual__{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"


def forget_customers(
    config: Settings,
    customer_ids: Iterable[int],
    run_id: str | None = None,
    clickhouse_update: str = "lightweight",
) -> ErasureReport:
    """Erase the customers' personal data in PostgreSQL, ClickHouse and the landing zone; see the module."""
    ids = sorted(set(customer_ids))
    if not ids:
        raise ErasureError("no customer id given")
    if clickhouse_update not in CLICKHOUSE_UPDATES:
        raise ErasureError(
            f"clickhouse_update must be one of {CLICKHOUSE_UPDATES}, not {clickhouse_update!r}"
        )
    report = ErasureReport(run_id or default_run_id(), ids)
    try:
        # the transformer: owner of DDS and CDM, and through tshop_erasure of RAW's personal columns only
        conn = clients.postgres(
            config, "transformer", autocommit=True, application_name="tshop forget-customer"
        )
    except psycopg.Error as error:
        raise ErasureError(f"cannot connect to PostgreSQL: {error}") from None
    with conn:
        started = time.perf_counter()
        try:
            _erase_postgres(config, conn, ids, report)
        except psycopg.Error as error:
            raise ErasureError(
                f"the erasure failed in PostgreSQL, nothing was changed: {type(error).__name__}: {error}"
            ) from None
        report.seconds["postgres"] = time.perf_counter() - started

        pending = _pending(conn, ids, "clickhouse_done_at")
        started = time.perf_counter()
        try:
            report.clickhouse = erase_clickhouse(config, pending, clickhouse_update)
            _mark_done(conn, pending, "clickhouse_done_at")
        except Exception as error:  # clickhouse-connect raises several kinds; any of them leaves the step
            report.left.append(f"ClickHouse, {len(pending)} customer(s): {type(error).__name__}: {error}")
        report.seconds["clickhouse"] = time.perf_counter() - started

        pending = _pending(conn, ids, "landing_done_at")
        started = time.perf_counter()
        try:
            with clients.postgres(config, "loader", autocommit=True) as loader:
                report.landing = erase_landing(config, loader, pending)
            _mark_done(conn, pending, "landing_done_at")
        except Exception as error:
            report.left.append(f"landing zone, {len(pending)} customer(s): {type(error).__name__}: {error}")
        report.seconds["landing"] = time.perf_counter() - started
        _note_rewritten(conn, report)
    return report


# -- PostgreSQL ------------------------------------------------------------------------------------------------
def personal_tables(conn: psycopg.Connection) -> dict[tuple[str, str], list[str]]:
    """(schema, table): its personal columns, for every base table of RAW, DDS and CDM with a customer_id."""
    rows = conn.execute(
        """select c.table_schema, c.table_name, array_agg(c.column_name::text order by c.ordinal_position)
           from information_schema.columns as c
           join information_schema.tables as t using (table_schema, table_name)
           where t.table_type = 'BASE TABLE' and c.table_schema = any(%s) and c.column_name = any(%s)
               and exists (
                   select 1 from information_schema.columns as k
                   where k.table_schema = c.table_schema and k.table_name = c.table_name
                       and k.column_name = 'customer_id'
               )
           group by 1, 2""",
        (list(SCHEMAS), list(PERSONAL)),
    ).fetchall()
    order = {schema: position for position, schema in enumerate(SCHEMAS)}
    return {
        (schema, table): columns for schema, table, columns in sorted(rows, key=lambda r: (order[r[0]], r[1]))
    }


def _not_erased(columns: list[str]) -> sql.Composable:
    """True for a row whose personal columns are not all erased yet."""
    return sql.SQL(" or ").join(
        sql.SQL("{} is not null").format(sql.Identifier(column))
        if PERSONAL[column] is None
        else sql.SQL("{} is distinct from {}").format(sql.Identifier(column), sql.Literal(PERSONAL[column]))
        for column in columns
    )


def _erase_postgres(
    config: Settings, conn: psycopg.Connection, ids: list[int], report: ErasureReport
) -> None:
    from datagen.writer import create_raw_tables  # RAW's DDL: sl.erasure_log, the triggers, birth_date null

    # RAW's DDL by RAW's owner, as every RAW writer runs it (a no-op when this version of it was applied)
    with clients.postgres(config, "loader", autocommit=True) as loader:
        create_raw_tables(loader)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
        tables = personal_tables(conn)
        # DDS, then CDM: the order the pipeline reads them in. A dbt node that read the old values (a snapshot
        # reads RAW together with dds.customer's current rows) holds its lock until it commits, so the erasure
        # waits for it and then erases what it wrote; a node that starts later waits and reads erased values.
        # RAW needs no table lock: its writers' rows are erased again by RAW's triggers.
        locked = [name for name in tables if name[0] != "raw"]
        started = time.perf_counter()
        if locked:
            conn.execute(
                sql.SQL("lock table {} in access exclusive mode").format(
                    sql.SQL(", ").join(sql.Identifier(*name) for name in locked)
                )
            )
        report.postgres_seconds["lock"] = time.perf_counter() - started
        known_in = [
            sql.SQL("select customer_id from {} where customer_id = any(%(ids)s)").format(
                sql.Identifier(*name)
            )
            for name in (("raw", "customer"), ("dds", "customer"), ("sl", "erasure_log"))
            if name in tables or name == ("sl", "erasure_log")
        ]
        known = {row[0] for row in conn.execute(sql.SQL(" union ").join(known_in), {"ids": ids}).fetchall()}
        unknown = [customer_id for customer_id in ids if customer_id not in known]
        if unknown:
            raise UnknownCustomers(
                f"unknown customer(s), in neither raw.customer nor dds.customer: {_ids(unknown)}; "
                "nothing was changed"
            )
        logged = {
            row[0]
            for row in conn.execute(
                "select customer_id from sl.erasure_log where customer_id = any(%s)", (ids,)
            ).fetchall()
        }
        per_customer: dict[int, Counter] = {customer_id: Counter() for customer_id in ids}
        for (schema, table), columns in tables.items():
            name = f"{schema}.{table}"
            started = time.perf_counter()
            rewritten = conn.execute(
                sql.SQL("update {} set {} where customer_id = any(%s) and ({}) returning customer_id").format(
                    sql.Identifier(schema, table),
                    sql.SQL(", ").join(
                        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(PERSONAL[column]))
                        for column in columns
                    ),
                    _not_erased(columns),
                ),
                (ids,),
            ).fetchall()
            report.postgres[name] = len(rewritten)
            report.postgres_seconds[name] = time.perf_counter() - started
            for (customer_id,) in rewritten:
                per_customer[customer_id][name] += 1
        # a landed customer row that broke a rule keeps its values as read: those too
        started = time.perf_counter()
        rejected = conn.execute(
            """update raw.rejected_row
               set row_data = row_data || '{"first_name": "erased", "last_name": "erased", "birth_date": null}'
               where table_name = 'customer'
                   and row_data ->> 'customer_id' ~ '^\\s*[0-9]{1,18}\\s*$'
                   and trim(row_data ->> 'customer_id')::bigint = any(%s)
                   and (row_data ->> 'first_name' is distinct from 'erased'
                        or row_data ->> 'last_name' is distinct from 'erased'
                        or row_data ->> 'birth_date' is not null)
               returning trim(row_data ->> 'customer_id')::bigint""",
            (ids,),
        ).fetchall()
        report.postgres["raw.rejected_row"] = len(rejected)
        report.postgres_seconds["raw.rejected_row"] = time.perf_counter() - started
        for (customer_id,) in rejected:
            per_customer[customer_id]["raw.rejected_row"] += 1
        # rows_rewritten: {run id: {table: rows}}, one entry per operation that rewrote something of theirs
        conn.execute(
            """insert into sl.erasure_log as log (customer_id, run_id, rows_rewritten)
               select given.key::bigint, %(run_id)s,
                   case when given.value = '{}' then '{}' else jsonb_build_object(%(run_id)s::text, given.value) end
               from jsonb_each(%(counts)s::jsonb) as given
               on conflict (customer_id) do update
               set rows_rewritten = log.rows_rewritten || excluded.rows_rewritten""",
            {
                "run_id": report.run_id,
                "counts": json.dumps({str(key): dict(value) for key, value in per_customer.items()}),
            },
        )
    for customer_id in ids:
        if customer_id not in logged:
            report.erased.append(customer_id)
        elif per_customer[customer_id]:
            report.completed.append(customer_id)
        else:
            report.already.append(customer_id)


def _pending(conn: psycopg.Connection, ids: list[int], done_column: str) -> list[int]:
    """The given customers, and any earlier erasure's customers whose step `done_column` is still left."""
    rows = conn.execute(
        sql.SQL("select customer_id from sl.erasure_log where customer_id = any(%s) or {} is null").format(
            sql.Identifier(done_column)
        ),
        (ids,),
    ).fetchall()
    return sorted(row[0] for row in rows)


def _mark_done(conn: psycopg.Connection, ids: list[int], done_column: str) -> None:
    conn.execute(
        sql.SQL(
            "update sl.erasure_log set {0} = clock_timestamp() where customer_id = any(%s) and {0} is null"
        ).format(sql.Identifier(done_column)),
        (ids,),
    )


def _note_rewritten(conn: psycopg.Connection, report: ErasureReport) -> None:
    """The ClickHouse and landing rows rewritten, by table and file, under this run's entry of the log rows of
    its customers (per operation: those engines rewrite by statement, not by customer)."""
    counts = {f"clickhouse:{name}": rows for name, rows in report.clickhouse.items() if rows}
    counts |= {f"landing:{name}": rows for name, rows in report.landing.items() if rows}
    if counts:
        conn.execute(
            """update sl.erasure_log
               set rows_rewritten = rows_rewritten
                   || jsonb_build_object(%(run_id)s::text, coalesce(rows_rewritten -> %(run_id)s::text, '{}') || %(counts)s::jsonb)
               where customer_id = any(%(ids)s)""",
            {"run_id": report.run_id, "counts": json.dumps(counts), "ids": report.requested},
        )


# -- ClickHouse ------------------------------------------------------------------------------------------------
def clickhouse_personal_tables(client) -> dict[tuple[str, str], dict[str, str]]:
    """(database, table): {personal column: its type}, for every MergeTree table with a customer_id in the
    databases T-Shop writes (the writer's: tshop/services/clickhouse/access.py)."""
    rows = client.query(
        """select c.database, c.table, c.name, c.type
           from system.columns as c
           inner join system.tables as t on t.database = c.database and t.name = c.table
           where c.database in {databases:Array(String)}
               and t.engine like '%MergeTree%'
               and c.name in {personal:Array(String)}
               and (c.database, c.table) in (
                   select database, table from system.columns where name = 'customer_id'
               )
           order by c.database, c.table, c.position""",
        parameters={"personal": list(PERSONAL), "databases": sorted(DATA_DATABASES)},
    ).result_rows
    tables: dict[tuple[str, str], dict[str, str]] = {}
    for database, table, column, column_type in rows:
        tables.setdefault((database, table), {})[column] = column_type
    return tables


def _clickhouse_value(value: str | None) -> str:
    return "NULL" if value is None else "'" + value + "'"


def erase_clickhouse(config: Settings, ids: list[int], mode: str = "lightweight") -> dict[str, int]:
    """Erase the customers in ClickHouse's tables; rows rewritten per table."""
    if not ids:
        return {}
    client = clients.clickhouse(config, "writer")
    try:
        rewritten = {}
        id_list = ", ".join(str(int(customer_id)) for customer_id in ids)
        for (database, table), columns in clickhouse_personal_tables(client).items():
            name = f"`{database}`.`{table}`"
            if "birth_date" in columns and not columns["birth_date"].startswith("Nullable"):
                # once per table: an erased birth date is null, as in PostgreSQL (rewrites that column only)
                client.command(
                    f"alter table {name} modify column birth_date Nullable({columns['birth_date']})",
                    settings={"mutations_sync": 2},
                )
            not_erased = " or ".join(
                f"`{column}` is not null"
                if PERSONAL[column] is None
                else f"`{column}` != {_clickhouse_value(PERSONAL[column])}"
                for column in columns
            )
            where = f"customer_id in ({id_list}) and ({not_erased})"
            rows = client.query(f"select count() from {name} where {where}").result_rows[0][0]
            rewritten[f"{database}.{table}"] = rows
            if not rows:
                continue
            assignments = ", ".join(
                f"`{column}` = {_clickhouse_value(PERSONAL[column])}" for column in columns
            )
            if mode == "lightweight":
                _lightweight_update(client, name, assignments, where)
            else:
                client.command(
                    f"alter table {name} update {assignments} where {where}", settings={"mutations_sync": 2}
                )
        return rewritten
    finally:
        client.close()


def _lightweight_update(client, name: str, assignments: str, where: str) -> None:
    """`UPDATE ... SET ... WHERE`: patch parts holding only the changed rows, applied on read and by merges.
    A table needs the block number and offset columns for it: set on first use."""
    statement = f"update {name} set {assignments} where {where}"
    try:
        client.command(statement)
    except Exception as error:
        if "block_number" not in str(error) and "block_offset" not in str(error):
            raise
        client.command(
            f"alter table {name} modify setting enable_block_number_column = 1, enable_block_offset_column = 1"
        )
        client.command(statement)


# -- the landing zone ------------------------------------------------------------------------------------------
def erase_landing(config: Settings, conn: psycopg.Connection, ids: list[int]) -> dict[str, int]:
    """Rewrite the landing zone's customer files and the generator's customer state holding the customers'
    values; rows rewritten per file. `conn`: the landing books' writer (the loader). Holds the ingest's lock,
    so no ingest reads a file while it changes."""
    from datagen.landing import put_file
    from tshop.ingest.landing import LandingZone, checksum, stamp

    if not ids:
        return {}
    zone = LandingZone.open(config)
    wanted = pl.Series("customer_id", ids, dtype=pl.Int64)
    rewritten = {}
    conn.execute("select pg_advisory_lock(hashtext(%s))", (INGEST_LOCK_KEY,))
    try:
        for landed in zone.files(["customer"]):
            data = zone.read(landed)
            if data is None:
                continue
            new, rows = _erased_file(data, landed.path, wanted)
            if not rows:
                continue
            path = zone.path_of(landed)
            put_file(zone.fs, path, new)
            zone.fs.invalidate_cache()
            info = zone.fs.info(path)
            # the version ingest recorded is now this one: not a new file to ingest
            conn.execute(
                """update sl.landing_file set checksum = %s, size_bytes = %s, file_stamp = %s
                   where file_path = %s and checksum = %s""",
                (checksum(new), len(new), stamp(info), landed.path, checksum(data)),
            )
            rewritten[landed.path] = rows
        state = f"{zone.root}/_generator"
        if zone.fs.exists(state):
            for path in sorted(zone.fs.find(state)):
                name = path.rsplit("/", 1)[-1]
                if not (name.startswith("customer-") and name.endswith(".parquet")):
                    continue
                new, rows = _erased_file(zone.fs.cat_file(path), name, wanted)
                if rows:
                    put_file(zone.fs, path, new)
                    rewritten[path[len(zone.root) + 1 :]] = rows
    finally:
        conn.execute("select pg_advisory_unlock(hashtext(%s))", (INGEST_LOCK_KEY,))
    return rewritten


def _erased_file(data: bytes, path: str, wanted: pl.Series) -> tuple[bytes, int]:
    """The file with the wanted customers' personal values erased, and how many rows changed (0: the file
    as it was). Every value is read as text, so the other columns are written back as they were."""
    compressed = path.endswith(".gz")
    raw = gzip.decompress(data) if compressed else data
    name = path.removesuffix(".gz")
    if name.endswith(".csv"):
        frame = pl.read_csv(io.BytesIO(raw), infer_schema=False)
    elif name.endswith(".parquet"):
        frame = pl.read_parquet(io.BytesIO(raw))
    elif name.endswith(".jsonl"):
        frame = pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None)
    else:
        return data, 0
    if "customer_id" not in frame.columns or frame.is_empty():
        return data, 0
    columns = [column for column in LANDING_PERSONAL if column in frame.columns]
    key = pl.col("customer_id")
    key = (
        key.cast(pl.Int64, strict=False)
        if frame.schema["customer_id"].is_integer()
        else (key.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False))
    )
    not_erased = pl.lit(False)
    for column in columns:
        value = LANDING_PERSONAL[column]
        value_text = pl.col(column).cast(pl.String)
        not_erased = not_erased | (
            value_text.is_not_null() if value is None else value_text.ne_missing(value)
        )
    hit = key.is_in(wanted.implode()) & not_erased
    rows = frame.select(hit.sum()).item()
    if not rows:
        return data, 0
    frame = frame.with_columns(
        pl.when(hit)
        .then(pl.lit(LANDING_PERSONAL[column], dtype=frame.schema[column]))
        .otherwise(pl.col(column))
        .alias(column)
        if LANDING_PERSONAL[column] is None or frame.schema[column] == pl.String
        else pl.col(column)
        for column in columns
    )
    buffer = io.BytesIO()
    if name.endswith(".csv"):
        frame.write_csv(buffer)
    elif name.endswith(".parquet"):
        frame.write_parquet(buffer)
    else:
        frame.write_ndjson(buffer)
    out = buffer.getvalue()
    return (gzip.compress(out, mtime=0) if compressed else out), rows
