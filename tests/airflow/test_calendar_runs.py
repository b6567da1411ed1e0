"""The run of today's logical date on the calendar (CONTRACT.md section 6), as `tshop pipeline` prints it:
it catches RAW up through yesterday, re-running it changes nothing, a day not over is refused, and a failing
task is named with its log tail and the re-run command, and alerted once."""

from __future__ import annotations

import datetime as dt
import subprocess

import psycopg
import pytest

from datagen import ShopSimulation
from tshop.config import settings
from tshop.orchestration import latest_logical_date
from tshop.orchestration.runs import business_day_of
from tshop.reader_state import reader_state

pytestmark = pytest.mark.slow

TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)
# the business day of the run `tshop pipeline` makes without --date (the latest 02:00 UTC): yesterday, or the
# day before between midnight and 02:00 UTC, when today's run is not due yet
LAST_DAY = business_day_of(latest_logical_date())


def generated_days(dsn: str) -> list[dt.date]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("select business_day from raw.generated_day order by 1")]


def tshop_pipeline(pipelines, config, *args: str) -> subprocess.CompletedProcess:
    command = [pipelines.pipeline_command(YESTERDAY)[0], "pipeline", *args]
    return subprocess.run(command, env=pipelines.cli_env(config), capture_output=True, text=True, timeout=900)


def test_todays_run_simulates_the_missing_days_through_yesterday_and_its_rerun_changes_nothing(
    new_warehouse, pipelines
):
    config = new_warehouse("wh_calendar")
    four_days_ago = LAST_DAY - dt.timedelta(days=3)
    ShopSimulation(config.pg_dsn(), seed=5, initial_customers=2000).run(four_days_ago, 1)

    first = tshop_pipeline(pipelines, config, "--generate")

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    missing = [LAST_DAY - dt.timedelta(days=offset) for offset in (2, 1, 0)]
    assert generated_days(config.pg_dsn()) == [four_days_ago, *missing], "no gap, no repeat"
    assert f"for {latest_logical_date()}: success" in first.stdout
    lines = first.stdout.splitlines()
    assert len(lines) <= 15, first.stdout  # one line per task group, the log's path and the summary
    assert any("warehouse" in line and "tasks" in line for line in lines), first.stdout
    log_file = next(line.split(": ", 1)[1] for line in lines if "Airflow and dbt output:" in line)
    assert "dbt" in open(log_file).read(), "Airflow's and dbt's output went to the log file"

    before = reader_state(config)
    again = tshop_pipeline(pipelines, config, "--generate")
    assert again.returncode == 0, again.stdout[-3000:]
    assert generated_days(config.pg_dsn()) == [four_days_ago, *missing]
    assert reader_state(config) == before, "re-running the run changes nothing"


def test_a_day_that_has_not_ended_is_refused_with_a_clear_error(new_warehouse, pipelines):
    config = new_warehouse("wh_not_over")
    refused = tshop_pipeline(pipelines, config, "--date", TODAY.isoformat(), "--generate")
    assert refused.returncode == 1
    assert f"business day {TODAY} has not ended yet" in refused.stderr, refused.stderr
    assert "nothing was run" in refused.stderr


def test_a_failing_task_is_named_with_its_log_tail_and_the_rerun_command_and_alerted_once(
    new_warehouse, pipelines, receiver
):
    config = new_warehouse("wh_broken")
    ShopSimulation(config.pg_dsn(), seed=5, initial_customers=2000).run(YESTERDAY, 1)
    with psycopg.connect(config.pg_dsn(), autocommit=True) as conn:
        # break the warehouse on purpose: the product snapshot reads a column that is gone
        conn.execute("alter table raw.product rename column size to size_gone")
    config = settings({**config.env, "TSHOP_ALERT_WEBHOOK": receiver.url})

    failed = tshop_pipeline(pipelines, config, "--date", YESTERDAY.isoformat())

    assert failed.returncode == 1
    output = failed.stdout + failed.stderr
    assert "--- warehouse.product.snapshot failed" in output, output[-4000:]
    assert "size" in output.split("--- warehouse.product.snapshot failed", 1)[1], "the log tail shows why"
    assert f"pipeline --date {YESTERDAY}" in output, "the command to re-run"
    log_file = next(
        line.split(": ", 1)[1] for line in output.splitlines() if "Airflow and dbt output:" in line
    )
    judged = [line for line in open(log_file) if "Marking run" in line]
    assert judged and "failed" in judged[-1], "Airflow's own rule fails the run, not only tshop's"
    assert len(receiver.posts) == 1, receiver.posts
    assert "warehouse.product.snapshot" in receiver.posts[0]["body"]["text"]
    with psycopg.connect(config.pg_dsn()) as conn:
        assert conn.execute("select count(*) from sl.alert_log").fetchone()[0] == 1
