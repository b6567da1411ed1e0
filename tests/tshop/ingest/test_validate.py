"""The row checks on their own (no database): which spellings of a value are kept, in which RAW type, and
which are refused with which reason."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from tshop.ingest.read import LINE
from tshop.ingest.tables import TABLES
from tshop.ingest.validate import check

NOW = dt.datetime(2026, 1, 15, 12, 0, 0)


def checked(table: str, **columns: list) -> tuple[pl.DataFrame, dict[int, str]]:
    frame = pl.DataFrame(columns, strict=False)
    frame = frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    result = check(frame, TABLES[table], NOW)
    return result.accepted, dict(zip(result.rejected[LINE], result.rejected["reason"]))


def customers(**overrides: list) -> dict[str, list]:
    size = len(next(iter(overrides.values())))
    base = {
        "customer_id": [str(i) for i in range(1, size + 1)],
        "first_name": ["Ann"] * size,
        "last_name": ["Lee"] * size,
        "birth_date": ["1990-05-01"] * size,
        "updated_at": ["2024-03-05 10:00:00"] * size,
    }
    return {**base, **overrides}


def test_timestamp_spellings():
    """Kept: space or T, a fraction of 1-9 digits (microseconds kept), Z or +00:00, surrounding blanks, up to 5
    minutes ahead of the database's clock. Refused: other offsets, a date alone, day-first, impossible dates,
    more than 5 minutes ahead."""
    kept = ["2024-03-05 10:00:00", "2024-03-05T10:00:00", "2024-03-05 10:00:00.5", "2024-03-05T10:00:00.123456789Z",
            "2024-03-05 10:00:00+00:00", " 2024-03-05 10:00:00 ", "2026-01-15 12:04:59"]  # fmt: skip
    refused = ["2024-03-05 10:00:00+01:00", "2024-03-05", "05.03.2024 10:00:00", "2024-02-30 10:00:00",
               "2024-03-05 10:00", "2026-01-15 12:05:01"]  # fmt: skip
    accepted, rejected = checked("customer", **customers(updated_at=kept + refused))
    assert accepted["updated_at"].to_list() == [
        dt.datetime(2024, 3, 5, 10),
        dt.datetime(2024, 3, 5, 10),
        dt.datetime(2024, 3, 5, 10, 0, 0, 500000),
        dt.datetime(2024, 3, 5, 10, 0, 0, 123456),
        dt.datetime(2024, 3, 5, 10),
        dt.datetime(2024, 3, 5, 10),
        dt.datetime(2026, 1, 15, 12, 4, 59),
    ]
    assert set(rejected) == set(range(8, 14))
    assert rejected[13] == "updated_at is more than 5 minutes in the future"
    assert {rejected[line] for line in range(8, 13)} == {"updated_at is not an ISO 8601 UTC timestamp"}


def test_names_are_not_blank_and_hold_no_nul():
    """Kept: names with spaces inside or around letters. Refused: empty after trimming any white space
    (tabs, newlines, no-break and ideographic spaces, zero-width space, byte-order mark), a NUL character,
    a missing value."""
    names = [" Ann ", "Mary Ann", "\t\n", "\u00a0\u2003\u3000", "\u200b\ufeff", "", "An\x00n", None]
    accepted, rejected = checked("customer", **customers(first_name=names))
    assert accepted["first_name"].to_list() == [" Ann ", "Mary Ann"]
    assert rejected == {
        3: "first_name is blank",
        4: "first_name is blank",
        5: "first_name is blank",
        6: "first_name is blank",
        7: "first_name contains a NUL character",
        8: "first_name is missing",
    }


def test_birth_dates_are_dates_in_the_past():
    accepted, rejected = checked(
        "customer", **customers(birth_date=["2026-01-14", "2026-01-15", "1990-5-1", None])
    )
    assert accepted["birth_date"].to_list() == [dt.date(2026, 1, 14)]
    assert rejected == {
        2: "birth_date is not in the past",
        3: "birth_date is not a date (YYYY-MM-DD)",
        4: "birth_date is missing",
    }


def test_prices_round_to_cents_like_numeric_12_2():
    """Kept, in cents: plain, signed, leading zeros, a fraction rounded half away from zero. Refused: zero
    or below after rounding, not a decimal number, 10^10 or more after rounding."""
    prices = ["19.99", "+5", "007.5", ".5", "1.005", "2.994", "9999999999.994",
              "0.004", "-1", "0", "1e3", "ten", "9999999999.995", "12345678901"]  # fmt: skip
    size = len(prices)
    accepted, rejected = checked(
        "product",
        product_id=[str(i) for i in range(1, size + 1)],
        name=["Boot"] * size,
        category=["shoes"] * size,
        size=["42"] * size,
        price=prices,
        updated_at=["2024-03-05 10:00:00"] * size,
    )
    assert accepted["price_cents"].to_list() == [1999, 500, 750, 50, 101, 299, 999999999999]
    assert rejected == {
        8: "price is not greater than 0",
        9: "price is not greater than 0",
        10: "price is not greater than 0",
        11: "price is not a decimal number",
        12: "price is not a decimal number",
        13: "price is out of range for numeric(12,2)",
        14: "price is out of range for numeric(12,2)",
    }


def test_typed_values_from_parquet_or_json():
    """Kept: integers of any width, integral floats, timestamps with a time zone (converted to UTC), dates.
    Refused: a fractional key, a quantity beyond PostgreSQL's integer."""
    accepted, rejected = checked(
        "sales",
        sale_id=[1.0, 2.5, 3.0],
        order_id=pl.Series([7, 7, 7], dtype=pl.UInt8),
        sold_at=pl.Series([dt.datetime(2024, 3, 5, 12)] * 3).dt.replace_time_zone("Asia/Tokyo"),
        customer_id=[1, 1, 1],
        product_id=[1, 1, 1],
        quantity=[1, 1, 2**31],
        updated_at=[dt.datetime(2024, 3, 5, 3)] * 3,
    )
    assert accepted.select("sale_id", "order_id", "sold_at", "quantity").rows() == [
        (1, 7, dt.datetime(2024, 3, 5, 3), 1)
    ]
    assert accepted.schema["quantity"] == pl.Int32
    assert rejected == {2: "sale_id is not an integer", 3: "quantity is not an integer"}


def test_deletions_need_only_their_key_and_updated_at():
    """Kept as deletions: true spelled any common way, with no other values. Refused: a deletion without
    updated_at, a `deleted` that is no boolean. An empty `deleted` is a plain row."""
    accepted, rejected = checked(
        "customer",
        customer_id=["1", "2", "3", "4", "5", "6"],
        updated_at=[
            "2024-03-05 10:00:00",
            "2024-03-05 10:00:00",
            "2024-03-05 10:00:00",
            None,
            "2024-03-05 10:00:00",
            "2024-03-05 10:00:00",
        ],  # fmt: skip
        deleted=["true", "YES", "1", "true", "maybe", ""],
    )
    assert accepted.select("customer_id", "deleted").rows() == [(1, True), (2, True), (3, True)]
    assert rejected[4] == "updated_at is missing"
    assert rejected[5].endswith("deleted is not a boolean")
    assert rejected[6].startswith("first_name is missing")  # not a deletion: every column is needed


def test_rejected_rows_keep_the_values_as_read():
    frame = pl.DataFrame({"customer_id": ["x"], "first_name": ["A\x00"], "email": ["a@b.c"]})
    frame = frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    result = check(frame, TABLES["customer"], NOW)
    [row] = result.rejected.to_dicts()
    assert json.loads(row["row_data"]) == {"customer_id": "x", "first_name": "A\ufffd", "email": "a@b.c"}
    assert row["reason"].split("; ")[:2] == [
        "customer_id is not an integer",
        "first_name contains a NUL character",
    ]


@pytest.mark.parametrize("value", ["1_000", "0x10", "1.0", "١٢"])
def test_keys_are_plain_integers(value):
    _, rejected = checked("customer", **customers(customer_id=[value]))
    assert rejected == {1: "customer_id is not an integer"}
