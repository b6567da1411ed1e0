"""Airflow on the local machine: its home and metadata database, the pipeline run, the web app.

Airflow's metadata lives in its own database on the warehouse's PostgreSQL server; the executor is the
LocalExecutor. Everything Airflow needs is passed as AIRFLOW__* environment variables, so there is no
airflow.cfg to keep in step: `airflow_env()` is the single place that configures it.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg

from tshop.config import REPO_ROOT, Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT, run_dbt
from tshop.services.background import BackgroundProcess
from tshop.services.postgres import create_database_if_missing

DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
DAG_ID = "tshop"
AIRFLOW_BIN = Path(REPO_ROOT / ".venvs" / "airflow" / "bin")


class PipelineError(RuntimeError):
    """The pipeline run failed; the message names the failing tasks."""


def _sqlalchemy_url(config: Settings) -> str:
    parts = urlsplit(config.pg_dsn(database=config.airflow_database))
    return parts._replace(scheme="postgresql+psycopg2").geturl()


def airflow_env(config: Settings) -> dict[str, str]:
    home = config.airflow_home
    return {
        **config.client_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "UTC",
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(config),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{config.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy_url(config),
        "AIRFLOW__API__PORT": str(config.airflow_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{config.airflow_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": config.secret("TSHOP_AIRFLOW_JWT_SECRET"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{config.airflow_port}/execution/",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # Cosmos reports usage to the internet unless told not to
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_ANALYTICS": "false",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "TSHOP_RETRIES": str(config.retries),
    }


def _fernet_key(config: Settings) -> str:
    import base64
    import hashlib

    # a Fernet key is 32 url-safe base64 bytes; derive it from a generated per-install secret
    digest = hashlib.sha256(config.secret("TSHOP_AIRFLOW_FERNET_SEED").encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def airflow(
    config: Settings, *args: str, check: bool = True, capture: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            [str(AIRFLOW_BIN / "airflow"), *args],
            env=airflow_env(config),
            capture_output=capture,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise PipelineError(f"`airflow {' '.join(args)}` did not finish within {timeout:.0f} s") from None
    if check and result.returncode != 0:
        detail = (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:] if capture else ""
        raise PipelineError(f"`airflow {' '.join(args)}` failed (exit {result.returncode}) {detail}")
    return result


# what dbt writes into a project folder, not part of the project
DBT_OUTPUT = {"target", "logs", "dbt_packages"}


def manifest_is_current(project: Path) -> bool:
    """Whether target/manifest.json is newer than every file of the project, as make would judge it."""
    manifest = project / "target" / "manifest.json"
    if not manifest.exists():
        return False
    built = manifest.stat().st_mtime
    return all(
        path.stat().st_mtime < built
        for path in project.rglob("*")
        if path.is_file() and not DBT_OUTPUT & set(path.relative_to(project).parts)
    )


def compile_manifests(config: Settings) -> None:
    """`dbt parse` both projects: Cosmos renders the DAG from these manifests (no dbt ls at parse time).

    A manifest newer than its project's files is kept: it only gives the DAG its shape (the nodes and their
    order), which only the files change, and the two parses cost about 16 s here, a third of a demo run.
    """
    for project in (POSTGRES_PROJECT, CLICKHOUSE_PROJECT):
        if (project / "dbt_project.yml").exists() and not manifest_is_current(project):
            run_dbt(config, ["parse", "--quiet"], project=project)


def ensure_airflow(config: Settings) -> None:
    """Create Airflow's database, its admin login, and migrate its schema (once per Airflow version)."""
    home = config.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({config.airflow_user: config.airflow_password}))
    passwords.chmod(0o600)

    create_database_if_missing(config, config.airflow_database)

    from importlib.metadata import version

    # one stamp per Airflow version and metadata database: warehouses on one server share Airflow's records
    metadata = quote(config.pg_dsn(database=config.airflow_database), safe="")[-24:]
    stamp = home / f".migrated-{version('apache-airflow')}-{metadata}"
    if not stamp.exists():
        airflow(config, "db", "migrate", capture=True)
        stamp.touch()


def logical_date_for(business_day: dt.date) -> str:
    """The logical date of the run that processes `business_day`: 02:00 UTC the next morning."""
    return f"{business_day + dt.timedelta(days=1)}T02:00:00+00:00"


def run_pipeline(
    config: Settings,
    logical_date: str | None = None,
    generate: bool = False,
    params: dict | None = None,
    timeout: float | None = None,
) -> None:
    """One pipeline cycle through Airflow (`airflow dags test`), with the DAG's `generate` and any other
    `params`; raises PipelineError naming what failed."""
    compile_manifests(config)
    ensure_airflow(config)
    logical_date = logical_date or time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    result = airflow(
        config,
        "dags", "test", DAG_ID, logical_date,
        "--conf", json.dumps({**(params or {}), "generate": generate}),
        check=False,
        timeout=timeout,
    )  # fmt: skip
    if result.returncode != 0:
        raise PipelineError(
            f"the pipeline run for {logical_date} failed: {failed_tasks(config, logical_date)}"
        )


def failed_tasks(config: Settings, logical_date: str) -> str:
    """The tasks of the run at `logical_date` that did not succeed, from Airflow's own records."""
    try:
        conn = psycopg.connect(config.pg_dsn(database=config.airflow_database), connect_timeout=10)
    except psycopg.OperationalError as error:
        address = urlsplit(config.pg_dsn()).netloc.rpartition("@")[2]
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (
            f"PostgreSQL at {address} is not reachable ({first_line}); it holds the warehouse and Airflow's "
            "records. Start it (`make services`) and run the same date again."
        )
    with conn:
        rows = conn.execute(
            """select ti.task_id, ti.state
               from task_instance as ti
               join dag_run as run on run.dag_id = ti.dag_id and run.run_id = ti.run_id
               where ti.dag_id = %s and run.logical_date = %s::timestamptz
                 and ti.state in ('failed', 'upstream_failed')
               order by ti.state, ti.task_id""",
            (DAG_ID, logical_date),
        ).fetchall()
    failed = [task for task, state in rows if state == "failed"]
    if not rows:
        return "see the Airflow output above"
    blocked = len(rows) - len(failed)
    return f"failed task(s): {', '.join(failed)}" + (f"; {blocked} task(s) did not run" if blocked else "")


def web_apps(config: Settings) -> list[BackgroundProcess]:
    """The Airflow web app (api-server), scheduler and DAG processor that `make demo` leaves running."""
    run_dir = config.airflow_home / "run"
    env = airflow_env(config)
    address = f"http://127.0.0.1:{config.airflow_port}"
    return [
        BackgroundProcess(
            "airflow-api-server", [str(AIRFLOW_BIN / "airflow"), "api-server"], run_dir, address, env
        ),
        BackgroundProcess("airflow-scheduler", [str(AIRFLOW_BIN / "airflow"), "scheduler"], run_dir, "", env),
        BackgroundProcess(
            "airflow-dag-processor", [str(AIRFLOW_BIN / "airflow"), "dag-processor"], run_dir, "", env
        ),
    ]
