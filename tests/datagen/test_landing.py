"""`tshop-datagen generate --to landing` (CONTRACT.md section 7): the simulated days as files in the landing
zone. The key property: loading every file into RAW the way ingest does (SCD1: per key, the row with the
greatest `updated_at`) gives exactly the RAW rows that generating the same days directly into RAW gives.
Checked here without the ingest code: the files are read back with Polars and collapsed per key, and
compared with the in-memory writer (fast) and with PostgreSQL's RAW (slow)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path

import fsspec
import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from datagen import DayAlreadyLoaded, ShopSimulation, landing
from datagen.cli import app
from datagen.errors import ArgumentsDiffer, DayInterrupted, DaysOutOfRange
from datagen.landing import LandingWriter
from datagen.memory import MemoryWriter
from datagen.shop_writer import COLUMNS, SCHEMAS, TABLES

START = dt.date(2024, 3, 4)  # a Monday
TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?$")
FILE_NAME = re.compile(r"^incoming/(customer|product|sales)/(\d{4}-\d\d-\d\d)/\1-\2(-\d{3})?\.(csv|parquet)$")


def simulate(target, days: int, start: dt.date = START, **kwargs):
    arguments = {"seed": 5, "initial_customers": 3_000, **kwargs}
    skip_loaded = arguments.pop("skip_loaded", False)
    writer = LandingWriter(target) if isinstance(target, str) else target
    return ShopSimulation(writer, **arguments).run(start, days, skip_loaded=skip_loaded)


def read_table(url: str, table: str) -> pl.DataFrame:
    """Every row of every landed file of `table`, typed as RAW's columns (CSV values parsed as ingest does:
    timestamps ISO 8601 with an optional fraction, dates YYYY-MM-DD)."""
    fs, root = fsspec.core.url_to_fs(url)
    schema = SCHEMAS[table]
    frames = []
    for path in sorted(fs.find(f"{root}/incoming/{table.removeprefix('raw.')}")):
        with fs.open(path, "rb") as file:
            if path.endswith(".parquet"):
                frame = pl.read_parquet(file)
            else:
                frame = pl.read_csv(file, infer_schema=False).select(
                    pl.col(column).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
                    if dtype == pl.Datetime("us")
                    else pl.col(column).str.to_date("%Y-%m-%d")
                    if dtype == pl.Date
                    else pl.col(column).cast(dtype)
                    for column, dtype in schema.items()
                )
        assert frame.schema == schema, path
        frames.append(frame)
    return pl.concat(frames) if frames else schema.to_frame()


def as_ingested(url: str) -> dict[str, pl.DataFrame]:
    """What RAW holds after ingesting every file: per key the row with the greatest updated_at, by key."""
    collapsed = {}
    for table in TABLES:
        key, rows = COLUMNS[table][0], read_table(url, table)
        latest = rows.sort(key, "updated_at").unique(key, keep="last", maintain_order=True)
        assert latest.filter(pl.struct(key, "updated_at").is_duplicated()).is_empty(), "no tie to break"
        collapsed[table] = latest
    return collapsed


def files(url: str) -> dict[str, str]:
    """Every file under the landing URL (relative path -> sha256)."""
    fs, root = fsspec.core.url_to_fs(url)
    return {
        path.removeprefix(root.rstrip("/") + "/"): hashlib.sha256(fs.cat_file(path)).hexdigest()
        for path in sorted(fs.find(root))
    }


def assert_same_rows(landed: dict[str, pl.DataFrame], reference: MemoryWriter) -> None:
    for table in TABLES:
        assert_frame_equal(landed[table], reference.rows(table), check_exact=True)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return (tmp_path / "landing").as_uri()


@pytest.fixture(scope="module")
def reference() -> MemoryWriter:
    """The same shop in memory: what RAW holds after the same 6 days (RAW agrees: see the slow test)."""
    writer = MemoryWriter()
    simulate(writer, 6)
    return writer


def test_landed_files_loaded_per_key_latest_are_the_rows_raw_would_hold(url, reference):
    simulate(url, 6)
    landed = as_ingested(url)
    assert_same_rows(landed, reference)
    # the comparison has teeth: every kind of change happened, and the files hold the older versions too
    for table, counts in (("raw.customer", "last_name_changes"), ("raw.product", "price_changes"),
                          ("raw.sales", "sale_corrections")):  # fmt: skip
        assert sum(day[counts] for day in reference.days.values()) > 0, counts
        assert read_table(url, table).height > landed[table].height, table


def test_days_split_over_runs_give_the_same_files_byte_for_byte(tmp_path, reference):
    whole, split = (tmp_path / "whole").as_uri(), (tmp_path / "split").as_uri()
    simulate(whole, 6)
    simulate(split, 2)
    simulate(split, 1, START + dt.timedelta(days=2))
    simulate(split, 3, START + dt.timedelta(days=3), seed=None, initial_customers=None)
    assert files(split) == files(whole)


def test_files_are_named_by_table_and_day_and_hold_every_raw_column(url):
    simulate(url, 2)
    names = [name for name in files(url) if not name.startswith("_generator/")]
    assert names == sorted(
        f"incoming/{table}/{day}/{table}-{day}.{'parquet' if table == 'sales' else 'csv'}"
        for table in ("customer", "product", "sales")
        for day in ("2024-03-04", "2024-03-05")
    )
    root = Path(url.removeprefix("file://"))
    customers = (root / "incoming/customer/2024-03-04/customer-2024-03-04.csv").read_text().splitlines()
    assert customers[0] == "customer_id,first_name,last_name,birth_date,updated_at"
    products = (root / "incoming/product/2024-03-04/product-2024-03-04.csv").read_text().splitlines()
    assert products[0] == "product_id,name,category,size,price,updated_at"
    for line in customers[1:50]:
        customer_id, first_name, last_name, birth_date, updated_at = line.split(",")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", birth_date) and TIMESTAMP.match(updated_at), line
    assert re.fullmatch(r"\d+\.\d\d", products[1].split(",")[4]), "prices with two decimals"
    # microseconds where the moment has them; a whole second has no fraction
    assert any("." in line.rsplit(",", 1)[1] for line in customers[1:])
    assert products[1].endswith(",2023-03-04 00:00:00")
    sales = pl.read_parquet(root / "incoming/sales/2024-03-05/sales-2024-03-05.parquet")
    assert sales.schema == SCHEMAS["raw.sales"] and sales.height > 0
    assert not list(root.rglob("*.tmp")), "no temporary file is left"


def test_a_day_without_a_row_of_a_table_has_no_file_of_it(url):
    reports = simulate(url, 3, initial_customers=20)  # 1% of 20 customers: most weekdays sell nothing
    quiet = [report.day.isoformat() for report in reports if not report.sale_lines]
    assert quiet, reports
    names = files(url)
    assert not [name for name in names if name.startswith("incoming/sales/") and name.split("/")[2] in quiet]
    reference = MemoryWriter()
    simulate(reference, 3, initial_customers=20)
    assert_same_rows(as_ingested(url), reference)


def test_a_large_day_is_split_into_numbered_parts(url, reference, monkeypatch):
    monkeypatch.setattr(landing, "PART_ROWS", 1_000)
    simulate(url, 6)
    names = [name for name in files(url) if name.startswith("incoming/")]
    assert all(FILE_NAME.match(name) for name in names), names
    assert "incoming/customer/2024-03-04/customer-2024-03-04-004.csv" in names  # 3,000 + the day's, in 1,000s
    assert_same_rows(as_ingested(url), reference)


def test_the_state_survives_compaction_and_fresh_runs(url, reference, monkeypatch):
    monkeypatch.setattr(landing, "MAX_CUSTOMER_FILES", 2)
    simulate(url, 1)
    for offset in range(1, 6):  # each run reads the state from the files, not from a cache
        simulate(url, 1, START + dt.timedelta(days=offset))
    state = [name for name in files(url) if name.startswith("_generator/")]
    assert len([name for name in state if name.startswith("_generator/customer-")]) <= 2, state
    assert len(state) <= 5, "superseded state files are removed"
    assert_same_rows(as_ingested(url), reference)


def test_a_generated_day_other_arguments_and_a_day_not_over_are_refused_with_nothing_written(url):
    simulate(url, 2)
    before = files(url)
    with pytest.raises(DayAlreadyLoaded, match="2024-03-05 already loaded into the landing zone"):
        simulate(url, 2, START + dt.timedelta(days=1))
    with pytest.raises(DayAlreadyLoaded, match="before the last loaded day"):
        simulate(url, 1, START - dt.timedelta(days=1))
    with pytest.raises(ArgumentsDiffer, match="seed 6 .* its seed is 5"):
        simulate(url, 1, START + dt.timedelta(days=2), seed=6)
    with pytest.raises(ArgumentsDiffer, match=r"3,001 initial customers .* began with 3,000"):
        simulate(url, 1, START + dt.timedelta(days=2), initial_customers=3_001)
    friday = dt.datetime(2024, 3, 8, 12, tzinfo=dt.UTC)
    with pytest.raises(DaysOutOfRange, match="2024-03-08 is not over yet .this machine's clock"):
        simulate(LandingWriter(url, clock=lambda: friday), 4, START + dt.timedelta(days=2))
    assert files(url) == before
    reports = simulate(url, 2, START + dt.timedelta(days=1), skip_loaded=True)
    assert [report.skipped for report in reports] == [True, False]


def test_a_run_stopped_mid_day_is_generated_again_first_with_the_same_files(tmp_path, monkeypatch):
    stopped, clean = (tmp_path / "stopped").as_uri(), (tmp_path / "clean").as_uri()
    simulate(clean, 3)
    simulate(stopped, 2)
    real_put, written = LandingWriter._put, []

    def put_then_crash(self, path, data):
        if len(written) == 3:  # the mark in shop.json, then the day's customer and product files
            raise OSError("the machine went down")
        real_put(self, path, data)
        written.append(path)

    monkeypatch.setattr(LandingWriter, "_put", put_then_crash)
    with pytest.raises(OSError, match="went down"):
        simulate(stopped, 1, START + dt.timedelta(days=2))
    monkeypatch.undo()
    partial = files(stopped)
    assert "incoming/product/2024-03-06/product-2024-03-06.csv" in partial
    assert "incoming/sales/2024-03-06/sales-2024-03-06.parquet" not in partial
    assert (
        '"writing": "2024-03-06"' in Path(stopped.removeprefix("file://"), "_generator/shop.json").read_text()
    )

    # no other day while that one is half written: its ids would collide with the files already out
    with pytest.raises(DayInterrupted, match="2024-03-06 was being written"):
        simulate(stopped, 1, START + dt.timedelta(days=3))
    assert files(stopped) == partial
    simulate(stopped, 1, START + dt.timedelta(days=2))
    assert files(stopped) == files(clean), "the re-run wrote the same bytes and finished the day"


def test_catch_up_simulates_the_missing_days_through_yesterday_once(url):
    four_days_ago = TODAY - dt.timedelta(days=4)
    simulate(url, 2, four_days_ago - dt.timedelta(days=1))
    simulation = ShopSimulation(LandingWriter(url))
    reports = simulation.catch_up(YESTERDAY)
    assert [report.day for report in reports] == [TODAY - dt.timedelta(days=n) for n in (3, 2, 1)]
    assert simulation.catch_up(YESTERDAY) == [], "a second catch-up simulates nothing"
    days = sorted({name.split("/")[2] for name in files(url) if name.startswith("incoming/sales/")})
    assert days == [(four_days_ago + dt.timedelta(days=n)).isoformat() for n in range(-1, 4)]
    with pytest.raises(DaysOutOfRange, match=f"{TODAY} is not over yet"):
        simulation.catch_up(TODAY)


def test_the_command_line_writes_to_the_landing_url_and_catches_up_with_through(url, monkeypatch):
    monkeypatch.setenv("TSHOP_LANDING_URL", url)

    def generate(*arguments: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["generate", "--to", "landing", *arguments])
        return result.exit_code, " ".join(result.output.split())

    through = ["--through", YESTERDAY.isoformat(), "--days", "2", "--customers", "1500"]
    assert generate(*through)[0] == 0
    assert sorted(name.split("/")[2] for name in files(url) if name.startswith("incoming/sales/")) == [
        (YESTERDAY - dt.timedelta(days=1)).isoformat(), YESTERDAY.isoformat(),
    ]  # fmt: skip
    assert generate(*through) == (
        0,
        f"The landing zone holds every business day through {YESTERDAY}: nothing to simulate",
    )
    status, said = generate("--start-date", YESTERDAY.isoformat(), "--days", "1")
    assert status == 1 and f"error: {YESTERDAY} already loaded into the landing zone" in said, said
    status, said = generate("--dsn", "postgresql://nowhere", "--days", "1")
    assert status == 1 and "--dsn is the database of --to raw" in said, said


def test_any_fsspec_filesystem_holds_the_landing_zone(reference):
    # an in-memory filesystem stands in for an object store: no rename, each file one whole put
    url = f"memory://tshop-landing-{os.getpid()}"
    try:
        simulate(url, 3)
        simulate(url, 3, START + dt.timedelta(days=3))
        assert_same_rows(as_ingested(url), reference)
    finally:
        fsspec.filesystem("memory").rm(url.removeprefix("memory:/"), recursive=True)


@pytest.mark.slow
def test_the_landing_zone_and_memory_hold_what_raw_holds_for_the_same_seed(new_database, url, reference):
    dsn = new_database("landing_vs_raw")
    ShopSimulation(dsn, seed=5, initial_customers=3_000).run(START, 6)
    simulate(url, 6)
    landed = as_ingested(url)
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            columns = COLUMNS[table]
            rows = conn.execute(f"select {', '.join(columns)} from {table} order by {columns[0]}").fetchall()
            in_raw = pl.DataFrame(rows, schema=SCHEMAS[table], orient="row")
            assert_frame_equal(in_raw, reference.rows(table), check_exact=True)
            assert_frame_equal(in_raw, landed[table], check_exact=True)
        generated = conn.execute(
            "select business_day, customers_added, sale_corrections from raw.generated_day"
        )
        assert {day: (added, corrected) for day, added, corrected in generated} == {
            day: (counts["customers_added"], counts["sale_corrections"])
            for day, counts in reference.days.items()
        }


def test_a_change_to_a_customer_with_a_null_birth_date_is_written_and_a_missing_one_refused():
    """An erased customer (tshop forget-customer) keeps a null birth date in the generator's state: renaming
    them later is a change like any other, not a row the state lacks."""
    from datagen.landing import _full_rows

    people = pl.DataFrame(
        {
            "customer_id": [1, 2],
            "first_name": ["erased", "Ann"],
            "last_name": ["erased", "Lee"],
            "birth_date": [None, dt.date(1990, 5, 1)],
            "updated_at": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1)],
        },
        schema_overrides={"birth_date": pl.Date},
    )
    renamed = pl.DataFrame(
        {
            "customer_id": [1],
            "first_name": ["Zoe"],
            "last_name": ["Quux"],
            "updated_at": [dt.datetime(2024, 1, 2)],
        }
    )
    rows = _full_rows("raw.customer", "customer_id", renamed, people)
    assert rows.to_dicts() == [
        {
            "customer_id": 1,
            "first_name": "Zoe",
            "last_name": "Quux",
            "birth_date": None,
            "updated_at": dt.datetime(2024, 1, 2),
        }
    ]
    with pytest.raises(ValueError, match=r"no current row to change for customer_id \[3\]"):
        _full_rows("raw.customer", "customer_id", renamed.with_columns(customer_id=pl.lit(3)), people)
