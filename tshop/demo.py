"""`make demo`: every stage from a fresh clone to a running dashboard, each timed.

The demo shop is small enough to finish in minutes on 2 cores (DEMO_SHOP); a second `make demo` finds
its days already loaded, skips the generator, and the pipeline run then finds nothing new.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager

import psycopg

from tshop.config import REPO_ROOT, Settings
from tshop.dashboard import DASHBOARD_SLUG, import_dashboard
from tshop.orchestration import logical_date_for, run_pipeline
from tshop.services import local_services
from tshop.webapps import start_web_apps

# 20,000 customers and 14 days of trading: about 9,000 cheques and 20,000 sale lines
DEMO_SHOP = {"customers": 20_000, "days": 14, "seed": 42, "start_date": dt.date(2024, 3, 4)}
DATAGEN = REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop-datagen"


@contextmanager
def stage(name: str, timings: list[tuple[str, float, str]]):
    print(f"==> {name}", flush=True)
    started = time.monotonic()
    note: list[str] = []
    yield note.append
    timings.append((name, time.monotonic() - started, " ".join(note)))


def demo_days_loaded(config: Settings) -> bool:
    last_day = DEMO_SHOP["start_date"] + dt.timedelta(days=DEMO_SHOP["days"] - 1)
    with psycopg.connect(config.pg_dsn()) as conn:
        exists = conn.execute("select to_regclass('raw.sales') is not null").fetchone()[0]
        if not exists:
            return False
        latest = conn.execute("select max(sold_at)::date from raw.sales").fetchone()[0]
    return latest is not None and latest >= last_day


def generate_demo_shop(config: Settings, note: Callable[[str], None]) -> None:
    if demo_days_loaded(config):
        note("already loaded: skipped")
        return
    subprocess.run(
        [str(DATAGEN), "generate",
         "--customers", str(DEMO_SHOP["customers"]), "--days", str(DEMO_SHOP["days"]),
         "--seed", str(DEMO_SHOP["seed"]), "--start-date", DEMO_SHOP["start_date"].isoformat()],
        env=config.client_env(),
        check=True,
    )  # fmt: skip


def run_demo(config: Settings) -> None:
    timings: list[tuple[str, float, str]] = []
    with stage("local services", timings):
        for service in local_services(config):
            print(f"    {service.start()}")
    with stage("demo shop (generator into RAW)", timings) as note:
        generate_demo_shop(config, note)
    with stage("pipeline through Airflow", timings):
        last_day = DEMO_SHOP["start_date"] + dt.timedelta(days=DEMO_SHOP["days"] - 1)
        run_pipeline(config, logical_date_for(last_day), generate=False)
    with stage("dashboard import (Superset)", timings):
        import_dashboard(config)
    with stage("web apps", timings):
        for status in start_web_apps(config):
            print(f"    {status}")

    print("\nStage timings:")
    for name, seconds, note in timings:
        print(f"  {name:<34} {seconds:7.1f} s  {note}")
    print(
        "\nT-Shop is running:\n"
        f"  Airflow   http://127.0.0.1:{config.airflow_port}   login {config.airflow_user} / {config.airflow_password}\n"
        f"  Superset  http://127.0.0.1:{config.superset_port}/superset/dashboard/{DASHBOARD_SLUG}/   "
        f"login {config.superset_user} / {config.superset_password}\n"
        f'  Warehouse eval "$(make env)"; then psql "$TSHOP_PG_DSN" or `make psql`\n'
        "  Stop everything with `make stop`."
    )
