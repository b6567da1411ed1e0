"""Each row of a landed file checked against RAW's rules (CONTRACT.md 1.1, 1.5 and 7), vectorised in Polars:
parsed into RAW's types, or rejected with every reason it breaks.

The checks are RAW's own constraints (datagen/raw.sql) done before the merge, so that no row reaches RAW to
be refused there (which would abort its whole file), and each is at least as strict as RAW's:
- a key and every other column present (a deletion needs only its key and updated_at), integers integral and
  in range, no NUL character in text (PostgreSQL's text cannot hold one);
- first_name and last_name not blank: something other than white space, Unicode's included (the character
  class of raw.sql; Rust's `\\s` is Unicode's White_Space, a superset of PostgreSQL's `[:space:]`);
- birth_date a `YYYY-MM-DD` date before today (UTC, the database's clock);
- timestamps ISO 8601 UTC: `YYYY-MM-DD HH:MM:SS` or with `T`, an optional fraction of up to 9 digits
  (microseconds kept), an optional `Z` or `+00:00`; updated_at at most 5 minutes past the database's clock;
- price a decimal number, rounded to cents as numeric(12,2) rounds (half away from zero), then > 0 and
  below 10^10; quantity an integer > 0 (in PostgreSQL's integer range);
- `deleted` (optional) true/false, t/f, yes/no, y/n, 1/0 or empty (false).
A value may come as text (CSV, or JSON strings) or typed (Parquet, JSON numbers): both are accepted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from tshop.ingest.read import LINE
from tshop.ingest.tables import DELETED, Column, TableSpec

NOT_BLANK = r"[^\s\x{00a0}\x{1680}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}]"
DATE = r"^\d{4}-\d{2}-\d{2}$"
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]00:?00)?$"
DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)$"
FUTURE_ALLOWANCE = dt.timedelta(minutes=5)
MAX_CENTS = 10**12  # numeric(12,2): below 10^10
TRUE = ["true", "t", "yes", "y", "1"]
FALSE = ["false", "f", "no", "n", "0"]

NOUNS = {
    "bigint": "an integer",
    "quantity": "an integer",
    "text": "text",
    "name": "text",
    "birth_date": "a date (YYYY-MM-DD)",
    "timestamp": "an ISO 8601 UTC timestamp",
    "updated_at": "an ISO 8601 UTC timestamp",
    "price": "a decimal number",
}
STAGE_DTYPES = {
    "bigint": pl.Int64,
    "quantity": pl.Int32,
    "text": pl.String,
    "name": pl.String,
    "birth_date": pl.Date,
    "timestamp": pl.Datetime("us"),
    "updated_at": pl.Datetime("us"),
    "price": pl.Int64,
}


@dataclass
class Checked:
    accepted: pl.DataFrame  # LINE, `deleted`, the table's columns as staged (price as price_cents)
    rejected: pl.DataFrame  # LINE, reason, row_data (JSON text of the values as read)


def check(frame: pl.DataFrame, spec: TableSpec, now: dt.datetime) -> Checked:
    """Split `frame` (as read: normalised column names and LINE) into accepted rows in RAW's types and
    rejected rows with their reasons. `now` is the database's clock (naive UTC)."""
    originals = [column for column in frame.columns if column != LINE]
    missing = [column for column in [*spec.column_names, DELETED] if column not in frame.columns]
    frame = frame.with_columns(pl.lit(None, pl.String).alias(column) for column in missing)
    limits = {"today": now.date(), "latest": now + FUTURE_ALLOWANCE}

    # first every value parsed once (and whether it was there at all), then the checks on those columns
    parts = {column.name: _parse(column, frame.schema[column.name]) for column in spec.columns}
    deleted, deleted_reason = _deleted(frame.schema[DELETED])
    parsed = frame.with_columns(
        *(expr.alias(f"__{part}_{name}") for name, exprs in parts.items() for part, expr in exprs.items()),
        deleted.alias("__deleted"),
        deleted_reason.alias("__reason_deleted"),
    )
    reasons = {
        column.name: _checks(
            column, {part: pl.col(f"__{part}_{column.name}") for part in parts[column.name]}, limits
        )
        for column in spec.columns
    }
    # a deletion needs only its key and updated_at: its other columns may be absent or anything
    always = {spec.key, "updated_at"}
    reason = pl.concat_str(
        [
            reasons[name] if name in always else pl.when(~pl.col("__deleted")).then(reasons[name])
            for name in reasons
        ]
        + [pl.col("__reason_deleted")],
        separator="; ",
        ignore_nulls=True,
    )
    parsed = parsed.with_columns(reason.alias("__reason"))  # "" when the row breaks no rule
    bad = pl.col("__reason") != ""
    accepted = parsed.filter(~bad).select(
        LINE,
        pl.col("__deleted").alias(DELETED),
        *(pl.col(f"__value_{column.name}").alias(column.stage_name) for column in spec.columns),
    )
    rejected = parsed.filter(bad).select(LINE, pl.col("__reason").alias("reason"), row_data(originals))
    return Checked(accepted, rejected)


def row_data(columns: list[str]) -> pl.Expr:
    """The values as read, as JSON text for `raw.rejected_row.row_data` (jsonb, which cannot hold NUL)."""
    return (
        pl.struct(columns)
        .struct.json_encode()
        .str.replace_all(r"\u0000", r"\ufffd", literal=True)
        .alias("row_data")
    )


def _text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return column if dtype == pl.String else column.cast(pl.String)


def _reasons(*pairs: tuple[pl.Expr, str]) -> pl.Expr:
    """The texts whose conditions hold, joined by "; "; null when none does."""
    joined = pl.concat_str(
        [pl.when(condition).then(pl.lit(text)) for condition, text in pairs],
        separator="; ",
        ignore_nulls=True,
    )
    return pl.when(joined != "").then(joined)


def _parse(column: Column, dtype: pl.DataType) -> dict[str, pl.Expr]:
    """The column parsed: `value` in its staged type (null where unusable), `absent` (null, or only white
    space where it is not text), and for a price `number` (whether it is written as a decimal number)."""
    kind, source = column.kind, pl.col(column.name)
    target = STAGE_DTYPES[kind]
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        return {"value": pl.lit(None, target), "absent": source.is_null()}
    if kind in ("text", "name"):
        value = _text(source, dtype)
        return {"value": value, "absent": value.is_null()}

    text = _text(source, dtype).str.strip_chars()
    absent = (text.is_null() | (text == "")) if dtype == pl.String else source.is_null()
    if kind in ("bigint", "quantity"):
        if dtype.is_integer():
            value = source.cast(target, strict=False)
        elif dtype.is_float():
            value = pl.when(source == source.floor()).then(source.cast(target, strict=False))
        else:
            value = text.cast(target, strict=False)
        return {"value": value, "absent": absent}
    if kind == "birth_date":
        if dtype == pl.Date:
            value = source
        else:
            value = pl.when(text.str.contains(DATE)).then(
                text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
            )
        return {"value": value, "absent": absent}
    if kind in ("timestamp", "updated_at"):
        if isinstance(dtype, pl.Datetime):
            value = (
                source.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if dtype.time_zone else source
            )
            value = value.dt.cast_time_unit("us")
        else:
            utc = text.str.replace(r"(Z|[+-]00:?00)$", "").str.replace("T", " ", literal=True)
            value = pl.when(text.str.contains(TIMESTAMP)).then(
                utc.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)
            )
        return {"value": value, "absent": absent}
    if kind == "price":
        number = text.str.contains(DECIMAL)
        parts = text.str.extract_groups(r"^([+-]?)(\d*)(?:\.(\d*))?$")
        whole = parts.struct.field("2").str.strip_chars_start("0").str.zfill(1)
        fraction = parts.struct.field("3").fill_null("").str.pad_end(3, "0")
        fits = number & (whole.str.len_chars() <= 10)
        cents = (
            pl.when(fits).then(whole).cast(pl.Int64, strict=False) * 100
            + fraction.str.slice(0, 2).cast(pl.Int64, strict=False)
            + (fraction.str.slice(2, 1).cast(pl.Int64, strict=False) >= 5).cast(pl.Int64)
        )
        value = pl.when(fits).then(pl.when(parts.struct.field("1") == "-").then(-cents).otherwise(cents))
        return {"value": pl.when(value.abs() < MAX_CENTS).then(value), "absent": absent, "number": number}
    raise ValueError(f"unknown column kind {kind!r}")


def _checks(column: Column, parsed: dict[str, pl.Expr], limits: dict) -> pl.Expr:
    """The reasons the parsed column breaks a rule, joined; null when it breaks none."""
    name, kind = column.name, column.kind
    value, absent = parsed["value"], parsed["absent"]
    checks = [(absent, f"{name} is missing")]
    if kind in ("text", "name"):
        checks.append((value.str.contains("\x00", literal=True), f"{name} contains a NUL character"))
        if kind == "name":
            checks.append((~value.str.contains(NOT_BLANK), f"{name} is blank"))
        return _reasons(*checks)
    if kind == "price":
        number = parsed["number"]
        checks += [
            (~absent & ~number, f"{name} is not {NOUNS[kind]}"),
            (number & value.is_null(), f"{name} is out of range for numeric(12,2)"),
        ]
    else:
        checks.append((~absent & value.is_null(), f"{name} is not {NOUNS[kind]}"))
    if kind in ("quantity", "price"):
        checks.append((value <= 0, f"{name} is not greater than 0"))
    elif kind == "birth_date":
        checks.append((value >= limits["today"], f"{name} is not in the past"))
    elif kind == "updated_at":
        checks.append((value > limits["latest"], f"{name} is more than 5 minutes in the future"))
    return _reasons(*checks)


def _deleted(dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    source = pl.col(DELETED)
    if dtype == pl.Boolean:
        return source.fill_null(False), pl.lit(None, pl.String)
    if dtype.is_integer():
        return source.fill_null(0) == 1, _reasons(
            (source.is_not_null() & ~source.is_in([0, 1]), "deleted is not a boolean")
        )
    text = _text(source, dtype).str.strip_chars().str.to_lowercase()
    false = text.is_null() | (text == "") | text.is_in(FALSE)
    true = text.is_in(TRUE)
    return true.fill_null(False), _reasons((~true & ~false, "deleted is not a boolean"))
