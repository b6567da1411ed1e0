"""`make demo` as a new user runs it, on servers of its own: a shop through yesterday, the DAG unpaused with a
successful scheduled run of today's logical date, the dbt docs served, and at most about 60 lines of output
naming every address and login."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest

from tshop.config import REPO_ROOT, settings
from tshop.dashboard import CUSTOMERS_DASHBOARD_SLUG, DASHBOARD_SLUG
from tshop.orchestration import latest_logical_date
from tshop.orchestration.runs import business_day_of
from tshop.services._process import free_port

pytestmark = pytest.mark.slow

TSHOP = str(REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop")
DEMO_LINE_BUDGET = 60


@pytest.fixture(scope="module")
def demo(test_settings):
    """`tshop demo --days 3` in a new state folder and on ports of its own, as on a fresh clone (the folder is
    under the test state folder: PostgreSQL's system user must reach it); everything it started is stopped."""
    state = test_settings.state_dir / "demo"
    shutil.rmtree(state, ignore_errors=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TSHOP_")},
        "TSHOP_STATE_DIR": str(state),
        **{
            name: str(free_port())
            for name in (
                "TSHOP_PG_PORT", "TSHOP_CLICKHOUSE_PORT", "TSHOP_AIRFLOW_PORT", "TSHOP_SUPERSET_PORT",
                "TSHOP_AIRFLOW_LOG_SERVER_PORT", "TSHOP_AIRFLOW_TRIGGERER_LOG_SERVER_PORT",
            )
        },
    }  # fmt: skip
    try:
        result = subprocess.run(
            [TSHOP, "demo", "--days", "3"], env=env, capture_output=True, text=True, timeout=1500
        )
        yield settings(env), result
    finally:
        subprocess.run([TSHOP, "webapps", "stop"], env=env, capture_output=True, timeout=300)
        subprocess.run([TSHOP, "services", "stop"], env=env, capture_output=True, timeout=300)


def test_the_demo_succeeds_within_its_line_budget_naming_every_address_and_login(demo):
    config, result = demo
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert len(lines) <= DEMO_LINE_BUDGET, result.stdout
    for text in (
        f"http://127.0.0.1:{config.airflow_port}",
        f"login {config.airflow_user} / {config.airflow_password}",
        f"http://127.0.0.1:{config.superset_port}/superset/dashboard/{DASHBOARD_SLUG}/",
        f"http://127.0.0.1:{config.superset_port}/superset/dashboard/{CUSTOMERS_DASHBOARD_SLUG}/",
        f"login {config.superset_user} / {config.superset_password}",
        f"http://127.0.0.1:{config.airflow_port}/cosmos/warehouse/dbt_docs_index.html",
        "make psql",
        config.reports_url,
    ):
        assert text in result.stdout, text


def test_the_demo_shop_ends_yesterday(demo):
    config, _ = demo
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with psycopg.connect(config.pg_dsn()) as conn:
        assert conn.execute("select max(sold_at)::date from raw.sales").fetchone()[0] == yesterday
        assert conn.execute("select count(*) from raw.generated_day").fetchone()[0] == 3


def test_the_demo_run_wrote_the_report_of_every_demo_day(demo):
    config, _ = demo
    today = dt.datetime.now(dt.UTC).date()
    reports = Path(config.state_dir) / "reports" / "daily"
    # the demo's run is the latest 02:00 UTC's: it builds through yesterday, or through the day before
    # between midnight and 02:00 (yesterday's report then comes with the next run)
    built_through = business_day_of(latest_logical_date())
    days = [today - dt.timedelta(days=days_ago) for days_ago in (3, 2, 1)]
    for day in [day for day in days if day <= built_through]:
        for suffix in (".csv", ".html"):
            assert (reports / f"{day}{suffix}").stat().st_size > 0, f"{day}{suffix}"


def test_the_dag_is_unpaused_with_a_successful_run_of_todays_logical_date(demo):
    config, _ = demo
    with httpx.Client(base_url=f"http://127.0.0.1:{config.airflow_port}", timeout=30) as http:
        login = http.post(
            "/auth/token", json={"username": config.airflow_user, "password": config.airflow_password}
        )
        assert login.status_code == 201, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        dag = http.get("/api/v2/dags/tshop").json()
        assert dag["is_paused"] is False, dag
        runs = http.get("/api/v2/dags/tshop/dagRuns").json()["dag_runs"]
        todays = [run for run in runs if run["logical_date"] and dt.datetime.fromisoformat(
            run["logical_date"].replace("Z", "+00:00")) == dt.datetime.fromisoformat(latest_logical_date())]  # fmt: skip
        assert [run["state"] for run in todays] == ["success"], runs
        assert todays[0]["run_type"] == "scheduled", "an ordinary run of the scheduler"
        docs = http.get("/cosmos/warehouse/dbt_docs_index.html")
        assert docs.status_code == 200 and "dbt Docs" in docs.text
