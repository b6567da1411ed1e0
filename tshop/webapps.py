"""The web apps `make demo` leaves running: Airflow (api-server, scheduler, DAG processor) and Superset."""

from __future__ import annotations

from tshop import dashboard
from tshop.config import Settings
from tshop.orchestration import compile_manifests, ensure_airflow, web_apps
from tshop.services._process import ServiceError, ServiceStatus, port_is_free, wait_until
from tshop.services.background import BackgroundProcess


def all_web_apps(config: Settings) -> list[BackgroundProcess]:
    return [*web_apps(config), dashboard.web_app(config)]


def start_web_apps(config: Settings) -> list[ServiceStatus]:
    compile_manifests(config)
    ensure_airflow(config)
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
    # Superset serves the dashboard `make demo` (or `make dashboard`) imported
    return [*statuses, dashboard.start_web_app(config)]
