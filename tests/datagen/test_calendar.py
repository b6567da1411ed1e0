"""The calendar (CONTRACT.md section 6): a catch-up simulates every business day after the last loaded one
through the day asked, in order, each once; a new shop starts where it is told; a day not over is refused."""

from __future__ import annotations

import datetime as dt
import subprocess

import psycopg
import pytest

from datagen import ShopSimulation
from datagen.errors import DaysOutOfRange
from tshop.config import REPO_ROOT

pytestmark = pytest.mark.slow

DATAGEN = str(REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop-datagen")
TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)


def generated_days(dsn: str) -> list[dt.date]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("select business_day from raw.generated_day order by 1")]


def shop(dsn: str) -> ShopSimulation:
    return ShopSimulation(dsn, seed=3, initial_customers=1_500)


def test_a_shop_four_days_behind_catches_up_the_three_missing_days_through_yesterday(new_database):
    dsn = new_database("catch_up")
    four_days_ago = TODAY - dt.timedelta(days=4)
    shop(dsn).run(four_days_ago - dt.timedelta(days=1), 2)

    reports = shop(dsn).catch_up(YESTERDAY)

    missing = [TODAY - dt.timedelta(days=offset) for offset in (3, 2, 1)]
    assert [report.day for report in reports] == missing, "each missing day, in order"
    assert not any(report.skipped for report in reports)
    assert generated_days(dsn) == [four_days_ago - dt.timedelta(days=1), four_days_ago, *missing], "no gap"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select max(sold_at)::date from raw.sales").fetchone()[0] == YESTERDAY

    assert shop(dsn).catch_up(YESTERDAY) == [], "a second catch-up simulates nothing"
    assert len(generated_days(dsn)) == 5


def test_a_new_shop_gets_its_days_ending_the_day_asked(new_database):
    dsn = new_database("new_shop")
    reports = shop(dsn).catch_up(YESTERDAY, new_shop_days=3)
    assert [report.day for report in reports] == [YESTERDAY - dt.timedelta(days=n) for n in (2, 1, 0)]
    assert shop(dsn).catch_up(YESTERDAY - dt.timedelta(days=1)) == [], "never backwards"


def test_a_day_not_over_yet_is_refused_before_anything_is_written(new_database):
    dsn = new_database("not_over")
    with pytest.raises(DaysOutOfRange, match=f"{TODAY} is not over yet"):
        shop(dsn).catch_up(TODAY)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select to_regclass('raw.sales')").fetchone()[0] is None


def test_the_command_line_catches_up_with_through(new_database):
    dsn = new_database("cli_through")
    command = [DATAGEN, "generate", "--through", YESTERDAY.isoformat(), "--days", "2", "--customers", "1500",
               "--dsn", dsn]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert generated_days(dsn) == [YESTERDAY - dt.timedelta(days=1), YESTERDAY]
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to simulate" in again.stderr, again.stderr
    both = subprocess.run([*command, "--start-date", "2024-03-04"], capture_output=True, text=True)
    assert both.returncode == 1 and "exclude each other" in both.stderr, both.stderr
