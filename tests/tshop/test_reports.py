"""Daily and month-end reports (CONTRACT section 9): one row per category summing to the mart's current lines
of the day or month, the same bytes from the same data, a page that needs nothing from outside, and the runs'
rule for which reports they write (the day built, the days and finished months still missing)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from datagen import ShopSimulation
from datagen.writer import create_raw_tables
from tshop.cli import app
from tshop.config import Settings, settings
from tshop.dbt import run_dbt
from tshop.reports import (
    MONTHLY,
    Period,
    ReportError,
    due_reports,
    parse_day,
    parse_month,
    write_report,
    write_reports_of_run,
)

WAREHOUSE = "reports_shop"
# four business days across the end of a leap February: a finished month and a day of the next
FIRST_DAY = dt.date(2024, 2, 27)
DAYS = 4
LAST_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)  # 2024-03-01
FEBRUARY = Period.month_of(FIRST_DAY)
TSHOP = Path(sys.executable).parent / "tshop"

daily = Period.day


# -- the rule of a run, in memory -----------------------------------------------------------------------------


def test_a_run_writes_its_day_the_days_still_missing_and_the_months_that_ended():
    sales = [dt.date(2024, 2, 27), dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)]
    written = {daily(dt.date(2024, 2, 27))}
    assert due_reports(dt.date(2024, 3, 1), sales, written) == [
        daily(dt.date(2024, 2, 28)),
        daily(dt.date(2024, 2, 29)),
        daily(dt.date(2024, 3, 1)),
        FEBRUARY,
    ]


def test_a_run_rewrites_its_own_day_only_once_everything_is_written():
    sales = [dt.date(2024, 2, 28), dt.date(2024, 3, 1)]
    written = {daily(dt.date(2024, 2, 28)), daily(dt.date(2024, 3, 1)), FEBRUARY}
    assert due_reports(dt.date(2024, 3, 1), sales, written) == [daily(dt.date(2024, 3, 1))]
    # a day without sales still gets its (empty) report: the run built it
    assert due_reports(dt.date(2024, 3, 2), sales, written) == [daily(dt.date(2024, 3, 2))]


def test_the_last_day_of_a_month_always_rewrites_that_month():
    sales = [dt.date(2024, 2, 28), dt.date(2024, 2, 29)]
    written = {daily(dt.date(2024, 2, 28)), daily(dt.date(2024, 2, 29)), FEBRUARY}
    assert due_reports(dt.date(2024, 2, 29), sales, written) == [daily(dt.date(2024, 2, 29)), FEBRUARY]


def test_a_month_not_over_and_days_after_the_run_are_not_written():
    sales = [dt.date(2024, 2, 27), dt.date(2024, 2, 28), dt.date(2024, 3, 1)]
    # the run of 28 February (re-run after later days were built): February has not ended for it
    assert due_reports(dt.date(2024, 2, 28), sales, set()) == [
        daily(dt.date(2024, 2, 27)),
        daily(dt.date(2024, 2, 28)),
    ]


def test_a_catch_up_over_several_months_writes_every_missing_month_in_order():
    sales = [dt.date(2023, 12, 31), dt.date(2024, 1, 15), dt.date(2024, 3, 3)]
    due = due_reports(dt.date(2024, 3, 3), sales, set())
    assert [period for period in due if period.kind == MONTHLY] == [
        Period.month_of(dt.date(2023, 12, 1)),
        Period.month_of(dt.date(2024, 1, 1)),
    ]


def test_periods_and_their_file_names():
    assert (FEBRUARY.first, FEBRUARY.last, FEBRUARY.name) == (
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
        "2024-02",
    )
    assert daily(dt.date(2024, 3, 1)).name == "2024-03-01"
    assert len(FEBRUARY.days()) == 29


# -- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2024-02-30", "2024-2-1", "01.03.2024", "yesterday", ""])
def test_a_malformed_day_is_refused(text):
    with pytest.raises(ReportError, match="is not a day"):
        parse_day(text)


@pytest.mark.parametrize("text", ["2024-13", "2024-00", "2024-3", "2024-03-01", "March"])
def test_a_malformed_month_is_refused(text):
    with pytest.raises(ReportError, match="is not a month"):
        parse_month(text)


def test_a_day_or_month_not_over_is_refused():
    today = dt.date(2024, 3, 15)
    assert parse_day("2024-03-14", today=today) == daily(dt.date(2024, 3, 14))
    with pytest.raises(ReportError, match="not over yet"):
        parse_day("2024-03-15", today=today)
    assert parse_month("2024-02", today=dt.date(2024, 3, 1)) == FEBRUARY
    with pytest.raises(ReportError, match="not over yet"):
        parse_month("2024-02", today=dt.date(2024, 2, 29))


def test_the_command_refuses_this_month_today_and_a_bad_date_before_touching_the_warehouse(tmp_path):
    # no PostgreSQL runs on this port: a refusal must come before any connection
    env = {"TSHOP_STATE_DIR": str(tmp_path), "TSHOP_PG_DSN": "postgresql://nobody@127.0.0.1:1/none"}
    today = dt.datetime.now(dt.UTC).date()
    runner = CliRunner()
    for args, message in [
        (["--month", f"{today:%Y-%m}"], "not over yet"),
        (["--day", str(today)], "not over yet"),
        (["--day", "2024-02-30"], "is not a day"),
        (["--month", "2024-13"], "is not a month"),
        ([], "either --day"),
        (["--day", "2024-02-28", "--month", "2024-02"], "either --day"),
    ]:
        result = runner.invoke(app, ["report", *args], env=env)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not (tmp_path / "reports").exists()


# -- against a built warehouse --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(test_settings: Settings, pg_dsn: str) -> Iterator[Settings]:
    """A generated shop of four days built through the PostgreSQL project (the reports read nothing else)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(WAREHOUSE)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(WAREHOUSE)))
    dsn = test_settings.pg_dsn(database=WAREHOUSE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
    ShopSimulation(dsn, seed=8, initial_customers=2000).run(FIRST_DAY, DAYS)
    config = settings({**test_settings.env, "TSHOP_PG_DSN": dsn})
    run_dbt(config, ["build"])
    yield config
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(WAREHOUSE)))


@pytest.fixture
def reports(shop: Settings, tmp_path: Path) -> Settings:
    """The shop's settings with an empty reports folder of this test's own."""
    return settings({**shop.env, "TSHOP_REPORTS_URL": (tmp_path / "reports").as_uri()})


def folder(config: Settings) -> Path:
    return Path(config.reports_url.removeprefix("file://"))


def files(config: Settings) -> set[str]:
    root = folder(config)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def mart_figures(config: Settings, first: dt.date, last: dt.date) -> tuple[dict[str, tuple], tuple]:
    """Per category and in total: orders, items, customers, revenue of the current lines, by SQL."""
    figures = "count(distinct order_id), sum(quantity), count(distinct customer_id), sum(total_cost)"
    where = "where is_current and sale_date between %s and %s"
    with psycopg.connect(config.pg_dsn()) as conn:
        by_category = conn.execute(
            f"select product_category, {figures} from cdm.sales_datamart {where} group by 1", (first, last)
        ).fetchall()
        total = conn.execute(f"select {figures} from cdm.sales_datamart {where}", (first, last)).fetchone()
    return {category: tuple(rest) for category, *rest in by_category}, tuple(total)


def assert_report_matches_the_mart(config: Settings, period: Period) -> None:
    by_category, (orders, items, customers, revenue) = mart_figures(config, period.first, period.last)
    assert revenue, f"the shop has sales in {period.name}"
    rows = read_csv(folder(config) / period.kind / f"{period.name}.csv")
    assert list(rows[0]) == ["product_category", "orders", "items", "customers", "revenue"]
    assert [row["product_category"] for row in rows] == sorted(by_category)
    for row in rows:
        assert (int(row["orders"]), int(row["items"]), int(row["customers"]), Decimal(row["revenue"])) == (
            by_category[row["product_category"]]
        )
    # items and revenue add up; orders and customers are counted once per category
    assert sum(int(row["items"]) for row in rows) == items
    assert sum(Decimal(row["revenue"]) for row in rows) == revenue
    assert sum(int(row["orders"]) for row in rows) >= orders
    page = (folder(config) / period.kind / f"{period.name}.html").read_text()
    for total in (f"{revenue:,.2f}", f"{orders:,}", f"{items:,}", f"{customers:,}"):
        assert f"<dd>{total}</dd>" in page, total


@pytest.mark.slow
def test_the_run_of_a_day_writes_the_days_built_and_the_month_that_ended(reports: Settings):
    written = write_reports_of_run(reports, LAST_DAY)
    days = [FIRST_DAY + dt.timedelta(days=offset) for offset in range(DAYS)]
    expected = {f"daily/{day}.{ext}" for day in days for ext in ("csv", "html")}
    expected |= {"monthly/2024-02.csv", "monthly/2024-02.html"}
    assert files(reports) == expected
    assert sorted(written) == sorted(f"{reports.reports_url}/{name}" for name in expected)
    for period in [*(Period.day(day) for day in days), FEBRUARY]:
        assert_report_matches_the_mart(reports, period)

    # the next run writes its own day (no sales: an empty report) and nothing it wrote before
    before = {name: (folder(reports) / name).stat().st_mtime_ns for name in expected}
    written = write_reports_of_run(reports, LAST_DAY + dt.timedelta(days=1))
    assert sorted(written) == [f"{reports.reports_url}/daily/2024-03-02.{ext}" for ext in ("csv", "html")]
    assert {name: (folder(reports) / name).stat().st_mtime_ns for name in expected} == before
    assert (folder(reports) / "daily/2024-03-02.csv").read_text() == (
        "product_category,orders,items,customers,revenue\n"
    )
    assert "No sales in this period." in (folder(reports) / "daily/2024-03-02.html").read_text()


@pytest.mark.slow
def test_rewriting_a_report_gives_the_same_bytes_in_another_process(reports: Settings):
    """A re-run day rewrites identical files; the command, in a process of its own, writes the same too."""
    periods = [Period.day(LAST_DAY), FEBRUARY]
    first = {}
    for period in periods:
        for url in write_report(reports, period):
            first[url] = Path(url.removeprefix("file://")).read_bytes()
    again = write_reports_of_run(reports, LAST_DAY)
    assert set(again) >= {url for url in first if "/daily/" in url}
    command = subprocess.run(
        [str(TSHOP), "report", "--month", "2024-02"],
        env={**os.environ, **reports.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 0, command.stderr
    assert command.stdout.splitlines() == [f"wrote {url}" for url in first if "/monthly/" in url]
    for url, data in first.items():
        assert Path(url.removeprefix("file://")).read_bytes() == data, url
    assert not [path for path in folder(reports).rglob(".*")], "no temporary file is left behind"


@pytest.mark.slow
def test_the_page_is_self_contained(reports: Settings):
    write_report(reports, FEBRUARY)
    page = (folder(reports) / "monthly/2024-02.html").read_text()
    assert page.count("<svg") == 2, "revenue by category and revenue per day"
    assert "<script" not in page.lower()
    assert not re.search(r"<link|<img|<iframe|@import|\bsrc=", page, re.IGNORECASE)
    # the SVG namespaces are names, not addresses: nothing else may point outside
    outside = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", page)
    assert not re.search(r"https?://", outside), re.findall(r".{40}https?://.{40}", outside)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two charts on one page share no id"
    for reference in re.findall(r'(?:href="#|url\(#)([^")]+)', page):
        assert reference in ids, reference
    for category in read_csv(folder(reports) / "monthly/2024-02.csv"):
        assert f"<td>{category['product_category']}</td>" in page


@pytest.mark.slow
def test_a_late_correction_of_last_month_is_in_its_rewritten_report(reports: Settings):
    """A sale line of February corrected in RAW in March: the warehouse rebuilds it, and February's report
    written again carries the new quantity (runs after the others: it changes the shared shop)."""
    write_report(reports, FEBRUARY)
    before = {row["product_category"]: row for row in read_csv(folder(reports) / "monthly/2024-02.csv")}
    with psycopg.connect(reports.pg_dsn(), autocommit=True) as conn:
        sale_id, category, price = conn.execute(
            """select sale_id, product_category, product_price from cdm.sales_datamart
               where is_current and sale_date = '2024-02-28' order by sale_id limit 1"""
        ).fetchone()
        conn.execute(
            "update raw.sales set quantity = quantity + 2, updated_at = '2024-03-02 09:00' where sale_id = %s",
            (sale_id,),
        )
    run_dbt(reports, ["build"])
    write_report(reports, FEBRUARY)

    after = {row["product_category"]: row for row in read_csv(folder(reports) / "monthly/2024-02.csv")}
    assert int(after[category]["items"]) == int(before[category]["items"]) + 2
    assert Decimal(after[category]["revenue"]) == Decimal(before[category]["revenue"]) + 2 * price
    assert {name: row for name, row in after.items() if name != category} == {
        name: row for name, row in before.items() if name != category
    }
    assert_report_matches_the_mart(reports, FEBRUARY)
