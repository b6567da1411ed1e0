"""The web events' load (CONTRACT.md section 8): JSON lines under `incoming/clickstream/` and
`incoming/reviews/` of the landing zone into ClickHouse's `events` database, each file once.

ClickHouse reads the files itself (file() / s3(), in the ClickHouse dbt project's `events` models: the
engine's own readers are the fast road for event volumes); Python only keeps the books, in three steps:
1. `register`: list the folders, read each new file whole once for its sha256 and check it can be read
   (a gzip stream that ends early, not JSON lines); a readable one goes to `events.pending_file`, an
   unreadable one straight to `sl.landing_file` as `rejected` with its error, so one bad file never stops
   the load of the rest;
2. the ClickHouse project's `events` models load the pending files (`events.landed_file` is the list a run
   takes) and the marts they feed (`tshop.dbt.run_dbt`, or the Cosmos tasks of the DAG);
3. `record`: each loaded file's counts into `sl.landing_file` (`loaded`), then off the pending list.
A run that dies between 2 and 3 leaves its files pending; the next run loads them again and the models count
each event once, so the end state is the same as a clean run's.

A file is known by its path and sha256, as RAW's ingest knows its files: one already in `sl.landing_file`
is skipped (without reading it, when the listing shows the size and stamp of the version recorded).
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import clickhouse_connect.driver.exceptions
import psycopg

from tshop import clients
from tshop.config import Settings
from tshop.dbt import CLICKHOUSE_PROJECT, DbtError, run_dbt
from tshop.ingest.landing import LandedFile, LandingUnreachable, LandingZone, checksum
from tshop.ingest.run import (
    LANDING_FILE_DDL,
    FileReport,
    IngestError,
    default_run_id,
    is_recorded,
    listed_before,
    record_file,
    take_turn,
)

log = logging.getLogger(__name__)

PENDING_FILE_DDL = Path(__file__).with_name("pending_event_file.sql")
# the landing zone's folder of each events table
FOLDERS = {"clickstream": "clickstream", "reviews": "review"}
EXTENSIONS = (".jsonl", ".jsonl.gz")
LOCK_KEY = "tshop events"
APPLICATION_NAME = "tshop load-events"
# what `tshop load-events` builds in the ClickHouse project: the events models and the marts they feed
EVENT_MODELS = "path:models/events+"


@dataclass
class EventLoadReport:
    run_id: str
    landing_url: str
    registered: list[FileReport] = field(default_factory=list)  # readable files put on the pending list
    rejected: list[FileReport] = field(default_factory=list)  # unreadable files, recorded as rejected
    loaded: list[FileReport] = field(default_factory=list)  # files recorded as loaded
    skipped: int = 0  # files already recorded or already pending
    seconds: float = 0.0

    def lines(self) -> list[str]:
        events = sum(report.rows_loaded for report in self.loaded)
        bad = sum(report.rows_rejected for report in self.loaded)
        return [report.line() for report in (*self.rejected, *self.loaded)] + [
            f"events: {len(self.registered)} files registered, {len(self.loaded)} loaded ({events} documents, "
            f"{bad} lines rejected), {len(self.rejected)} files rejected, {self.skipped} skipped, from "
            f"{self.landing_url} in {self.seconds:.1f} s (run {self.run_id})"
        ]

    def summary(self) -> str:
        return "\n".join(self.lines())


def register(
    config: Settings, run_id: str | None = None, report: EventLoadReport | None = None
) -> EventLoadReport:
    """Put every new, readable event file of the landing zone on events.pending_file; record the unreadable
    ones as rejected."""
    started = time.monotonic()
    report = report or EventLoadReport(run_id or default_run_id(), config.landing_url)
    with _books(config) as (conn, client, zone):
        seen = listed_before(conn)
        pending = {
            (path, digest)
            for path, digest in client.query(
                "select file_path, checksum from events.pending_file final"
            ).result_rows
        }
        waiting = []
        for landed in zone.files(FOLDERS):
            if landed.stamp is not None and (landed.path, landed.size, landed.stamp) in seen:
                report.skipped += 1
            else:
                waiting.append(landed)
        # reading and checking a file (sha256, gunzip) leaves the GIL: two at a time keep both cores busy
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="events-read") as readers:
            for landed, read in zip(waiting, readers.map(lambda f: _read(zone, f), waiting), strict=True):
                if read is None:
                    log.warning(
                        "%s vanished before it was read; the next load sees whether it is back", landed.path
                    )
                    continue
                digest, size, error = read
                if is_recorded(conn, landed.path, digest) or (landed.path, digest) in pending:
                    report.skipped += 1
                    continue
                table = FOLDERS[landed.table]
                file_report = FileReport(landed.path, table, digest, size, "rejected", stamp=landed.stamp)
                if error:
                    file_report.error = error
                    with conn.transaction():
                        record_file(conn, file_report, report.run_id)
                    report.rejected.append(file_report)
                    log.info("%s", file_report.line())
                    continue
                client.insert(
                    "events.pending_file",
                    [[landed.path, zone.path_of(landed), table, digest, size, landed.stamp, dt.datetime.now(dt.UTC), report.run_id]],
                    column_names=[
                        "file_path", "source_path", "table_name", "checksum", "size_bytes", "file_stamp",
                        "registered_at", "run_id",
                    ],
                )  # fmt: skip
                file_report.status = "pending"
                report.registered.append(file_report)
    report.seconds += time.monotonic() - started
    return report


def record(
    config: Settings, run_id: str | None = None, report: EventLoadReport | None = None
) -> EventLoadReport:
    """Record the files the last load took (events.landed_file) in sl.landing_file as loaded, with their
    counts, and take them off the pending list. Recording a file twice changes nothing."""
    started = time.monotonic()
    report = report or EventLoadReport(run_id or default_run_id(), config.landing_url)
    with _books(config) as (conn, client, _zone):
        if not all(
            client.command(f"exists table events.{table}")
            for table in ("landed_file", "clickstream_landed", "review_landed")
        ):
            return report  # the events models never ran
        # per file: its lines and valid ones (this run's parse), and the documents it added (a document already
        # loaded from another file, or twice in this one, is added once: read, less rejected, less added, is
        # what was already there)
        counts, added = {}, {}
        for table in ("clickstream", "review"):
            for path, digest, lines, valid in client.query(
                f"select file_path, checksum, count(), countIf(reason = '') from events.{table}_landed "
                "group by file_path, checksum"
            ).result_rows:
                counts[(path, digest)] = (lines, valid)
            # only the days this load's events fall on (clickstream's sort key starts with the day: the
            # count reads those days, not the whole table, which grows every day)
            days = (
                " and event_date in (select distinct event_date from events.clickstream_landed where reason = '')"
                if table == "clickstream"
                else ""
            )
            for path, digest, documents in client.query(
                f"select file_path, checksum, count() from events.{table} where (file_path, checksum) in "
                f"(select file_path, checksum from events.landed_file){days} group by file_path, checksum"
            ).result_rows:
                added[(path, digest)] = documents
        landed = client.query(
            "select file_path, table_name, checksum, size_bytes, file_stamp from events.landed_file"
        ).result_rows
        for path, table, digest, size, stamp in landed:
            lines, valid = counts.get((path, digest), (0, 0))
            file_report = FileReport(path, table, digest, size, "loaded", stamp=stamp)
            file_report.rows_read, file_report.rows_rejected = lines, lines - valid
            file_report.rows_loaded = added.get((path, digest), 0)
            if not is_recorded(conn, path, digest):
                with conn.transaction():
                    record_file(conn, file_report, report.run_id)
                report.loaded.append(file_report)
                log.info("%s", file_report.line())
        if landed:
            client.command(
                "delete from events.pending_file where (file_path, checksum) in "
                "(select file_path, checksum from events.landed_file)"
            )
    report.seconds += time.monotonic() - started
    return report


def load_events(config: Settings, run_id: str | None = None) -> EventLoadReport:
    """Register, load (the ClickHouse project's events models and the marts they feed) and record: what
    `tshop load-events` does, and the DAG `tshop` does in three tasks."""
    report = register(config, run_id)
    try:
        run_dbt(
            config,
            ["build", "--select", EVENT_MODELS],
            project=CLICKHOUSE_PROJECT,
            extra_env={"TSHOP_RUN_ID": report.run_id},
        )
    except DbtError as error:
        raise IngestError(
            f"the events models failed; their files stay pending for the next load: {error}"
        ) from None
    return record(config, report=report)


class _books:
    """PostgreSQL (sl.landing_file, under the events' advisory lock), ClickHouse (events.pending_file) and
    the landing zone, opened together; IngestError when any cannot be reached."""

    def __init__(self, config: Settings):
        self.config = config

    def __enter__(self):
        try:
            self.zone = LandingZone.open(self.config)
            self.conn = psycopg.connect(
                self.config.pg_dsn_as("loader"),
                autocommit=True,
                application_name=APPLICATION_NAME,
                connect_timeout=10,
            )
        except psycopg.Error as error:
            raise IngestError(f"the events' load cannot connect to PostgreSQL: {error}") from None
        except LandingUnreachable as error:
            raise IngestError(str(error)) from None
        try:
            take_turn(self.conn, LOCK_KEY)
            with self.conn.transaction():
                self.conn.execute(LANDING_FILE_DDL.read_text())
            self.client = clients.clickhouse(self.config, "writer")
            self.client.command("create database if not exists events")
            self.client.command(PENDING_FILE_DDL.read_text())
        except Exception as error:
            self.conn.close()
            raise _as_ingest_error(error) from None
        return self.conn, self.client, self.zone

    def __exit__(self, kind, error, trace):
        self.client.close()
        self.conn.close()
        if error is not None and not isinstance(error, IngestError):
            converted = _as_ingest_error(error)
            if converted is not error:
                raise converted from None
        return False


def _as_ingest_error(error: BaseException) -> BaseException:
    if isinstance(error, psycopg.Error):
        return IngestError(f"the events' load failed in PostgreSQL: {type(error).__name__}: {error}")
    if isinstance(error, clickhouse_connect.driver.exceptions.Error):
        return IngestError(f"the events' load failed in ClickHouse: {error}")
    if isinstance(error, LandingUnreachable):
        return IngestError(str(error))
    return error


def _read(zone: LandingZone, landed: LandedFile) -> tuple[str, int, str | None] | None:
    """The file's sha256, size and why ClickHouse could not read it (None when it can); None when the file
    vanished since it was listed."""
    data = zone.read(landed)
    if data is None:
        return None
    return checksum(data), len(data), _unreadable(landed.path, data)


def _unreadable(path: str, data: bytes) -> str | None:
    if not path.endswith(EXTENSIONS):
        return f"not JSON lines: an events file ends in {' or '.join(EXTENSIONS)}"
    if path.endswith(".gz"):
        if not data:
            return "empty file: not gzip"
        try:
            # the whole stream, as ClickHouse will read it: a truncated or corrupt file fails here
            gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            return f"not a readable gzip file: {error}"
    return None
