"""The shop in memory: a `ShopWriter` (`datagen/shop_writer.py`) that keeps RAW's three tables as Polars
frames, with RAW's SCD1 semantics (a change overwrites its row). `ShopSimulation(MemoryWriter())` runs
without a database or files, so the simulated days and their invariants are tested in memory, fast; it is
the reference the landing zone's files are checked against (tests/datagen/test_writers.py).

Sized for tests and small shops: every write copies the touched table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import polars as pl

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
