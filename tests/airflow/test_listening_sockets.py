"""Every socket the Airflow processes T-Shop starts listen on is on 127.0.0.1, on a port of T-Shop's
configuration (the web app's, TSHOP_AIRFLOW_PORT, and the scheduler's log server's,
TSHOP_AIRFLOW_LOG_SERVER_PORT), so two installs on one machine never collide and nothing is served to the
network."""

from __future__ import annotations

import urllib.error
import urllib.request

import psutil
import pytest

from tshop.config import Settings, settings
from tshop.orchestration import compile_manifests, ensure_airflow
from tshop.services._process import free_port, wait_until
from tshop.webapps import web_apps

pytestmark = pytest.mark.slow


def listening(pids: list[int]) -> set[tuple[str, int, str]]:
    """(address, port, program) of every listening TCP socket of these processes and their children."""
    found = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in tree:
            try:
                for conn in process.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        found.add((conn.laddr.ip, conn.laddr.port, " ".join(process.cmdline()[:3])))
            except psutil.Error:
                continue
    return found


def test_airflow_listens_on_loopback_only_on_ports_of_tshop_configuration(
    test_settings: Settings, pg_dsn: str
):
    # ports of their own, not Airflow's defaults (8080, 8793): another install may hold those
    ports = {"TSHOP_AIRFLOW_PORT": free_port(), "TSHOP_AIRFLOW_LOG_SERVER_PORT": free_port()}
    config = settings({**test_settings.env, **{name: str(port) for name, port in ports.items()}})
    compile_manifests(config)
    ensure_airflow(config)
    apps = web_apps(config)
    try:
        for app in apps:
            app.start()
        pids = [app.status().pid for app in apps if app.status().pid]

        def settled() -> bool:
            found = listening(pids)
            return set(ports.values()) <= {port for _, port, _ in found} or any(
                address != "127.0.0.1" for address, _, _ in found
            )

        wait_until(settled, timeout=240, interval=1)
        found = listening(pids)
        log_server = f"http://127.0.0.1:{ports['TSHOP_AIRFLOW_LOG_SERVER_PORT']}/log/x"
        try:
            urllib.request.urlopen(log_server, timeout=10)
            answer = 200
        except urllib.error.HTTPError as error:
            answer = error.code
        except OSError:
            answer = None
    finally:
        for app in apps:
            app.stop()

    assert found, "the Airflow processes listen on nothing"
    assert {address for address, _, _ in found} == {"127.0.0.1"}, found
    assert {port for _, port, _ in found} == set(ports.values()), found
    # the log server is Airflow's: it refuses a request without the API server's signed token
    assert answer == 403
