"""The shop in memory: a `ShopWriter` (`datagen/shop_writer.py`) that keeps RAW's three tables as Polars
frames, with RAW's SCD1 semantics (a change overwrites its row). `ShopSimulation(MemoryWriter())` runs
without a database or files, so the simulated days and their invariants are tested in memory, fast; it is
the reference the landing zone's files are checked against (tests/datagen/test_writers.py).
`MemoryEventSink` keeps the simulated events (`datagen/events.py`) the same way.

Sized for tests and small shops: every write copies the touched table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import numpy as np
import polars as pl

from datagen.events import LINE_COLUMNS, encode
from datagen.record import IdRanges, ShopRecord
from datagen.shop_writer import COLUMNS, SCHEMAS, GreatestIds


class MemoryWriter:
    place = "memory"
    clock_name = "the memory writer's clock"

    def __init__(self, today: dt.date | None = None):
        """`today`: the date its clock says (UTC); None follows this machine's clock."""
        self._today = today
        self.tables: dict[str, pl.DataFrame] = {table: schema.to_frame() for table, schema in SCHEMAS.items()}
        self.record: ShopRecord | None = None
        self.days: dict[dt.date, dict[str, int]] = {}  # business day -> seed and counts, as raw.generated_day

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def today(self) -> dt.date:
        return self._today or dt.datetime.now(dt.UTC).date()

    def prepare(self) -> None:
        pass

    def shop_record(self) -> ShopRecord | None:
        return self.record

    def last_day(self) -> dt.date | None:
        return max(self.days, default=None)

    def loaded_days(self, days: list[dt.date]) -> list[dt.date]:
        return sorted(set(days) & self.days.keys())

    @contextmanager
    def day(self, day: dt.date) -> Iterator[None]:
        # frames are immutable: keeping the references is a snapshot
        before = dict(self.tables), self.record, dict(self.days)
        try:
            yield
        except BaseException:
            self.tables, self.record, self.days = dict(before[0]), before[1], dict(before[2])
            raise

    def greatest_ids(self) -> GreatestIds:
        def greatest(table: str, column: str) -> int:
            return int(self.tables[table][column].max() or 0)

        return GreatestIds(
            greatest("raw.customer", "customer_id"),
            greatest("raw.product", "product_id"),
            greatest("raw.sales", "order_id"),
            greatest("raw.sales", "sale_id"),
        )

    def products(self, ids: IdRanges) -> pl.DataFrame:
        catalogue = self.tables["raw.product"].sort("product_id")
        return catalogue.filter(pl.Series(ids.contains(catalogue["product_id"].to_numpy()))).select(
            "product_id", "name", "price"
        )

    def lines_sold(self, day: dt.date, ids: IdRanges) -> pl.DataFrame:
        lines = self.tables["raw.sales"].filter(pl.col("sold_at").dt.date() == day).sort("sale_id")
        return lines.filter(pl.Series(ids.contains(lines["sale_id"].to_numpy()))).select(
            "sale_id", "quantity"
        )

    def lines_per_day(self, since: dt.date) -> dict[dt.date, int]:
        return {day: counts["sale_lines"] for day, counts in sorted(self.days.items()) if day >= since}

    def sale_lines(self, ids: np.ndarray) -> pl.DataFrame:
        sales = self.tables["raw.sales"]
        return (
            sales.filter(pl.col("sale_id").is_in(pl.Series(ids, dtype=pl.Int64).implode()))
            .sort("sale_id")
            .select(LINE_COLUMNS)
        )

    def append(self, table: str, frame: pl.DataFrame) -> None:
        if frame.columns != COLUMNS[table]:
            raise ValueError(f"{table} takes {COLUMNS[table]}, got {frame.columns}")
        self.tables[table] = pl.concat([self.tables[table], _typed(table, frame)])

    def overwrite(self, table: str, key: str, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        self.tables[table] = self.tables[table].update(_typed(table, frame), on=key)

    def save_record(self, record: ShopRecord) -> None:
        self.record = record

    def record_day(self, day: dt.date, seed: int, counts: dict[str, int]) -> None:
        self.days[day] = {"seed": seed, **counts}

    def rows(self, table: str) -> pl.DataFrame:
        """The table's rows by key, as `select <contract columns> from <table> order by <key>` reads them."""
        return self.tables[table].sort(COLUMNS[table][0])


def _typed(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.cast({column: SCHEMAS[table][column] for column in frame.columns})


class MemoryEventSink:
    """An `EventSink` (`datagen/events.py`) that keeps each day's documents as frames: `documents[(kind,
    day)]`, and every write in order in `writes` (a day written again replaces its documents)."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, dt.date], pl.DataFrame] = {}
        self.writes: list[tuple[str, dt.date]] = []

    def write(self, kind: str, day: dt.date, documents: pl.DataFrame) -> None:
        self.documents[(kind, day)] = documents
        self.writes.append((kind, day))

    def frame(self, kind: str) -> pl.DataFrame:
        """Every day's documents of `kind`, by day."""
        frames = [frame for (of, _), frame in sorted(self.documents.items()) if of == kind]
        return pl.concat(frames) if frames else pl.DataFrame()

    def encoded(self, kind: str, day: dt.date) -> bytes:
        """The day's file as the landing zone holds it (JSON lines, gzip)."""
        return encode(self.documents[(kind, day)])
