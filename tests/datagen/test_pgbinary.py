"""The vectorised binary COPY encoder writes exactly what psycopg's row-by-row COPY writes, and refuses
frames whose columns do not hold the table's types."""

from __future__ import annotations

import datetime as dt

import polars as pl
import psycopg
import pytest

from datagen import pgbinary

TYPES = ["bigint", "text", "date", "timestamp", "integer", "text"]
TABLE = "create table t (id bigint, name text, born date, at timestamp, quantity integer, note text)"


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, -2, 9_007_199_254_740_993, 0],
            "name": ["Ada", "Zoë Ørsted", "", "名前"],  # multi-byte UTF-8 and an empty string
            "born": [dt.date(1815, 12, 10), dt.date(2000, 1, 1), dt.date(1999, 12, 31), dt.date(2024, 2, 29)],
            "at": [
                dt.datetime(2024, 3, 4, 0, 0, 0, 1),
                dt.datetime(1970, 1, 1),
                dt.datetime(2000, 1, 1),
                dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
            ],
            "quantity": pl.Series([1, 2, -3, 2_147_483_647], dtype=pl.Int32),
            "note": ["same", "same", "same", "same"],  # equal widths take the fixed-width path
        }
    )


def load(conn: psycopg.Connection, table: str, frame: pl.DataFrame, vectorised: bool) -> list[tuple]:
    conn.execute(TABLE.replace(" t ", f" {table} "))
    with conn.cursor().copy(f"copy {table} from stdin (format binary)") as copy:
        if vectorised:
            copy.write(pgbinary.SIGNATURE + pgbinary.encode(frame, TYPES) + pgbinary.TRAILER)
        else:
            copy.set_types(TYPES)
            for row in frame.iter_rows():
                copy.write_row(row)
    return conn.execute(f"select * from {table} order by id").fetchall()


def test_encoded_rows_read_back_as_psycopg_writes_them(new_database, frame):
    with psycopg.connect(new_database("pgbinary")) as conn:
        assert load(conn, "vectorised", frame, True) == load(conn, "row_by_row", frame, False)
        assert len(load(conn, "chunked", pl.concat([frame] * 1000).with_row_index("i").with_columns(
            id=pl.col("i").cast(pl.Int64)).drop("i"), True)) == 4000  # fmt: skip


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "id",
            pl.Series("id", ["1", "2", "3", "4"]),
            "column 'id' holds String, which is not a PostgreSQL bigint",
        ),
        ("born", pl.Series("born", [dt.datetime(2024, 1, 1)] * 4), "not a PostgreSQL date"),
        ("at", pl.Series("at", [dt.datetime(2024, 1, 1)] * 4).dt.replace_time_zone("UTC"), "has a time zone"),
        ("name", pl.Series("name", ["a", None, "c", "d"]), "column 'name' has nulls"),
    ],
)
def test_a_column_of_the_wrong_type_is_refused_before_anything_is_sent(frame, column, value, message):
    with pytest.raises((TypeError, ValueError), match=message):
        pgbinary.encode(frame.with_columns(value.alias(column)), TYPES)
