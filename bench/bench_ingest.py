"""The landing zone's ingest (CONTRACT.md section 7) against the direct path, PostgreSQL's own COPY and dlt.

The same shop (seed 7, BENCH_INGEST_CUSTOMERS customers, default the full 5,000,000) on two business days:
the first day (the initial customers, the catalogue, the day's sales) and the day after (its new customers,
renames, repricing, sales and corrections: a day of changes). Each path loads both days into RAW of a fresh
database of its own on one PostgreSQL, in the same run, and its rows/s are set against the direct path's:

- direct: the generator's binary COPY into RAW (`tshop-datagen generate`, in process), timed over its writes
  and each day's commit only, so the simulation itself does not count; the whole generate is shown too;
- server COPY: PostgreSQL's `COPY raw.<table> FROM '<file>'` of the same rows from CSV files on the server's
  own disk (written by the server from the direct path's RAW): into the empty tables on the first day, into
  a temporary table and merged by one `insert ... on conflict` on the day of changes;
- ours: `tshop-datagen generate --to landing` writes the day's files (untimed), then `tshop ingest` (timed,
  in process) from a local folder, and from S3 (moto's server, tshop/services/s3.py; the same files put in
  a bucket);
- dlt: bench/dlt_merge.py in the dlt environment (.venvs/dlt): dlt's merge (delete-insert, primary key,
  dedup_sort on updated_at) of the same landing files, with each of its two fast load-file formats from the
  local folder, and the faster of them from S3.

Rows are the rows each path takes in (the files' rows; a key changed twice in a day is two rows), rows/s are
rows over the load's seconds. After each day every path's RAW is compared with the direct path's (the
contract columns of the three tables). Its own PostgreSQL (port BENCH_INGEST_PG_PORT, default 25443) and S3
server (BENCH_INGEST_S3_PORT, 29143) under .state/bench/ingest, removed afterwards. Knobs:
BENCH_INGEST_CUSTOMERS (e.g. 200000 for a quick run).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from bench.report import markdown_table, write_section
from datagen import ShopSimulation
from datagen.shop_writer import COLUMNS, KEYS
from datagen.writer import RawWriter, create_raw_tables
from tshop.config import REPO_ROOT, Settings, settings
from tshop.services.postgres import LocalPostgres

STATE = REPO_ROOT / ".state" / "bench" / "ingest"
CUSTOMERS = int(os.environ.get("BENCH_INGEST_CUSTOMERS", "5000000"))
PG_PORT = os.environ.get("BENCH_INGEST_PG_PORT", "25443")
S3_PORT = os.environ.get("BENCH_INGEST_S3_PORT", "29143")
SEED = 7
DAYS = (dt.date(2024, 1, 1), dt.date(2024, 1, 2))
DAY_NAMES = ("first day", "day of changes")
TABLES = ("customer", "product", "sales")
DLT_PYTHON = REPO_ROOT / ".venvs" / "dlt" / "bin" / "python"
DLT_FORMATS = ("csv", "parquet")
BUCKET = "bench-ingest"
# the settings of the machine's own services that must not leak into the benchmark's
FOREIGN = (
    "TSHOP_PG_DSN",
    "TSHOP_LANDING_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


@dataclass
class Load:
    """One path's load of one day: rows taken in, seconds, whether its RAW then equals the direct path's."""

    rows: int
    seconds: float
    same_raw: bool | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


@dataclass
class Measured:
    name: str
    loads: list[Load] = field(default_factory=list)
    skipped: str = ""  # why it was not measured


class TimedRawWriter(RawWriter):
    """The generator's RawWriter, timing its writes (binary COPY, the changes' COPY + UPDATE) and each day's
    commit; the simulation between them is not counted."""

    def __init__(self, dsn: str):
        super().__init__(dsn)
        self.seconds = 0.0
        self.rows = 0

    def append(self, table, frame) -> None:
        started = time.perf_counter()
        super().append(table, frame)
        self.seconds += time.perf_counter() - started
        self.rows += frame.height

    def overwrite(self, table, key, frame) -> None:
        started = time.perf_counter()
        super().overwrite(table, key, frame)
        self.seconds += time.perf_counter() - started
        self.rows += frame.height

    @contextmanager
    def day(self, day: dt.date) -> Iterator[None]:
        with super().day(day):
            yield
            committing = time.perf_counter()
        self.seconds += time.perf_counter() - committing


def bench_settings(database: str, **env: str) -> Settings:
    base = {key: value for key, value in os.environ.items() if key not in FOREIGN}
    return settings(
        {**base, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": PG_PORT, "TSHOP_S3_PORT": S3_PORT,
         "TSHOP_PG_DATABASE": database, **env}
    )  # fmt: skip


def new_database(config: Settings, name: str) -> str:
    """A fresh database `name` with RAW's tables; its DSN."""
    with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = config.pg_dsn(database=name)
    with psycopg.connect(dsn) as conn:
        create_raw_tables(conn)
        conn.commit()
    return dsn


def drop_database(config: Settings, name: str) -> None:
    with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def raw_digest(dsn: str) -> dict[str, tuple[int, int]]:
    """Per RAW table: rows, and a sum of hashes of each row's contract columns (order-free)."""
    digest = {}
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            columns = ", ".join(COLUMNS[f"raw.{table}"])
            digest[table] = tuple(
                conn.execute(
                    f"select count(*), coalesce(sum(hashtextextended(row({columns})::text, 0)), 0) "
                    f"from raw.{table}"
                ).fetchone()
            )
    return digest


def day_files(landing: Path, day: dt.date) -> dict[str, list[Path]]:
    """The landing files of `day` by table, in path order."""
    files = {}
    for table in TABLES:
        found = sorted((landing / "incoming" / table / day.isoformat()).glob(f"{table}-*"))
        if found:
            files[table] = found
    return files


# -- the paths ---------------------------------------------------------------------------------------------
def direct(dsn: str, exchange: Path, expected: list) -> tuple[Measured, Measured]:
    """The generator's binary COPY (and its whole generate); leaves the server COPY's CSV files of each day
    in `exchange`, and each day's RAW digest in `expected`."""
    copy_path = Measured("direct: the generator's binary COPY (simulation not counted)")
    generate_path = Measured(
        "direct: `tshop-datagen generate` whole (simulation + binary COPY), for reference"
    )
    for number, day in enumerate(DAYS):
        with psycopg.connect(dsn) as conn:
            # rows written by this day's transaction or later have a loaded_xid at or past this
            marker = conn.execute("select pg_snapshot_xmax(pg_current_snapshot())").fetchone()[0]
        writer = TimedRawWriter(dsn)
        started = time.perf_counter()
        ShopSimulation(writer, seed=SEED, initial_customers=CUSTOMERS).run(day, 1)
        wall = time.perf_counter() - started
        copy_path.loads.append(Load(writer.rows, writer.seconds))
        generate_path.loads.append(Load(writer.rows, wall))
        expected.append(raw_digest(dsn))
        with psycopg.connect(dsn, autocommit=True) as conn:  # the day's rows as RAW holds them, by the server
            for table in TABLES:
                columns = ", ".join(COLUMNS[f"raw.{table}"])
                target = exchange / f"{table}-{number}.csv"
                conn.execute(
                    f"copy (select {columns} from raw.{table} where loaded_xid >= '{marker}'::xid8) "
                    f"to '{target}' (format csv, header)"
                )
        del writer
        gc.collect()
    return copy_path, generate_path


def server_copy(dsn: str, exchange: Path, expected: list) -> Measured:
    path = Measured("PostgreSQL's server COPY FROM a CSV file (the changes: + one insert ... on conflict)")
    for number in range(len(DAYS)):
        rows = 0
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            for table in TABLES:
                raw_table, source = f"raw.{table}", exchange / f"{table}-{number}.csv"
                columns = COLUMNS[raw_table]
                names = ", ".join(columns)
                if number == 0:  # the first day: into the empty tables
                    copied = conn.execute(f"copy {raw_table} ({names}) from '{source}' (format csv, header)")
                else:  # the changes: staged, then merged as SCD1 (a newer updated_at wins)
                    stage = f"stage_{table}"
                    conn.execute(f"create temporary table {stage} on commit drop as select {names} "
                                 f"from {raw_table} with no data")  # fmt: skip
                    copied = conn.execute(f"copy {stage} from '{source}' (format csv, header)")
                    key = KEYS[raw_table]
                    assignments = ", ".join(
                        f"{column} = excluded.{column}" for column in columns if column != key
                    )
                    conn.execute(
                        f"insert into {raw_table} as t ({names}) select {names} from {stage} "
                        f"on conflict ({key}) do update set {assignments} "
                        "where excluded.updated_at > t.updated_at"
                    )
                rows += copied.rowcount
            conn.commit()
            seconds = time.perf_counter() - started
        path.loads.append(Load(rows, seconds, raw_digest(dsn) == expected[number]))
    return path


def generate_landing(landing_url: str, day: dt.date) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "generate", "--to", "landing", "--landing-url", landing_url,
         "--customers", str(CUSTOMERS), "--days", "1", "--seed", str(SEED), "--start-date", day.isoformat()],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"tshop-datagen generate --to landing failed:\n{done.stderr}")


def ours(config: Settings, name: str, expected: list, before_day) -> Measured:
    """`tshop ingest` of each day's files (put in place by `before_day(day)`, untimed)."""
    from tshop.ingest import ingest

    path = Measured(name)
    for number, day in enumerate(DAYS):
        before_day(day)
        started = time.perf_counter()
        report = ingest(config, f"bench__{day.isoformat()}")
        seconds = time.perf_counter() - started
        rows = sum(file.rows_read or 0 for file in report.files)
        rejected = sum(file.rows_rejected for file in report.files) + len(report.rejected)
        note = f"{rejected} rows or files rejected" if rejected else ""
        path.loads.append(Load(rows, seconds, raw_digest(config.pg_dsn()) == expected[number], note))
        gc.collect()
    return path


def dlt_merge(dsn: str, name: str, fmt: str, locations: list[dict[str, list[str]]], expected: list,
              env: dict[str, str] | None = None) -> tuple[Measured, list[str]]:  # fmt: skip
    path, cannot = Measured(name), []
    for number, files in enumerate(locations):
        command = [str(DLT_PYTHON), str(REPO_ROOT / "bench" / "dlt_merge.py"), "--dsn", dsn, "--format", fmt,
                   "--pipelines-dir", str(STATE)]  # fmt: skip
        command += [f"--file={table}={location}" for table, found in files.items() for location in found]
        done = subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", **(env or {})})  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        cannot = result["cannot"]
        steps = "/".join(f"{result['steps'].get(step, 0):.1f}" for step in ("extract", "normalize", "load"))
        path.loads.append(
            Load(sum(result["rows"].values()), result["seconds"], raw_digest(dsn) == expected[number], steps)
        )
    return path, cannot


# -- the run -------------------------------------------------------------------------------------------------
def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    config = bench_settings("tshop")
    server = LocalPostgres(config)
    server.start()
    s3, s3_missing = None, ""
    try:
        from tshop.services.s3 import LocalS3

        s3 = LocalS3(config)
        s3.start()
    except Exception as error:  # moto missing, the port taken: the S3 rows say why
        s3_missing = f"no local S3 server: {type(error).__name__}: {error}"
        s3 = None
    exchange = STATE / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)  # the server's own COPY TO/FROM runs as the PostgreSQL system user
    landing = STATE / "landing"
    paths: list[Measured] = []
    cannot: list[str] = []
    try:
        print(f"direct: {CUSTOMERS:,} customers, {DAYS[0]} and {DAYS[1]}", flush=True)
        expected: list = []
        paths += direct(new_database(config, "direct"), exchange, expected)
        drop_database(config, "direct")

        print("server COPY", flush=True)
        paths.append(server_copy(new_database(config, "server_copy"), exchange, expected))
        drop_database(config, "server_copy")
        shutil.rmtree(exchange, ignore_errors=True)

        print("ours, local folder", flush=True)
        new_database(config, "ours_local")
        local = bench_settings("ours_local", TSHOP_LANDING_URL=landing.as_uri())
        paths.append(
            ours(local, "ours: `tshop ingest`, local folder", expected,
                 lambda day: generate_landing(landing.as_uri(), day))
        )  # fmt: skip
        drop_database(config, "ours_local")
        locations = [
            {table: [str(file) for file in found] for table, found in day_files(landing, day).items()}
            for day in DAYS
        ]

        if s3 is not None:
            print("ours, S3", flush=True)
            s3_env = {**s3.client_env(), "TSHOP_LANDING_URL": f"s3://{BUCKET}/landing"}
            remote = bench_settings("ours_s3", **s3_env)
            import fsspec

            options = remote.landing_storage_options()
            bucket = fsspec.filesystem("s3", **options)
            # created without a region: S3 (and moto) refuse us-east-1 as a bucket's LocationConstraint
            fsspec.filesystem("s3", **{k: v for k, v in options.items() if k != "client_kwargs"}).mkdir(
                BUCKET
            )

            def put_day(day: dt.date) -> None:
                for table, found in day_files(landing, day).items():
                    for file in found:
                        bucket.put_file(str(file), f"{BUCKET}/landing/incoming/{table}/{day}/{file.name}")

            new_database(config, "ours_s3")
            paths.append(ours(remote, "ours: `tshop ingest`, S3 (moto)", expected, put_day))
            drop_database(config, "ours_s3")
        else:
            paths.append(Measured("ours: `tshop ingest`, S3", skipped=s3_missing))

        if DLT_PYTHON.exists():
            dlt_paths = []
            for fmt in DLT_FORMATS:
                print(f"dlt, {fmt} load files, local folder", flush=True)
                database = f"dlt_{fmt}"
                loaded, cannot = dlt_merge(
                    new_database(config, database), f"dlt merge, {fmt} load files, local folder", fmt,
                    locations, expected,
                )  # fmt: skip
                dlt_paths.append((sum(load.seconds for load in loaded.loads), fmt, loaded))
                drop_database(config, database)
            paths += [loaded for _, _, loaded in dlt_paths]
            fastest = min(dlt_paths, key=lambda measured: measured[0])[1]
            if s3 is not None:
                print(f"dlt, {fastest} load files, S3", flush=True)
                s3_locations = [
                    {table: [f"s3://{BUCKET}/landing/{Path(file).relative_to(landing)}" for file in found]
                     for table, found in files.items()}
                    for files in locations
                ]  # fmt: skip
                loaded, _ = dlt_merge(
                    new_database(config, "dlt_s3"), f"dlt merge, {fastest} load files, S3 (moto)", fastest,
                    s3_locations, expected, env=s3.client_env(),
                )  # fmt: skip
                paths.append(loaded)
                drop_database(config, "dlt_s3")
        else:
            paths.append(Measured("dlt merge", skipped=f"{DLT_PYTHON} missing: `make bench` makes it"))
    finally:
        if s3 is not None:
            s3.stop()
        server.stop()
        shutil.rmtree(STATE, ignore_errors=True)
    write_section("ingest", "Landing-zone ingest against the direct COPY and dlt", report(paths, cannot))


def report(paths: list[Measured], cannot: list[str]) -> str:
    reference = paths[0]
    rows = []
    for path in paths:
        if path.skipped:
            rows.append((path.name, *["not measured"] * 2, path.skipped))
            continue
        cells = []
        for number, load in enumerate(path.loads):
            ratio = load.rate / reference.loads[number].rate
            cells.append(f"{load.rows:,} in {load.seconds:.1f} s: **{load.rate:,.0f}**/s, {ratio:.0%}")
        same = [load.same_raw for load in path.loads if load.same_raw is not None]
        notes = [load.note for load in path.loads if load.note]
        if path.name.startswith("dlt") and notes:
            notes = [f"dlt's extract/normalize/load s: {', '.join(notes)}"]
        check = ("RAW as direct's" if all(same) else "**RAW differs from direct's**") if same else ""
        rows.append((path.name, *cells, "; ".join(filter(None, [check, *notes]))))
    ours_rates = [path for path in paths if path.name.startswith("ours") and not path.skipped]
    verdict = [
        f"- {path.name}: "
        + ", ".join(f"{load.rate / reference.loads[n].rate:.0%}" for n, load in enumerate(path.loads))
        + " of the direct path's rows/s (target 70%)"
        for path in ours_rates
    ]
    local = next((path for path in ours_rates if "local" in path.name), None)
    dlt_local = [
        path for path in paths if path.name.startswith("dlt") and "local" in path.name and path.loads
    ]
    if local and dlt_local:
        fastest = [max(path.loads[n].rate for path in dlt_local) for n in range(len(DAYS))]
        verdict.append(
            "- ours against dlt's faster merge, both from the local folder: "
            + ", ".join(f"{load.rate / fastest[n]:.1f}x" for n, load in enumerate(local.loads))
            + " its rows/s"
        )
    body = [
        f"Seed {SEED}, {CUSTOMERS:,} initial customers: the {DAY_NAMES[0]} ({DAYS[0]}: the customers, the "
        f"catalogue, the day's sales) and the {DAY_NAMES[1]} ({DAYS[1]}: new customers, renames, repricing, "
        "sales, corrections), each path into a fresh database of one PostgreSQL, in one run. Cells: rows "
        "taken in, seconds, rows/s, and rows/s against the direct path's of the same day.\n",
        markdown_table(["path", DAY_NAMES[0], DAY_NAMES[1], "notes"], rows),
        "",
        *verdict,
        "\nDirect: the generator's own writes and commits only. Server COPY: the rows as RAW held them after "
        "each direct day, written by the server to its disk and read back by it (no client at all). Ours: "
        "`tshop ingest` alone (listing, reading, sha256, checks, the SCD1 merge: new keys by COPY straight into RAW, the rest "
        "staged and upserted; sl.landing_file; the next file read while one merges); the files were written by `tshop-datagen generate --to landing` beforehand. dlt: "
        "bench/dlt_merge.py's seconds from its first read to the end of its load (the interpreter's start "
        "and dlt's import not counted), with dlt's own steps in the notes.",
    ]
    if cannot:
        body += ["\nWhat dlt's merge cannot do of the contract (CONTRACT.md section 7):\n"]
        body += [f"- {item}" for item in cannot]
    return "\n".join(body)


if __name__ == "__main__":
    main()
