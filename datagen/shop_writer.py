"""Where the simulated days go: the `ShopWriter` protocol that `ShopSimulation` drives.

Three writers implement it: `RawWriter` (`datagen/writer.py`, PostgreSQL's RAW by binary COPY),
`LandingWriter` (`datagen/landing.py`, files in the landing zone, as an outside system's export would look)
and `MemoryWriter` (`datagen/memory.py`, Polars frames in memory, for tests without a database). The
simulation draws the same rows whichever it writes to: it reads back only the shop's own state (its
record, the catalogue's current rows, the lines sold the day before, and for the reviews of the events
(`datagen/events.py`) the lines of the days before by sale_id), which every writer keeps alike.

A run is `with writer:` (a connection opened, a state read); inside it `today()` and the reads that decide
what to simulate, then one `with writer.day(day):` per simulated day: everything written inside it is
there completely or not at all when it ends (PostgreSQL: one transaction; files: written whole and renamed
into place, the generator's state last).

Tables are named as in RAW (`raw.customer`, `raw.product`, `raw.sales`); frames hold RAW's columns in
RAW's order (CONTRACT.md section 1.1), and a change (`overwrite`) only the key, the changed columns and
`updated_at`.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
import polars as pl

from datagen.record import IdRanges, ShopRecord

TIMESTAMP = pl.Datetime("us")  # PostgreSQL's timestamp: microseconds, no time zone (UTC by the contract)
# the contract's columns of each RAW table, in RAW's order, as the simulation's frames hold them (RAW's own
# loaded_at / loaded_xid are set by the database, not by a writer)
SCHEMAS: dict[str, pl.Schema] = {
    "raw.customer": pl.Schema(
        {"customer_id": pl.Int64, "first_name": pl.String, "last_name": pl.String, "birth_date": pl.Date,
         "updated_at": TIMESTAMP}
    ),
    "raw.product": pl.Schema(
        {"product_id": pl.Int64, "name": pl.String, "category": pl.String, "size": pl.String,
         "price": pl.Decimal(12, 2), "updated_at": TIMESTAMP}
    ),
    "raw.sales": pl.Schema(
        {"sale_id": pl.Int64, "order_id": pl.Int64, "sold_at": TIMESTAMP, "customer_id": pl.Int64,
         "product_id": pl.Int64, "quantity": pl.Int32, "updated_at": TIMESTAMP}
    ),
}  # fmt: skip
TABLES = tuple(SCHEMAS)
COLUMNS = {table: schema.names() for table, schema in SCHEMAS.items()}
KEYS = {table: columns[0] for table, columns in COLUMNS.items()}
# what a simulated day records of itself (raw.generated_day's columns)
DAY_COUNTS = ("customers_added", "orders", "sale_lines", "last_name_changes", "price_changes",
              "sale_corrections")  # fmt: skip


@dataclass(frozen=True)
class GreatestIds:
    """The greatest id of each kind the target holds, whoever wrote it (0 when there is none)."""

    customer: int
    product: int
    order: int
    sale: int


class ShopWriter(Protocol):
    """What the simulation needs of the place it writes the shop to."""

    place: str  # how messages name the target: "RAW", "the landing zone"
    clock_name: str  # whose clock `today()` reads: "the database's clock", "this machine's clock"

    def __enter__(self) -> Self:
        """Open the target for one run (connect, read the generator's state); nothing is created yet."""
        ...

    def __exit__(self, *exc_info: object) -> None: ...

    def today(self) -> dt.date:
        """Today (UTC) by the target's clock: a business day is simulated once it is over."""
        ...

    def prepare(self) -> None:
        """Create or upgrade what the target needs (RAW's tables), before the first read of it."""
        ...

    def shop_record(self) -> ShopRecord | None:
        """The generator's record of the shop the target holds, None when it holds none."""
        ...

    def last_day(self) -> dt.date | None:
        """The last business day simulated into the target."""
        ...

    def loaded_days(self, days: list[dt.date]) -> list[dt.date]:
        """Those of `days` already simulated into the target, in order."""
        ...

    def day(self, day: dt.date) -> AbstractContextManager[None]:
        """One simulated day, all or nothing: what is written inside is kept only if the block ends
        without an exception. Generators writing one target take turns here, a day at a time."""
        ...

    def greatest_ids(self) -> GreatestIds:
        """New ids of each kind start after these: never one that another writer already used."""
        ...

    def products(self, ids: IdRanges) -> pl.DataFrame:
        """The shop's own products as they are now (product_id, name, price), by product_id."""
        ...

    def lines_sold(self, day: dt.date, ids: IdRanges) -> pl.DataFrame:
        """The shop's own sale lines sold on `day` (sale_id, quantity), by sale_id."""
        ...

    def lines_per_day(self, since: dt.date) -> dict[dt.date, int]:
        """The sale lines (DAY_COUNTS' `sale_lines`) of each simulated day from `since` on."""
        ...

    def sale_lines(self, ids: np.ndarray) -> pl.DataFrame:
        """The shop's own sale lines with these sale_ids as they are now (sale_id, order_id, sold_at,
        customer_id, product_id), by sale_id; an id it does not hold is left out. Asked for lines of the
        last REVIEW_WINDOW days (`datagen/events.py`) only: the landing zone keeps no older ones."""
        ...

    def append(self, table: str, frame: pl.DataFrame) -> None:
        """New rows: every column of the table, in its order."""
        ...

    def overwrite(self, table: str, key: str, frame: pl.DataFrame) -> None:
        """SCD1 changes: the rows with the keys of `frame` take its columns (always `updated_at`)."""
        ...

    def save_record(self, record: ShopRecord) -> None:
        """The generator's record of the shop after the day, kept with the day."""
        ...

    def record_day(self, day: dt.date, seed: int, counts: dict[str, int]) -> None:
        """The day as simulated (its DAY_COUNTS), so that it is never simulated again."""
        ...
