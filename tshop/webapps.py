"""The web apps `make demo` leaves running: Airflow (api-server, scheduler, its log server, DAG processor)
and Superset."""

from __future__ import annotations

from tshop import dashboard
from tshop.config import Settings
from tshop.dbt import DbtError
from tshop.dbt_docs import generate_dbt_docs
from tshop.orchestration.airflow_cli import AIRFLOW_BIN, airflow_env, ensure_airflow
from tshop.orchestration.manifests import compile_manifests
from tshop.run_guard import active_run
from tshop.services._process import ServiceError, ServiceStatus, port_is_free, wait_until
from tshop.services.background import BackgroundProcess


def web_apps(config: Settings) -> list[BackgroundProcess]:
    """The Airflow web app (api-server), scheduler, its log server and the DAG processor that `make demo`
    leaves running."""
    run_dir = config.airflow_home / "run"
    env = airflow_env(config)
    address = f"http://127.0.0.1:{config.airflow_port}"
    return [
        BackgroundProcess(
            "airflow-api-server", [str(AIRFLOW_BIN / "airflow"), "api-server"], run_dir, address, env
        ),
        # the scheduler's own log server would listen on every interface (Airflow has no setting for its
        # address): this one serves the same app, Airflow's, on 127.0.0.1
        BackgroundProcess(
            "airflow-scheduler",
            [str(AIRFLOW_BIN / "airflow"), "scheduler", "--skip-serve-logs"],
            run_dir,
            "",
            env,
        ),
        BackgroundProcess(
            "airflow-log-server",
            [
                str(AIRFLOW_BIN / "uvicorn"),
                "--factory",
                "airflow.utils.serve_logs:create_app",
                "--no-access-log",
                "--host",
                "127.0.0.1",
                "--port",
                str(config.airflow_log_server_port),
            ],
            run_dir,
            f"http://127.0.0.1:{config.airflow_log_server_port}",
            env,
        ),
        BackgroundProcess(
            "airflow-dag-processor", [str(AIRFLOW_BIN / "airflow"), "dag-processor"], run_dir, "", env
        ),
    ]


def all_web_apps(config: Settings) -> list[BackgroundProcess]:
    return [*web_apps(config), dashboard.web_app(config)]


def start_web_apps(config: Settings) -> list[ServiceStatus]:
    """Start Airflow's apps and Superset (harmless when they run)."""
    # Superset serves the dashboard `make demo` (or `make dashboard`) imported
    return [*start_airflow_apps(config), dashboard.start_web_app(config)]


def refresh_dbt_docs(config: Settings) -> list[str]:
    """Rebuild the dbt docs the Airflow web app serves where a project changed; notes on sites built without
    their database. A failure to build them never stops the web apps: the notes say why."""
    try:
        built = generate_dbt_docs(config)
    except DbtError as error:
        return [f"dbt docs not rebuilt: {str(error).splitlines()[0]}"]
    return [
        f"dbt docs of {slug} built {state}" for slug, state in built.items() if state.startswith("offline")
    ]


def start_airflow_apps(config: Settings, refresh_docs: bool = True) -> list[ServiceStatus]:
    """Start the Airflow web app, scheduler, log server and DAG processor; return once the web app answers.
    `refresh_docs=False` leaves the dbt docs to the caller (the demo builds them once, after its run, when
    the catalog has its tables)."""
    running = active_run(config.state_dir)
    if running is not None and web_apps(config)[1].status().state != "running":
        # a scheduler started now would run the tasks of that `airflow dags test` run a second time
        raise ServiceError(
            f"a pipeline run is active ({running.describe()}): start the web apps after it ends"
        )
    compile_manifests(config)
    ensure_airflow(config)
    if refresh_docs:
        refresh_dbt_docs(config)
    apps = web_apps(config)
    by_name = {app.name: app for app in apps}
    api_server = by_name["airflow-api-server"]
    api_server.refuse_busy_port("Airflow web app", config.airflow_port, "TSHOP_AIRFLOW_PORT")
    by_name["airflow-log-server"].refuse_busy_port(
        "Airflow log server", config.airflow_log_server_port, "TSHOP_AIRFLOW_LOG_SERVER_PORT"
    )
    statuses = [app.start() for app in apps]
    if not wait_until(lambda: not port_is_free("127.0.0.1", config.airflow_port), timeout=90, interval=0.5):
        raise ServiceError(
            f"the Airflow web app did not open port {config.airflow_port}; see {api_server.log_file}"
        )
    return statuses
