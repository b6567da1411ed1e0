"""One ingest of the landing zone: every file not yet ingested, in path order, each in a transaction of its
own together with its `sl.landing_file` row (CONTRACT.md section 7).

Ingests take turns: each holds a PostgreSQL advisory lock (session level) from before it lists the zone
until it is done, so two never process the same file, and the second one sees what the first recorded. A
killed ingest (kill -9, a lost connection) leaves nothing of the file it was in: its transaction is rolled
back and its lock released by the server, and the next ingest takes that file up again.

A file is known by its path and sha256; a file listed with the path, size and stamp (ETag or modification
time) of a version already ingested is skipped without reading it, so an hourly ingest of a zone that keeps
every day's files reads only what is new. The next file is read and checked (Polars, in a thread) while the
one before it merges (PostgreSQL), so both cores work.

A file's rows that break a rule and a file rejected whole are results, not failures: `ingest` returns them
in its report. It raises `IngestError` only when it could not do its work (PostgreSQL or the landing zone
unreachable, a wrong password): the files it finished before stay ingested.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psycopg

from datagen.writer import create_raw_tables
from tshop import personal_data
from tshop.config import Settings
from tshop.errors import TShopError
from tshop.ingest.landing import LandedFile, LandingUnreachable, LandingZone, checksum
from tshop.ingest.merge import collapse, merge, reject_rows
from tshop.ingest.read import LINE, FileRejected, read_file
from tshop.ingest.tables import TABLES
from tshop.ingest.validate import check

log = logging.getLogger(__name__)

LANDING_FILE_DDL = Path(__file__).with_name("landing_file.sql")
LOCK_KEY = "tshop ingest"
APPLICATION_NAME = "tshop ingest"  # how the ingest's session shows in pg_stat_activity


class IngestError(TShopError):
    """The ingest could not run or finish (PostgreSQL or the landing zone unreachable)."""


@dataclass
class FileReport:
    path: str
    table: str
    checksum: str
    size_bytes: int
    status: str  # loaded | rejected
    rows_read: int | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_removed: int = 0
    error: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stamp: str | None = None  # the listing's ETag or modification time of this version

    def line(self) -> str:
        text = f"{self.status:<8} {self.path}"
        if self.rows_read is not None:
            text += f": read {self.rows_read}, loaded {self.rows_loaded}, rejected {self.rows_rejected}"
            if self.rows_removed:
                text += f", removed {self.rows_removed} keys"
        if self.error:
            text += f": {self.error}"
        if self.ignored_columns:
            text += f" (ignored columns: {', '.join(self.ignored_columns)})"
        return text + f" [{self.seconds:.1f} s]"


@dataclass
class IngestReport:
    run_id: str
    landing_url: str
    files: list[FileReport] = field(default_factory=list)
    skipped: int = 0  # files already ingested with the same checksum
    seconds: float = 0.0

    @property
    def loaded(self) -> list[FileReport]:
        return [report for report in self.files if report.status == "loaded"]

    @property
    def rejected(self) -> list[FileReport]:
        return [report for report in self.files if report.status == "rejected"]

    def summary(self) -> str:
        """One line per file ingested, then the totals (what `tshop ingest` prints and the DAGs log)."""
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        rows = sum(report.rows_loaded for report in self.files)
        bad = sum(report.rows_rejected for report in self.files)
        return [report.line() for report in self.files] + [
            f"ingested {len(self.files)} files from {self.landing_url} ({len(self.loaded)} loaded, "
            f"{len(self.rejected)} rejected; {rows} rows loaded, {bad} rows rejected), skipped "
            f"{self.skipped} already ingested, in {self.seconds:.1f} s (run {self.run_id})"
        ]


def default_run_id() -> str:
    return f"manual__{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"


def ingest(config: Settings, run_id: str | None = None) -> IngestReport:
    """Ingest every new file of the landing zone (TSHOP_LANDING_URL) into RAW; the report of each file."""
    started = time.monotonic()
    report = IngestReport(run_id or default_run_id(), config.landing_url)
    try:
        zone = LandingZone.open(config)
        conn = psycopg.connect(
            config.pg_dsn_as("loader"), autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10
        )
    except psycopg.Error as error:
        raise IngestError(f"ingest cannot connect to PostgreSQL: {error}") from None
    except LandingUnreachable as error:
        raise IngestError(str(error)) from None
    try:
        with conn, ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read") as reader:
            take_turn(conn)
            _prepare(conn)
            now = conn.execute("select (clock_timestamp() at time zone 'UTC')::timestamp").fetchone()[0]
            seen = listed_before(conn)
            # the personal-data keys, read once and only when a file holds an envelope
            keys = functools.cache(lambda: personal_data.keyring(config))
            waiting = []
            for landed in zone.files():
                if landed.stamp is not None and (landed.path, landed.size, landed.stamp) in seen:
                    report.skipped += 1  # this very version was ingested: not even read again
                else:
                    waiting.append(landed)
            # one file read and checked ahead (Polars, in a thread) while the one before it merges (PostgreSQL):
            # the two cores work at once
            ahead = reader.submit(_read_and_check, zone, waiting[0], now, keys) if waiting else None
            for index, landed in enumerate(waiting):
                read = ahead.result()
                ahead = (
                    reader.submit(_read_and_check, zone, waiting[index + 1], now, keys)
                    if index + 1 < len(waiting)
                    else None
                )
                if read is None:
                    log.warning(
                        "%s vanished before it was read; the next ingest sees whether it is back", landed.path
                    )
                    continue
                if is_recorded(conn, landed.path, read.checksum):
                    report.skipped += 1
                    continue
                file_report = _ingest_file(conn, landed, read, report.run_id)
                log.info("%s", file_report.line())
                report.files.append(file_report)
    except psycopg.Error as error:
        raise IngestError(f"ingest failed in PostgreSQL: {type(error).__name__}: {error}") from None
    except pl.exceptions.PolarsError as error:
        # a file the readers let through but the checks could not handle: nothing of it was recorded, so the
        # next ingest tries it again; the message is for whoever fixes the checks
        raise IngestError(f"ingest failed on a file's rows: {type(error).__name__}: {error}") from None
    except LandingUnreachable as error:
        raise IngestError(str(error)) from None
    except personal_data.KeySettingError as error:
        # the install's key settings, not the file, are wrong: nothing of the file recorded, tried again next run
        raise IngestError(f"ingest cannot decrypt personal data: {error}") from None
    report.seconds = time.monotonic() - started
    return report


@dataclass
class ReadFile:
    """A landed file read and checked, ready to merge: what the reader thread hands over."""

    checksum: str
    size_bytes: int
    seconds: float
    error: str | None = None  # the whole file is rejected: why
    accepted: pl.DataFrame | None = None
    rejected: pl.DataFrame | None = None
    rows_read: int = 0
    ignored_columns: list[str] = field(default_factory=list)


def _read_and_check(
    zone: LandingZone, landed: LandedFile, now: dt.datetime, keys: Callable[[], personal_data.Keyring]
) -> ReadFile | None:
    """The file's bytes, checksum and checked rows, or None when it vanished since it was listed. A
    customer file's encrypted personal data is decrypted between reading and checking (`keys`: the
    install's keys, read on first need)."""
    started = time.monotonic()
    data = zone.read(landed)
    if data is None:
        return None
    read = ReadFile(checksum(data), len(data), 0.0)
    spec = TABLES[landed.table]
    try:
        result = read_file(data, landed.path, spec)
        if spec.name == "customer":
            result.frame = _decrypt(result.frame, landed.path, keys)
    except FileRejected as error:
        read.error = str(error)
    else:
        checked = check(result.frame, spec, now)
        broken = pl.DataFrame(
            result.broken_rows,
            schema={LINE: pl.Int64, "reason": pl.String, "row_data": pl.String},
            orient="row",
        )
        read.accepted = collapse(checked.accepted, spec)
        read.rejected = pl.concat([broken, checked.rejected]).sort(LINE)
        read.rows_read = result.frame.height + len(result.broken_rows)
        read.ignored_columns = result.ignored_columns
    read.seconds = time.monotonic() - started
    return read


def _decrypt(frame: pl.DataFrame, path: str, keys: Callable[[], personal_data.Keyring]) -> pl.DataFrame:
    """The personal columns' envelopes decrypted (tshop/personal_data.py). One that fails authentication, is
    under a key the install lacks or is malformed refuses the whole file: the reason names the file, the line
    and the key id, never a value."""
    if not personal_data.has_envelopes(frame):
        return frame  # a plaintext file: the keys are not even read
    try:
        return keys().decrypt(frame, line=LINE)
    except personal_data.DecryptionFailed as error:
        raise FileRejected(f"{path} {error}; nothing of the file loaded") from None


def take_turn(conn: psycopg.Connection, key: str = LOCK_KEY) -> None:
    """Hold the session-level advisory lock `key`, waiting for whoever holds it."""
    if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
        log.info("another %s is running: waiting for it to finish", key)
        conn.execute("select pg_advisory_lock(hashtext(%s))", (key,))


def _prepare(conn: psycopg.Connection) -> None:
    """RAW (datagen/raw.sql) and sl.landing_file, created when missing."""
    create_raw_tables(conn)
    with conn.transaction():
        conn.execute(LANDING_FILE_DDL.read_text())


def is_recorded(conn: psycopg.Connection, path: str, digest: str) -> bool:
    row = conn.execute(
        "select 1 from sl.landing_file where file_path = %s and checksum = %s", (path, digest)
    ).fetchone()
    return row is not None


def listed_before(conn: psycopg.Connection) -> set[tuple[str, int, str]]:
    """(path, size, stamp) of every file version ingested before, by the listing's marks."""
    rows = conn.execute(
        "select file_path, size_bytes, file_stamp from sl.landing_file where file_stamp is not null"
    ).fetchall()
    return {(path, size, stamp) for path, size, stamp in rows}


def _ingest_file(conn: psycopg.Connection, landed: LandedFile, read: ReadFile, run_id: str) -> FileReport:
    started = time.monotonic()
    spec = TABLES[landed.table]
    report = FileReport(
        landed.path, landed.table, read.checksum, read.size_bytes, "rejected", stamp=landed.stamp
    )
    report.error = read.error
    if read.error is None:
        report.ignored_columns = read.ignored_columns
        try:
            with conn.transaction():
                merged = merge(conn, spec, read.accepted)
                reject_rows(conn, spec.name, landed.path, read.rejected)
                report.status = "loaded"
                report.rows_read = read.rows_read
                report.rows_loaded = merged.upserted + merged.deletions
                report.rows_rejected = read.rejected.height
                report.rows_removed = merged.removed
                report.seconds = read.seconds + time.monotonic() - started
                record_file(conn, report, run_id)
            return report
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
            # RAW refused a row that the checks let through: the file is rejected whole, never half-merged
            report.status, report.rows_read, report.rows_loaded = "rejected", None, 0
            report.rows_rejected = report.rows_removed = 0
            report.error = f"RAW refused the file: {error}"
    report.seconds = read.seconds + time.monotonic() - started
    with conn.transaction():
        record_file(conn, report, run_id)
    return report


def record_file(conn: psycopg.Connection, report: FileReport, run_id: str) -> None:
    conn.execute(
        """insert into sl.landing_file (file_path, checksum, table_name, size_bytes, status, rows_read,
               rows_loaded, rows_rejected, run_id, error, rows_removed, ignored_columns, file_stamp)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (report.path, report.checksum, report.table, report.size_bytes, report.status, report.rows_read,
         report.rows_loaded, report.rows_rejected, run_id, report.error, report.rows_removed,
         report.ignored_columns or None, report.stamp),
    )  # fmt: skip
