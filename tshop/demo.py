"""`make demo`: every stage from a fresh clone to a running, scheduled shop and its dashboard, each timed.

The demo shop lives on today's calendar (CONTRACT.md section 6): a new one is DEMO_DAYS business days ending
yesterday (UTC). Then the DAG is unpaused with the scheduler running, and the demo waits for the scheduler's
own run of today's logical date, which catches RAW up through yesterday and builds. A second `make demo`
finds the shop and today's run there, and only starts what is not running.

One line per stage and per task group; the generator's, Airflow's and dbt's output goes to log files whose
paths are printed (`--verbose` shows the generator's as it comes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
from rich.console import Console

from tshop.config import REPO_ROOT, Settings
from tshop.dashboard import (
    BUNDLE,
    CUSTOMERS_DASHBOARD_SLUG,
    DASHBOARD_SLUG,
    FUNNEL_DASHBOARD_SLUG,
    import_dashboard,
    start_web_app,
    web_app,
)
from tshop.dbt_docs import dbt_docs_url
from tshop.errors import TShopError
from tshop.orchestration.airflow_cli import DAG_ID, INGEST_DAG_ID, unpause_dag
from tshop.orchestration.runs import latest_logical_date, run_scheduled
from tshop.services import local_services
from tshop.webapps import refresh_dbt_docs, start_airflow_apps

# 20,000 customers: about 650 cheques and 1,400 sale lines a weekday, five times that on a weekend
DEMO_SHOP = {"customers": 20_000, "seed": 42}
DEMO_DAYS = 14
DATAGEN = REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop-datagen"


class DemoError(TShopError):
    """A stage of the demo failed; the message says which and where its log is."""


@contextmanager
def stage(console: Console, name: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    console.print(f"[bold]==>[/] {name}")
    started = time.monotonic()
    yield
    timings.append((name, time.monotonic() - started))


def last_loaded_day(config: Settings) -> dt.date | None:
    """The last business day of the shop, where the generator writes it (TSHOP_GENERATE_TO)."""
    if config.generate_to == "landing":
        from datagen.landing import LandingWriter

        with LandingWriter(config.landing_url) as landing:
            return landing.last_day()
    with psycopg.connect(config.pg_dsn_as("loader")) as conn:
        if not conn.execute("select to_regclass('raw.generated_day') is not null").fetchone()[0]:
            return None
        return conn.execute("select max(business_day) from raw.generated_day").fetchone()[0]


def generate_demo_shop(config: Settings, days: int, console: Console, verbose: bool) -> None:
    """A new shop of `days` business days ending yesterday, into RAW or the landing zone (TSHOP_GENERATE_TO);
    a shop there already is left to the scheduled run, which catches it up through yesterday."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    last = last_loaded_day(config)
    if last is not None:
        catch_up = (
            "up to date" if last >= yesterday else f"the scheduled run catches it up through {yesterday}"
        )
        place = "RAW" if config.generate_to == "raw" else "The landing zone"
        console.print(f"    {place} holds the shop through {last}: {catch_up}", markup=False)
        return
    log_file = config.state_dir / "logs" / "demo-generate.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(DATAGEN), "generate", "--through", yesterday.isoformat(), "--days", str(days),
        "--customers", str(DEMO_SHOP["customers"]), "--seed", str(DEMO_SHOP["seed"]), "--to", config.generate_to,
    ]  # fmt: skip
    with open(log_file, "w") as log:
        result = subprocess.run(
            command, env=config.client_env(), stdout=None if verbose else log, stderr=None if verbose else log
        )
    lines = log_file.read_text().splitlines() if not verbose else []
    if result.returncode != 0:
        raise DemoError(
            "the generator failed; its log ends:\n  "
            + "\n  ".join(lines[-10:])
            + f"\n(whole log: {log_file})"
        )
    summary = lines[-1] if lines else "done"
    console.print(
        f"    {days} days through {yesterday}, {DEMO_SHOP['customers']:,} customers: {summary}", markup=False
    )
    if not verbose:
        console.print(f"    generator log: {log_file}", markup=False)


def import_dashboard_once(config: Settings) -> str:
    """Import the dashboard bundle unless this very bundle was imported into this Superset before (each
    import boots Superset twice, most of a second demo's time; edits made in the UI stay)."""
    files = sorted(path for path in BUNDLE.rglob("*") if path.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(BUNDLE)).encode() + b"\0" + path.read_bytes() + b"\0")
    stamp = config.superset_home / f".imported-{digest.hexdigest()[:16]}"
    if stamp.exists():
        return f"{BUNDLE.name}/ imported before, unchanged: kept (`make dashboard` imports it again)"
    for old in config.superset_home.glob(".imported-*"):
        old.unlink()
    import_dashboard(config)
    stamp.touch()
    return f"imported {BUNDLE.name}/ ({len(files)} files)"


def run_demo(config: Settings, days: int = DEMO_DAYS, verbose: bool = False) -> None:
    console = Console(highlight=False, soft_wrap=True)
    timings: list[tuple[str, float]] = []
    with stage(console, "local services", timings):
        for service in local_services(config):
            console.print(f"    {service.start()}", markup=False)
    target = "RAW" if config.generate_to == "raw" else "the landing zone, for the run's ingest"
    with stage(console, f"demo shop (generator into {target})", timings):
        generate_demo_shop(config, days, console, verbose)
    with stage(console, "Airflow (web app, scheduler, DAG processor)", timings):
        _print_statuses(console, start_airflow_apps(config, refresh_docs=False))
        unpause_dag(config)
        unpause_dag(config, INGEST_DAG_ID)
        console.print(
            f"    DAG `{DAG_ID}` unpaused: it runs daily at 02:00 UTC for the day before; "
            f"`{INGEST_DAG_ID}` ingests the landing zone hourly",
            markup=False,
        )
    logical_date = latest_logical_date()
    # Superset's set-up and import are its own processes, mostly waiting: they go alongside the run
    with ThreadPoolExecutor(max_workers=1) as pool:
        dashboard = pool.submit(import_dashboard_once, config)
        with stage(console, f"pipeline: the scheduler's run of {logical_date}", timings):
            run_scheduled(config, logical_date, console)
        with stage(console, "dashboard import (Superset, alongside the run)", timings):
            console.print(f"    {dashboard.result()}", markup=False)
    with stage(console, "dbt docs (in the Airflow web app)", timings):
        for note in refresh_dbt_docs(config):
            console.print(f"    {note}", markup=False)
    with stage(console, "Superset web app", timings):
        superset = web_app(config).status()  # running: its admin and database are set up already
        _print_statuses(console, [superset if superset.state == "running" else start_web_app(config)])

    console.print("\nStage timings:")
    for name, seconds in timings:
        console.print(f"  {name:<58} {seconds:7.1f} s", markup=False)
    console.print(addresses(config), markup=False)


def _print_statuses(console: Console, statuses: list) -> None:
    for status in statuses:
        console.print(f"    {status}", markup=False)


def addresses(config: Settings) -> str:
    """Every address and login a person needs after the demo."""
    return (
        "\nT-Shop is running:\n"
        f"  Airflow    http://127.0.0.1:{config.airflow_port}/dags/{DAG_ID}   "
        f"login {config.airflow_user} / {config.airflow_password}\n"
        f"  Superset   http://127.0.0.1:{config.superset_port}/superset/dashboard/{DASHBOARD_SLUG}/   "
        f"login {config.superset_user} / {config.superset_password} "
        f"(viewer: {config.superset_viewer_user} / {config.superset_viewer_password})\n"
        f"             http://127.0.0.1:{config.superset_port}/superset/dashboard/{CUSTOMERS_DASHBOARD_SLUG}/ "
        "(customers)\n"
        f"             http://127.0.0.1:{config.superset_port}/superset/dashboard/{FUNNEL_DASHBOARD_SLUG}/ "
        "(web funnel and ratings)\n"
        f"  dbt docs   {dbt_docs_url(config)} and {dbt_docs_url(config, 'clickhouse_mart')}\n"
        f'  Warehouse  `make psql`, or eval "$(make env)" then psql "$TSHOP_PG_DSN"\n'
        f"  Reports    {config.reports_url}/daily/ and /monthly/ (CSV and HTML, one per day and month)\n"
        f"  Landing    {config.landing_url}/incoming/<table>/ (files an outside system drops; `tshop ingest` "
        "loads them now, the DAGs hourly and before each build)\n"
        f"  Logs       {Path(config.state_dir) / 'logs'} and {config.airflow_home / 'logs'} (task runs)\n"
        "  Next runs  daily at 02:00 UTC while the scheduler runs; `make pipeline` runs one now\n"
        "  Stop everything with `make stop`."
    )
