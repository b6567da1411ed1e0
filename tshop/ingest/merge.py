"""One file's checked rows merged into RAW by SCD1, in the caller's transaction (CONTRACT.md section 7).

1. Collapse: per key, the row with the greatest updated_at wins (on a tie, the later line of the file).
2. Stage: binary COPY (datagen.pgbinary: the whole frame encoded at once) into two temporary tables, the
   rows to upsert and the deletions, dropped at commit.
3. Upsert, set-based: `insert ... on conflict (key) do update ... where excluded.updated_at >
   raw.<table>.updated_at`: a new key enters, a newer version replaces the row, an older or equal one changes
   nothing. A key deleted as of a time at or after the row's updated_at is not brought back by it.
   Keys past RAW's greatest key (a day's new customers and sale lines: most rows of a file) cannot conflict
   with a RAW row, so they skip the staging table and the conflict check: one binary COPY straight into RAW,
   as the generator writes it, which costs half of the upsert. The few of them with a deletion kept in
   raw.deleted_key take the upsert road, and if another writer adds one of those keys meanwhile, the COPY
   fails on the primary key and all of them take the upsert road instead (a savepoint).
4. Delete: a deletion newer than RAW's row removes the key (`delete ... using`); each deletion newer than
   RAW's row, or for a key RAW lacks, and newer than any deletion of the key already kept, is kept in
   raw.deleted_key (table_name, key_value, deleted_at = its updated_at).
5. The rejected rows into raw.rejected_row, the file's row into sl.landing_file.
RAW's loaded_at / loaded_xid are RAW's own (column defaults and its update trigger): never written here.

`rows_loaded` is the number of the file's rows that changed RAW: keys inserted or replaced plus deletions
kept; a row that was collapsed into a later one of its key, or was older than (or as old as) RAW's, is
read and accepted but not loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import psycopg

from datagen import pgbinary
from tshop.ingest.read import LINE
from tshop.ingest.tables import DELETED, TableSpec

CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Merged:
    upserted: int  # keys inserted or replaced
    deletions: int  # deletions kept in raw.deleted_key
    removed: int  # keys that left RAW


def collapse(accepted: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """One row per key: the greatest updated_at, the later line on a tie. Sorted by key."""
    return accepted.sort([spec.key, "updated_at", LINE]).unique(
        subset=[spec.key], keep="last", maintain_order=True
    )


def merge(conn: psycopg.Connection, spec: TableSpec, rows: pl.DataFrame) -> Merged:
    """Merge collapsed rows (one per key) into raw.<table>; in the caller's transaction."""
    upserts = rows.filter(~pl.col(DELETED)).select(column.stage_name for column in spec.columns)
    deletions = rows.filter(pl.col(DELETED)).select(spec.key, "updated_at")
    upserted = _upsert(conn, spec, upserts) if upserts.height else 0
    removed, kept = _delete(conn, spec, deletions) if deletions.height else (0, 0)
    return Merged(upserted, kept, removed)


def _upsert(conn: psycopg.Connection, spec: TableSpec, upserts: pl.DataFrame) -> int:
    copied = 0
    if all(column.stage_name == column.name for column in spec.columns):  # not the product's price in cents
        new_keys, upserts = _past_greatest_key(conn, spec, upserts)
        if new_keys.height:
            try:
                with conn.transaction():  # a savepoint: a key another writer added meanwhile undoes only this
                    _copy(conn, spec.raw_table, [(c.name, c.stage_type) for c in spec.columns], new_keys)
                copied = new_keys.height
            except psycopg.errors.UniqueViolation:
                upserts = pl.concat([new_keys, upserts])
    return copied + (_upsert_staged(conn, spec, upserts) if upserts.height else 0)


def _past_greatest_key(
    conn: psycopg.Connection, spec: TableSpec, upserts: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows whose key is past RAW's greatest and was never deleted, the rest). RAW's greatest key is one
    probe of its primary key; the deletions past it are few (the deleted key was RAW's greatest)."""
    greatest = conn.execute(f"select coalesce(max({spec.key}), -1) from {spec.raw_table}").fetchone()[0]
    deleted = [
        row[0]
        for row in conn.execute(
            "select key_value from raw.deleted_key where table_name = %s and key_value > %s",
            (spec.name, greatest),
        )
    ]
    is_new = (pl.col(spec.key) > greatest) & ~pl.col(spec.key).is_in(deleted)
    return upserts.filter(is_new), upserts.filter(~is_new)


def _upsert_staged(conn: psycopg.Connection, spec: TableSpec, upserts: pl.DataFrame) -> int:
    stage = f"ingest_{spec.name}"
    columns = [(column.stage_name, column.stage_type) for column in spec.columns]
    _stage(conn, stage, columns, upserts)
    # a key deleted as of the row's updated_at or later stays deleted: such rows leave the staging table first
    # (a join driven by raw.deleted_key, which is small, rather than a probe of it per staged row)
    conn.execute(
        f"""delete from {stage} s using raw.deleted_key d
            where d.table_name = %s and d.key_value = s.{spec.key} and d.deleted_at >= s.updated_at""",
        (spec.name,),
    )
    names = spec.column_names
    select = ", ".join("s.price_cents::numeric / 100" if name == "price" else f"s.{name}" for name in names)
    assignments = ", ".join(f"{name} = excluded.{name}" for name in names if name != spec.key)
    return conn.execute(
        f"""insert into {spec.raw_table} as t ({", ".join(names)})
            select {select} from {stage} s
            on conflict ({spec.key}) do update set {assignments}
            where excluded.updated_at > t.updated_at"""
    ).rowcount


def _delete(conn: psycopg.Connection, spec: TableSpec, deletions: pl.DataFrame) -> tuple[int, int]:
    stage = f"ingest_{spec.name}_deleted"
    _stage(conn, stage, [(spec.key, "bigint"), ("updated_at", "timestamp")], deletions)
    params = {"table": spec.name}
    later_deletion = f"""exists (select from raw.deleted_key d where d.table_name = %(table)s
                                 and d.key_value = s.{spec.key} and d.deleted_at >= s.updated_at)"""
    removed = conn.execute(
        f"""delete from {spec.raw_table} t using {stage} s
            where t.{spec.key} = s.{spec.key} and t.updated_at < s.updated_at""",
        params,
    ).rowcount
    # after the delete, a RAW row still holding the key is as new as the deletion or newer: it stays
    kept = conn.execute(
        f"""insert into raw.deleted_key (table_name, key_value, deleted_at)
            select %(table)s, s.{spec.key}, s.updated_at from {stage} s
            where not exists (select from {spec.raw_table} t where t.{spec.key} = s.{spec.key})
              and not {later_deletion}
            on conflict do nothing""",
        params,
    ).rowcount
    return removed, kept


def reject_rows(conn: psycopg.Connection, table: str, file_path: str, rejected: pl.DataFrame) -> None:
    """Rejected rows (LINE, reason, row_data as JSON text) into raw.rejected_row."""
    if not rejected.height:
        return
    _stage(conn, "ingest_rejected", [("line_number", "bigint"), ("reason", "text"), ("row_data", "text")],
           rejected.select(pl.col(LINE).alias("line_number"), "reason", "row_data"))  # fmt: skip
    conn.execute(
        """insert into raw.rejected_row (table_name, file_path, line_number, reason, row_data)
           select %s, %s, line_number, reason, row_data::jsonb from ingest_rejected order by line_number""",
        (table, file_path),
    )


def _stage(conn: psycopg.Connection, stage: str, columns: list[tuple[str, str]], frame: pl.DataFrame) -> None:
    """A temporary table dropped at commit, filled by binary COPY of `frame` (its columns in this order)."""
    conn.execute(
        f"create temporary table {stage} ({', '.join(f'{name} {pg_type}' for name, pg_type in columns)}) "
        "on commit drop"
    )
    _copy(conn, stage, columns, frame)


def _copy(conn: psycopg.Connection, table: str, columns: list[tuple[str, str]], frame: pl.DataFrame) -> None:
    """Binary COPY of `frame` (the columns `columns` name, in their order) into `table`."""
    types = [pg_type for _, pg_type in columns]
    names = ", ".join(name for name, _ in columns)
    with conn.cursor().copy(f"copy {table} ({names}) from stdin (format binary)") as copy:
        copy.write(pgbinary.SIGNATURE)
        for chunk in frame.iter_slices(CHUNK_ROWS):
            copy.write(pgbinary.encode(chunk, types))
        copy.write(pgbinary.TRAILER)
