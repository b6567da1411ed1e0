"""The DAG end to end on real services (`airflow dags test`, as `make pipeline` runs it): consecutive business
days, and a run whose PostgreSQL stops halfway, re-run after a restart, against a clean run of the same days."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest

from tshop.config import Settings, settings
from tshop.orchestration import DAG_ID, PipelineError, logical_date_for, run_pipeline
from tshop.reader_state import reader_state
from tshop.reconcile import differences
from tshop.services.postgres import LocalPostgres

pytestmark = pytest.mark.slow

SHOP = {"customers": 2000, "seed": 5}
FIRST_DAY = dt.date(2024, 3, 8)  # a Friday: the three days cross into the weekend


def run_day(config: Settings, day: dt.date) -> None:
    run_pipeline(config, logical_date_for(day), generate=True, params=SHOP, timeout=900)


def state(config: Settings) -> dict[str, list[tuple]]:
    return reader_state(config)


def test_three_consecutive_days_build_and_reconcile_after_each(new_warehouse, tmp_path, clickhouse_rows):
    reports = tmp_path / "reports"
    config = settings({**new_warehouse("e2e_three_days").env, "TSHOP_REPORTS_URL": reports.as_uri()})
    for offset in range(3):
        day = FIRST_DAY + dt.timedelta(days=offset)
        run_day(config, day)

        with psycopg.connect(config.pg_dsn()) as conn:
            assert conn.execute("select max(business_day) from raw.generated_day").fetchone() == (day,)
            lines_that_day = conn.execute(
                "select count(*) from cdm.sales_datamart where sale_date = %s and is_current", (day,)
            ).fetchone()[0]
            run_ids = conn.execute("select distinct run_id from sl.load_metadata").fetchall()
            buyers = conn.execute(
                "select count(distinct customer_id) from raw.sales where sold_at::date = %s", (day,)
            ).fetchone()[0]
        assert lines_that_day > 0, day
        # the run's generator wrote the day's web events; the run loaded them into ClickHouse's funnel
        assert clickhouse_rows(
            config, f"select buyers from cdm.conversion_funnel_daily where event_date = '{day}'"
        ) == [(buyers,)], day
        assert differences(config) == [], day
        assert any(run_id.startswith("manual__") for (run_id,) in run_ids), run_ids  # Airflow's run id
        # the run wrote the report of the day it built (tests/tshop/test_reports.py checks what it holds)
        assert sorted(path.name for path in (reports / "daily").iterdir()) == [
            f"{FIRST_DAY + dt.timedelta(days=built)}.{ext}"
            for built in range(offset + 1)
            for ext in ("csv", "html")
        ]


def test_a_run_in_landing_mode_goes_from_the_exported_files_to_the_mart(new_warehouse, tmp_path):
    """TSHOP_GENERATE_TO=landing: the run's generator writes the day as an outside export (files), its ingest
    loads them into RAW, and the build takes them to both engines: the whole road of CONTRACT.md section 7."""
    landing = tmp_path / "landing"
    config = settings(
        {
            **new_warehouse("e2e_landing").env,
            "TSHOP_GENERATE_TO": "landing",
            "TSHOP_LANDING_URL": landing.as_uri(),
            "TSHOP_REPORTS_URL": (tmp_path / "reports").as_uri(),
        }
    )
    run_day(config, FIRST_DAY)

    exported = sorted(path.relative_to(landing).as_posix() for path in (landing / "incoming").rglob("*.*"))
    assert exported == [
        f"incoming/{table}/{FIRST_DAY}/{table}-{FIRST_DAY}.{ext}"
        for table, ext in (
            ("clickstream", "jsonl.gz"),  # the day's web events, loaded into ClickHouse (section 8)
            ("customer", "csv"),
            ("product", "csv"),
            ("sales", "parquet"),
        )
    ]
    with psycopg.connect(config.pg_dsn()) as conn:
        ingested = conn.execute(
            "select file_path, status, rows_rejected, run_id from sl.landing_file order by file_path"
        ).fetchall()
        assert conn.execute("select count(*) from raw.generated_day").fetchone() == (0,)  # not into RAW
        customers = conn.execute("select count(*) from raw.customer").fetchone()[0]
        lines = conn.execute(
            "select count(*) from cdm.sales_datamart where sale_date = %s and is_current", (FIRST_DAY,)
        ).fetchone()[0]
    assert [(path, status, rejected) for path, status, rejected, _ in ingested] == [
        (path, "loaded", 0) for path in exported
    ]
    assert all(run_id.startswith("manual__") for *_, run_id in ingested), ingested  # the run's own id
    assert customers >= SHOP["customers"] and lines > 0
    assert differences(config) == []


def stop_postgres_once_the_warehouse_runs(
    test_settings: Settings, config: Settings, logical_date: str
) -> None:
    """Wait for a dbt task of the warehouse group to be running in that run, then stop PostgreSQL."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with psycopg.connect(config.pg_dsn(database=config.airflow_database)) as conn:
            running = conn.execute(
                """select ti.task_id from task_instance as ti
                   join dag_run as run on run.dag_id = ti.dag_id and run.run_id = ti.run_id
                   where ti.dag_id = %s and run.logical_date = %s::timestamptz
                     and ti.task_id like 'warehouse.%%' and ti.state = 'running'""",
                (DAG_ID, logical_date),
            ).fetchall()
        if running:
            time.sleep(1)  # inside dbt's work rather than at its start
            LocalPostgres(test_settings).stop()
            return
        time.sleep(0.3)
    raise AssertionError("the warehouse task group never started")


def test_a_run_whose_postgres_stops_fails_clearly_and_its_rerun_matches_a_clean_run(
    new_warehouse, test_settings
):
    faulty = new_warehouse("e2e_faulty")
    run_day(faulty, FIRST_DAY)
    second_day = FIRST_DAY + dt.timedelta(days=1)

    outcome: dict[str, BaseException] = {}

    def run_second_day() -> None:
        try:
            run_day(faulty, second_day)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error

    runner = threading.Thread(target=run_second_day)
    runner.start()
    stop_postgres_once_the_warehouse_runs(test_settings, faulty, logical_date_for(second_day))
    runner.join(timeout=900)
    assert not runner.is_alive()
    error = outcome.get("error")
    assert isinstance(error, PipelineError), error
    assert "PostgreSQL at 127.0.0.1" in str(error) and "not reachable" in str(error)

    LocalPostgres(test_settings).start()
    run_day(faulty, second_day)
    after_fault = state(faulty)
    assert differences(faulty) == []

    clean = new_warehouse("e2e_clean")
    run_day(clean, FIRST_DAY)
    run_day(clean, second_day)
    after_clean = state(clean)

    for name in after_clean:
        assert after_fault[name] == after_clean[name], name
