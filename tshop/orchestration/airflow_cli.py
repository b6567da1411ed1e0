"""Airflow on the local machine: its environment, its command line, its metadata database.

Airflow's metadata lives in its own database on the warehouse's PostgreSQL server; the executor is the
LocalExecutor. Everything Airflow needs is passed as AIRFLOW__* environment variables, so there is no
airflow.cfg to keep in step: `airflow_env()` is the single place that configures it. Every socket Airflow
listens on is on 127.0.0.1, on a port of T-Shop's configuration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg

from tshop.config import REPO_ROOT, Settings
from tshop.dbt_docs import dbt_docs_airflow_env
from tshop.errors import TShopError
from tshop.services.postgres import create_database_if_missing

DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
DAG_ID = "tshop"
# the hourly ingest of the landing zone (airflow/dags/tshop_ingest.py)
INGEST_DAG_ID = "tshop_ingest"
AIRFLOW_BIN = Path(REPO_ROOT / ".venvs" / "airflow" / "bin")


class PipelineError(TShopError):
    """The pipeline run failed; the message names the tasks that did not succeed."""


def loopback_hostname() -> str:
    """The host name Airflow records for this machine's task runs (`[core] hostname_callable`).

    The API server fetches a running task's log from the log server at this name, and the log server listens
    on 127.0.0.1 only; the machine's own name may resolve elsewhere (127.0.1.1 on Debian).
    """
    return "127.0.0.1"


def _sqlalchemy_url(config: Settings) -> str:
    parts = urlsplit(config.pg_dsn_as("airflow", database=config.airflow_database))
    return parts._replace(scheme="postgresql+psycopg2").geturl()


def _fernet_key(config: Settings) -> str:
    # a Fernet key is 32 url-safe base64 bytes; derive it from a generated per-install secret
    digest = hashlib.sha256(config.secret("TSHOP_AIRFLOW_FERNET_SEED").encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


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
        # a new DAG waits for `make demo` (or the UI) to unpause it: it must not start building a warehouse
        # that has no shop yet
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{config.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy_url(config),
        "AIRFLOW__API__PORT": str(config.airflow_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{config.airflow_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": config.secret("TSHOP_AIRFLOW_JWT_SECRET"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{config.airflow_port}/execution/",
        # the API server signs its requests to the log server with this; unset, each process made up its own
        "AIRFLOW__API__SECRET_KEY": config.secret("TSHOP_AIRFLOW_API_SECRET_KEY"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.loopback_hostname",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(task_log_folder(config)),
        # Airflow's log servers listen on every interface, with no setting for the address: `web_apps()` runs
        # the scheduler's own on 127.0.0.1 instead; the ports come from T-Shop so two installs never collide
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(config.airflow_log_server_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(config.airflow_triggerer_log_server_port),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        # Cosmos reports usage to the internet unless told not to
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_ANALYTICS": "false",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "TSHOP_RETRIES": str(config.retries),
        # Cosmos' plugin serves both projects' dbt docs in the Airflow web app (tshop/dbt_docs.py)
        **dbt_docs_airflow_env(config),
    }


def task_log_folder(config: Settings) -> Path:
    """Where the scheduler's task runs write their logs (one file per task try)."""
    return config.airflow_home / "logs"


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


def ensure_airflow(config: Settings) -> None:
    """Create Airflow's database, its admin login, and migrate its schema (once per Airflow version)."""
    home = config.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({config.airflow_user: config.airflow_password}))
    passwords.chmod(0o600)

    create_database_if_missing(config, config.airflow_database, "airflow")

    # one stamp per Airflow version and metadata database: warehouses on one server share Airflow's records
    metadata = quote(config.pg_dsn_as("airflow", database=config.airflow_database), safe="")[-24:]
    stamp = home / f".migrated-{version('apache-airflow')}-{metadata}"
    if not stamp.exists():
        airflow(config, "db", "migrate", capture=True)
        stamp.touch()


def unpause_dag(config: Settings, dag_id: str = DAG_ID, timeout: float = 180) -> bool:
    """Unpause a DAG once the DAG processor has registered it, so the scheduler runs it on its schedule;
    False when it was unpaused already."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(
        config.pg_dsn_as("airflow", database=config.airflow_database), autocommit=True
    ) as conn:
        while (
            paused := conn.execute(
                "select is_paused from dag where dag_id = %s and not is_stale", (dag_id,)
            ).fetchone()
        ) is None:
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"the DAG processor did not register the DAG `{dag_id}` within {timeout:.0f} s; see "
                    f"{config.airflow_home / 'run'} for its log"
                )
            time.sleep(1)
    if not paused[0]:
        return False
    airflow(config, "dags", "unpause", dag_id, capture=True)
    return True
