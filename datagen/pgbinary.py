"""PostgreSQL's binary COPY format, encoded a whole Polars frame at a time with numpy.

psycopg's `write_row` formats one Python tuple per row, and at millions of rows that loop costs more than
PostgreSQL's own COPY. Here each column becomes big-endian bytes in one vectorised step and the rows are
assembled with index arithmetic, so the client keeps up with the server. A frame whose column does not hold
the table column's type is refused before anything is sent: the format carries no type information, and a
wrong width would be read as garbage rather than rejected.

Format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
"""

from __future__ import annotations

import numpy as np
import polars as pl

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days after 1970-01-01
PG_EPOCH_MICROS = PG_EPOCH_DAYS * 86_400_000_000

# PostgreSQL type -> (Polars dtypes accepted, big-endian numpy type of the wire value or None for text)
ENCODINGS: dict[str, tuple[tuple[type[pl.DataType], ...], str | None]] = {
    "bigint": ((pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt32, pl.UInt16, pl.UInt8), ">i8"),
    "integer": ((pl.Int32, pl.Int16, pl.Int8, pl.UInt16, pl.UInt8), ">i4"),
    "date": ((pl.Date,), ">i4"),
    "timestamp": ((pl.Datetime,), ">i8"),
    "text": ((pl.String,), None),
}


def supports(types: list[str]) -> bool:
    return all(pg_type in ENCODINGS for pg_type in types)


def _wire_values(series: pl.Series, pg_type: str) -> np.ndarray:
    accepted, wire = ENCODINGS[pg_type]
    if not isinstance(series.dtype, accepted):
        raise TypeError(f"column {series.name!r} holds {series.dtype}, which is not a PostgreSQL {pg_type}")
    if pg_type == "date":
        series = series.cast(pl.Int32) - PG_EPOCH_DAYS
    elif pg_type == "timestamp":
        if series.dtype.time_zone is not None:  # type: ignore[attr-defined]
            raise TypeError(f"column {series.name!r} has a time zone; the table's timestamp has none")
        series = series.dt.cast_time_unit("us").cast(pl.Int64) - PG_EPOCH_MICROS
    return series.to_numpy().astype(wire)


def encode(frame: pl.DataFrame, types: list[str]) -> bytes:
    """The rows of `frame` in binary COPY format (no signature or trailer), its columns as `types`."""
    if len(types) != frame.width:
        raise ValueError(f"{frame.width} columns but {len(types)} types")
    for series in frame.iter_columns():
        if series.null_count():
            raise ValueError(f"column {series.name!r} has nulls; RAW columns are not null")
    rows = frame.height
    fields: list[tuple[np.ndarray, np.ndarray]] = []  # per column: lengths per row, payload bytes
    for series, pg_type in zip(frame.iter_columns(), types, strict=True):
        if pg_type == "text":
            payload = np.frombuffer(series.str.join("").item().encode(), dtype=np.uint8)
            lengths = series.str.len_bytes().to_numpy().astype(np.int64)
        else:
            values = _wire_values(series, pg_type)
            payload = values.view(np.uint8)
            lengths = np.full(rows, values.dtype.itemsize, dtype=np.int64)
        fields.append((lengths, payload))

    row_sizes = 2 + sum(4 + lengths for lengths, _ in fields)
    row_starts = np.zeros(rows, dtype=np.int64)
    np.cumsum(row_sizes[:-1], out=row_starts[1:])
    buffer = np.empty(int(row_starts[-1] + row_sizes[-1]) if rows else 0, dtype=np.uint8)

    def scatter(starts: np.ndarray, width: int, data: np.ndarray) -> None:
        buffer[(starts[:, None] + np.arange(width)).ravel()] = data

    scatter(row_starts, 2, np.tile(np.array([frame.width], dtype=">i2").view(np.uint8), rows))
    offsets = row_starts + 2
    for lengths, payload in fields:
        scatter(offsets, 4, lengths.astype(">i4").view(np.uint8))
        starts = offsets + 4
        if lengths.size and (lengths == lengths[0]).all():
            scatter(starts, int(lengths[0]), payload)
        else:  # variable width: each byte goes to its row's start plus its place within the value
            value_starts = np.zeros(rows, dtype=np.int64)
            np.cumsum(lengths[:-1], out=value_starts[1:])
            buffer[np.repeat(starts - value_starts, lengths) + np.arange(payload.size)] = payload
        offsets = starts + lengths
    return buffer.tobytes()
