"""The landing zone as a `ShopWriter` (`datagen/shop_writer.py`): `tshop-datagen generate --to landing`
writes the simulated days as files, the way an outside shop system's daily export would arrive
(CONTRACT.md section 7), for `tshop ingest` to merge into RAW.

Layout under the landing URL (`file:///...`, or any URL fsspec opens, such as `s3://bucket/prefix` with s3fs):

    incoming/customer/2024-03-05/customer-2024-03-05.csv        customers: CSV
    incoming/product/2024-03-05/product-2024-03-05.csv          products: CSV
    incoming/sales/2024-03-05/sales-2024-03-05.parquet          sale lines: Parquet (both reader paths run)
    _generator/shop.json, _generator/*.parquet                  the generator's own state; ingest never reads it

and, from any target's run that writes events (`LandingEventSink`, `datagen/events.py`):

    incoming/clickstream/2024-03-05/clickstream-2024-03-05.jsonl.gz   the day's web events
    incoming/reviews/2024-03-05/reviews-2024-03-05.jsonl.gz           the reviews created that day

One file per table per day, holding the day's new rows and its SCD1 changes (full rows with their new
`updated_at`), with every contract column of the RAW table (section 1.1); a day with no row of a table has
no file of it. A table with more than PART_ROWS rows on a day (the initial 5,000,000 customers) is split
into `<table>-<day>-001.csv`, `-002`, ... A key may appear more than once (a customer of the first day
renamed that same day; a line corrected the day after its sale): per key the row with the greatest
`updated_at` is the one RAW holds, exactly as if the same days had been generated into RAW directly. CSV:
header row, comma, RFC 4180 quoting, timestamps `2024-03-05 10:00:00` with a fraction when there is one,
dates `YYYY-MM-DD`. Files are byte-deterministic for a seed (and the Polars version that writes them).

Personal data (`encrypt_with`, `tshop-datagen generate --to landing --encrypt-personal-data`): the customer
files' first_name, last_name and birth_date, and the state's first_name and birth_date, are written as
AES-256-GCM envelopes under the install's current key (`tshop/personal_data.py`, which says what this
protects from whom); `tshop ingest` decrypts them. Each value gets a fresh random nonce, so encrypted files
are not byte-deterministic (their rows are): a day generated again rewrites its files with other bytes, which
ingest reads again and which change nothing in RAW (SCD1: the same updated_at). State written encrypted is
read back with the same keys whether or not the run encrypts.

The state (`_generator/`): `shop.json` holds the record of the shop (`datagen/record.py`: seed, initial
customers, own id runs, last ids), the generated days with their counts (as `raw.generated_day`), and the
names of the Parquet files with what a full row of a change needs: `product-<day>.parquet` (the catalogue's
current rows), `sales-<day>.parquet` (the lines sold on the last day, which the next day corrects) and
`customer-<day>.parquet` (each day's new customers' immutable first_name and birth_date, compacted into one
file when there are MAX_CUSTOMER_FILES).

A day is all or nothing for a reader: each file is written whole under a temporary name in its folder and
renamed into place (an object store's single PUT is already whole), and `shop.json` is written last. A run
that stops in the middle of a day leaves some of its files; `shop.json` names that day as being written,
and no other day is generated until it is generated again: from the same state, with the same bytes,
over the same files. Two generators must not write one landing zone at the same time (nothing locks it).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

import fsspec
import numpy as np
import polars as pl

from datagen import events
from datagen.errors import DayInterrupted, RecordUnreadable
from datagen.record import IdRanges, ShopRecord
from datagen.shop_writer import COLUMNS, SCHEMAS, TABLES, GreatestIds

if TYPE_CHECKING:  # imported when a run encrypts or reads encrypted state: `tshop` is not needed otherwise
    from tshop.personal_data import Keyring

STATE_FORMAT = 1
# rows per file: a full-scale shop's first day is five customer files rather than one of 300 MB
PART_ROWS = 1_000_000
# a run reads at most this many customer files of state (each a request on an object store)
MAX_CUSTOMER_FILES = 30
FORMATS = {"raw.customer": "csv", "raw.product": "csv", "raw.sales": "parquet"}
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S%.f"  # %.f: a fraction only when there is one, 3, 6 or 9 digits
RUN = re.compile(r"\[(\d+),(\d+)\)")  # one run of an id set, "[1,3014)": ids 1..3013
PEOPLE = ["customer_id", "first_name", "birth_date"]  # what a renamed customer's full row needs besides


@dataclass
class _State:
    """`shop.json`, and the frames its files hold once read (None until a change needs them)."""

    record: ShopRecord | None = None
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    writing: str | None = None  # a day whose files were being written when its run stopped
    product_file: str | None = None
    sales_file: str | None = None
    sales_day: str | None = None  # the day whose lines sales_file holds
    customer_files: list[str] = field(default_factory=list)
    catalogue: pl.DataFrame | None = None
    lines: pl.DataFrame | None = None
    people: pl.DataFrame | None = None


@dataclass
class _Day:
    """A day being simulated: its rows to write, and the state as it will be after it."""

    day: dt.date
    state: _State
    rows: dict[str, list[pl.DataFrame]] = field(default_factory=lambda: {table: [] for table in TABLES})
    new_people: list[pl.DataFrame] = field(default_factory=list)


class LandingWriter:
    place = "the landing zone"
    # no database on this path: the machine's own clock (UTC) says whether a day is over
    clock_name = "this machine's clock"

    def __init__(
        self,
        url: str,
        clock: Callable[[], dt.datetime] | None = None,
        encrypt_with: Keyring | None = None,
    ):
        """`url`: the landing zone (TSHOP_LANDING_URL). `clock`: now, time-zone aware (tests move it).
        `encrypt_with`: the keys whose current one encrypts the personal columns (None: plaintext)."""
        self.url = url.rstrip("/")
        self.encrypt_with = encrypt_with
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/")
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._state = _State()
        self._day: _Day | None = None

    # -- a run ----------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self._state = self._read_state()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._day = None

    def today(self) -> dt.date:
        return self._clock().astimezone(dt.UTC).date()

    def prepare(self) -> None:
        pass  # folders are made as files are written

    def shop_record(self) -> ShopRecord | None:
        return self._state.record

    def last_day(self) -> dt.date | None:
        return dt.date.fromisoformat(max(self._state.days)) if self._state.days else None

    def loaded_days(self, days: list[dt.date]) -> list[dt.date]:
        return sorted(day for day in set(days) if day.isoformat() in self._state.days)

    @contextmanager
    def day(self, day: dt.date) -> Iterator[None]:
        if self._state.writing not in (None, day.isoformat()):
            raise DayInterrupted(
                f"{self._state.writing} was being written into {self.url} when its run stopped, and some of "
                "its files may have been ingested: generate it again first (tshop-datagen generate --to "
                f"landing --start-date {self._state.writing} --days 1), which rewrites the same files; "
                "nothing was written."
            )
        self._day = _Day(day, replace(self._state, days=dict(self._state.days)))
        try:
            yield
            self._commit(self._day)
        finally:
            self._day = None

    # -- reads ----------------------------------------------------------------------------------------------
    def greatest_ids(self) -> GreatestIds:
        # only the generator writes this state: its own last ids are the greatest (ingest's outside rows in
        # RAW are not seen from here)
        record = self._working.record
        if record is None:
            return GreatestIds(0, 0, 0, 0)
        return GreatestIds(
            record.last_customer_id, record.product_ids.last, record.last_order_id, record.last_sale_id
        )

    def products(self, ids: IdRanges) -> pl.DataFrame:
        catalogue = self._catalogue(self._working)
        return catalogue.filter(pl.Series(ids.contains(catalogue["product_id"].to_numpy()))).select(
            "product_id", "name", "price"
        )

    def lines_per_day(self, since: dt.date) -> dict[dt.date, int]:
        days = self._working.days
        return {
            dt.date.fromisoformat(day): days[day]["sale_lines"]
            for day in sorted(days)
            if day >= since.isoformat()
        }

    def sale_lines(self, ids: np.ndarray) -> pl.DataFrame:
        """Read back from the day's own sales files of the REVIEW_WINDOW days before the day being written
        (a line's ids, time, customer and product never change; a correction repeats them)."""
        state, wanted = self._working, pl.Series(ids, dtype=pl.Int64).implode()
        since = (self._pending.day - dt.timedelta(days=events.REVIEW_WINDOW)).isoformat()
        frames = [SCHEMAS["raw.sales"].to_frame().select(events.LINE_COLUMNS)]
        if not len(ids):
            return frames[0]
        for day in sorted(day for day, counts in state.days.items() if day >= since and counts["sale_lines"]):
            folder = f"{self.root}/incoming/sales/{day}"
            names = sorted(self.fs.ls(folder, detail=False)) if self.fs.exists(folder) else []
            for path in names:
                name = path.rsplit("/", 1)[-1]
                if name.startswith(f"sales-{day}") and name.endswith(".parquet"):
                    with self.fs.open(path, "rb") as file:
                        lines = pl.read_parquet(file, columns=list(events.LINE_COLUMNS))
                    frames.append(lines.filter(pl.col("sale_id").is_in(wanted)))
        return pl.concat(frames).unique("sale_id", keep="first", maintain_order=True).sort("sale_id")

    def lines_sold(self, day: dt.date, ids: IdRanges) -> pl.DataFrame:
        state = self._working
        lines = self._lines(state) if state.sales_day == day.isoformat() else SCHEMAS["raw.sales"].to_frame()
        lines = lines.sort("sale_id")
        return lines.filter(pl.Series(ids.contains(lines["sale_id"].to_numpy()))).select(
            "sale_id", "quantity"
        )

    # -- writes ---------------------------------------------------------------------------------------------
    def append(self, table: str, frame: pl.DataFrame) -> None:
        if frame.columns != COLUMNS[table]:
            raise ValueError(f"{table} takes {COLUMNS[table]}, got {frame.columns}")
        pending, frame = self._pending, _typed(table, frame)
        pending.rows[table].append(frame)
        state = pending.state
        if table == "raw.customer":
            pending.new_people.append(frame.select(PEOPLE))
        elif table == "raw.product":
            state.catalogue = pl.concat([self._catalogue(state), frame]).sort("product_id")
        else:  # the day's lines: what the next day corrects
            earlier = self._lines(state) if state.sales_day == pending.day.isoformat() else None
            state.lines = frame if earlier is None else pl.concat([earlier, frame])
            state.sales_day = pending.day.isoformat()

    def overwrite(self, table: str, key: str, frame: pl.DataFrame) -> None:
        """A change is written as the whole row: the columns it does not change come from the state."""
        if frame.is_empty():
            return
        pending, frame = self._pending, _typed(table, frame)
        state = pending.state
        if table == "raw.customer":
            people = pl.concat([self._people(state), *pending.new_people])
            rows = _full_rows(table, key, frame, people)
        elif table == "raw.product":
            rows = _full_rows(table, key, frame, self._catalogue(state))
            state.catalogue = self._catalogue(state).update(frame, on=key)
        else:
            lines = self._lines(state) if state.sales_day else SCHEMAS["raw.sales"].to_frame()
            rows = _full_rows(table, key, frame, lines)
            state.lines = lines.update(frame, on=key)
        pending.rows[table].append(rows)

    def save_record(self, record: ShopRecord) -> None:
        self._pending.state.record = record

    def record_day(self, day: dt.date, seed: int, counts: dict[str, int]) -> None:
        self._pending.state.days[day.isoformat()] = {"seed": seed, **counts}

    # -- the day's files, then the state --------------------------------------------------------------------
    def _commit(self, pending: _Day) -> None:
        day, state = pending.day.isoformat(), pending.state
        if state.sales_day != day:  # a day without a line: nothing for the next day to correct
            state.lines, state.sales_day = SCHEMAS["raw.sales"].to_frame(), day
        # first the mark: should the run stop among the files, the next one generates this day first
        self._write_state(replace(self._state, writing=day))
        self._state.writing = day
        for table, frames in pending.rows.items():
            rows = pl.concat(frames) if frames else None
            if rows is not None and rows.height:  # a day with no row of a table has no file of it
                self._write_rows(table, day, rows)
        state.product_file = self._write_parquet(f"product-{day}.parquet", self._catalogue(state))
        state.sales_file = self._write_parquet(f"sales-{day}.parquet", self._lines(state))
        if pending.new_people:
            new = pl.concat(pending.new_people)
            if len(state.customer_files) < MAX_CUSTOMER_FILES:
                state.customer_files = [
                    *state.customer_files,
                    self._write_people(f"customer-{day}.parquet", new),
                ]
                if state.people is not None:  # else read from the files when a change needs it
                    state.people = pl.concat([state.people, new])
            else:  # compacted: everyone in one file
                state.people = pl.concat([self._people(state), new])
                state.customer_files = [self._write_people(f"customer-{day}.parquet", state.people)]
        state.writing = None
        self._write_state(state)
        self._state = state
        self._remove_unused_state_files(state)

    def _write_rows(self, table: str, day: str, rows: pl.DataFrame) -> None:
        name, extension = table.removeprefix("raw."), FORMATS[table]
        folder = f"{self.root}/incoming/{name}/{day}"
        count = -(-rows.height // PART_ROWS)  # parts of equal size: 1,000,123 rows are two of 500,062
        parts = list(rows.iter_slices(-(-rows.height // count)))
        for number, part in enumerate(parts, start=1):
            suffix = f"-{number:03d}" if len(parts) > 1 else ""
            if table == "raw.customer" and self.encrypt_with is not None:
                part = self.encrypt_with.encrypt(part)
            self._put(f"{folder}/{name}-{day}{suffix}.{extension}", _encode(part, extension))

    def _write_parquet(self, name: str, frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> str:
        self._put(f"{self.root}/_generator/{name}", _encode(frame, "parquet", metadata))
        return name

    def _write_people(self, name: str, people: pl.DataFrame) -> str:
        """The new customers' immutable columns; first_name and birth_date encrypted when the run encrypts,
        the key id also in the file's key-value metadata (what a Parquet tool shows)."""
        if self.encrypt_with is None:
            return self._write_parquet(name, people)
        from tshop.personal_data import PARQUET_METADATA_KEY

        metadata = {PARQUET_METADATA_KEY: str(self.encrypt_with.current_id)}
        return self._write_parquet(name, self.encrypt_with.encrypt(people), metadata)

    def _write_state(self, state: _State) -> None:
        self._put(f"{self.root}/_generator/shop.json", _state_json(state).encode())

    def _put(self, path: str, data: bytes) -> None:
        put_file(self.fs, path, data)

    def _remove_unused_state_files(self, state: _State) -> None:
        used = {state.product_file, state.sales_file, *state.customer_files}
        for path in self.fs.ls(f"{self.root}/_generator", detail=False):
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".parquet") and name not in used:
                self.fs.rm_file(path)

    # -- the state ------------------------------------------------------------------------------------------
    @property
    def _pending(self) -> _Day:
        if self._day is None:
            raise RuntimeError("LandingWriter: writes happen inside `with writer.day(day):`")
        return self._day

    @property
    def _working(self) -> _State:
        return self._day.state if self._day else self._state

    def _read_state(self) -> _State:
        path = f"{self.root}/_generator/shop.json"
        if not self.fs.exists(path):
            return _State()
        try:
            saved = json.loads(self.fs.cat_file(path))
            if saved.get("format") != STATE_FORMAT:
                raise ValueError(f"format {saved.get('format')!r}, this generator reads {STATE_FORMAT}")
            return _State(
                record=_record(saved["record"]) if saved["record"] else None,
                days=saved["days"],
                writing=saved["writing"],
                product_file=saved["product_file"],
                sales_file=saved["sales_file"],
                sales_day=saved["sales_day"],
                customer_files=saved["customer_files"],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RecordUnreadable(
                f"the generator's state {self.fs.unstrip_protocol(path)} cannot be read ({error}); "
                "restore it, or generate into an empty landing zone. Nothing was written."
            ) from None

    def _read_parquet(self, name: str | None, table: str) -> pl.DataFrame:
        if name is None:
            return SCHEMAS[table].to_frame()
        with self.fs.open(f"{self.root}/_generator/{name}", "rb") as file:
            return pl.read_parquet(file)

    def _catalogue(self, state: _State) -> pl.DataFrame:
        if state.catalogue is None:
            state.catalogue = self._read_parquet(state.product_file, "raw.product")
        return state.catalogue

    def _lines(self, state: _State) -> pl.DataFrame:
        if state.lines is None:
            state.lines = self._read_parquet(state.sales_file, "raw.sales")
        return state.lines

    def _people(self, state: _State) -> pl.DataFrame:
        if state.people is None:
            parts = [self._read_people(name) for name in state.customer_files]
            state.people = pl.concat(parts) if parts else SCHEMAS["raw.customer"].to_frame().select(PEOPLE)
        return state.people

    def _read_people(self, name: str) -> pl.DataFrame:
        people = self._read_parquet(name, "raw.customer")
        if people.schema["birth_date"] == pl.Date:
            return people  # written in plaintext
        from tshop.personal_data import PersonalDataError, keyring

        try:
            keys = self.encrypt_with
            if keys is None:  # state encrypted by an earlier run: the install's keys read it
                from tshop.config import settings

                keys = keyring(settings())
            people = keys.decrypt(people)
        except PersonalDataError as error:
            raise RecordUnreadable(
                f"the generator's state {self.url}/_generator/{name} cannot be decrypted ({error}): give this "
                "install the key it was written under (TSHOP_PERSONAL_DATA_KEYS). Nothing of the day was written."
            ) from None
        return people.with_columns(pl.col("birth_date").str.to_date("%Y-%m-%d"))


def put_file(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """`data` at `path`, whole: a reader sees the old file or the new one, never half of one."""
    folder, name = path.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    if "file" not in fs.protocol:
        # an object store's PUT replaces the object whole or not at all; a rename there would be a copy
        fs.pipe_file(path, data)
        return
    # a reader never sees half a file: written beside it, then renamed over it (atomic on POSIX). The
    # temporary name is the same on a re-run, so a stopped run's leftover is replaced, never left behind,
    # and its extension is none that ingest reads
    temporary = f"{folder}/.{name}.tmp"
    fs.pipe_file(temporary, data)
    fs.mv(temporary, path)


class LandingEventSink:
    """The simulated events (`datagen/events.py`) as files in the landing zone (CONTRACT.md section 8):
    `incoming/clickstream/<day>/clickstream-<day>.jsonl.gz` and `incoming/reviews/<day>/reviews-<day>.jsonl.gz`
    under `url` (any fsspec URL, like LandingWriter's), each written whole (`put_file`); a day with no
    document of a kind has no file of it. Whatever the sales' target: `--to raw` writes its events here too."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/")

    def write(self, kind: str, day: dt.date, documents: pl.DataFrame) -> None:
        if documents.height:
            put_file(self.fs, f"{self.root}/{events.file_path(kind, day)}", events.encode(documents))


def _typed(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.cast({column: SCHEMAS[table][column] for column in frame.columns})


def _full_rows(table: str, key: str, changes: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """`changes` (key, changed columns) completed with the other columns of the current rows. A null among
    those is a value (an erased customer's birth date), not a missing row: the marker column tells them apart."""
    rows = changes.join(
        current.drop(changes.columns[1:], strict=False).with_columns(_found=pl.lit(True)),
        on=key,
        how="left",
        maintain_order="left",
    )
    if rows["_found"].null_count():
        missing = rows.filter(pl.col("_found").is_null())[key].head(5).to_list()
        raise ValueError(f"{table}: no current row to change for {key} {missing} in the generator's state")
    return rows.select(COLUMNS[table])


def _encode(frame: pl.DataFrame, extension: str, metadata: dict[str, str] | None = None) -> bytes:
    if extension == "csv":
        return frame.write_csv(datetime_format=TIMESTAMP_FORMAT, date_format="%Y-%m-%d").encode()
    buffer = io.BytesIO()
    frame.write_parquet(buffer, metadata=metadata)
    return buffer.getvalue()


def _state_json(state: _State) -> str:
    record = state.record
    saved: dict[str, Any] = {
        "format": STATE_FORMAT,
        "record": None
        if record is None
        else {
            "seed": record.seed,
            "initial_customers": record.initial_customers,
            "customers": record.customers,
            # as PostgreSQL writes an int8multirange (raw.generator_shop): one short line however many runs
            **{
                f"{kind}_ids": "{"
                + ",".join(f"[{lower},{upper})" for lower, upper in zip(ids.lowers, ids.uppers))
                + "}"
                for kind, ids in (
                    ("customer", record.customer_ids),
                    ("product", record.product_ids),
                    ("sale", record.sale_ids),
                )
            },
            "last_customer_id": record.last_customer_id,
            "last_order_id": record.last_order_id,
            "last_sale_id": record.last_sale_id,
        },
        "days": dict(sorted(state.days.items())),
        "writing": state.writing,
        "product_file": state.product_file,
        "sales_file": state.sales_file,
        "sales_day": state.sales_day,
        "customer_files": state.customer_files,
    }
    return json.dumps(saved, indent=1) + "\n"


def _record(saved: dict[str, Any]) -> ShopRecord:
    def runs(kind: str) -> IdRanges:
        pairs = [(int(lower), int(upper)) for lower, upper in RUN.findall(saved[f"{kind}_ids"])]
        return IdRanges([lower for lower, _ in pairs], [upper for _, upper in pairs])

    return ShopRecord(
        seed=saved["seed"],
        initial_customers=saved["initial_customers"],
        customer_ids=runs("customer"),
        product_ids=runs("product"),
        sale_ids=runs("sale"),
        last_customer_id=saved["last_customer_id"],
        last_order_id=saved["last_order_id"],
        last_sale_id=saved["last_sale_id"],
    )
