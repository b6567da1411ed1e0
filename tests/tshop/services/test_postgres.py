"""The local PostgreSQL: starts, stops, restarts, survives a kill -9, and refuses a busy port clearly.

Each test runs its own server in its own state folder on a free port, so they never touch the
services of `make services` or of other tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid

import psycopg
import pytest

from tshop.config import REPO_ROOT, settings
from tshop.services import ServiceError
from tshop.services._process import free_port, pid_alive, wait_until
from tshop.services.postgres import LocalPostgres, binary

pytestmark = pytest.mark.slow


@pytest.fixture
def isolated_env():
    """An environment with its own state folder (under the repository, which the server's system
    user can reach; pytest's tmp folders are private to root) and its own ports."""
    state = REPO_ROOT / ".state" / "test" / f"services-{uuid.uuid4().hex[:8]}"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("TSHOP_")},
        "TSHOP_STATE_DIR": str(state),
        "TSHOP_PG_PORT": str(free_port()),
        "TSHOP_CLICKHOUSE_PORT": str(free_port()),
    }
    yield env
    subprocess.run([str(REPO_ROOT / ".venvs/airflow/bin/tshop"), "services", "stop"], env=env, check=False)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def server(isolated_env):
    service = LocalPostgres(settings(isolated_env))
    service.start()
    yield service
    service.stop()


def test_start_gives_a_running_server_with_the_warehouse_database(server):
    assert server.status().state == "running"
    with psycopg.connect(server.config.pg_dsn()) as conn:
        assert conn.execute("select current_database(), current_setting('TimeZone')").fetchone() == (
            "tshop",
            "UTC",
        )


def test_starting_twice_is_harmless(server):
    pid = server.status().pid
    assert server.start().pid == pid
    assert server.status().state == "running"


def test_data_survives_stop_and_start(server):
    with psycopg.connect(server.config.pg_dsn()) as conn:
        conn.execute("create table kept (value int); insert into kept values (42)")
    assert server.stop().state == "stopped"
    server.start()
    with psycopg.connect(server.config.pg_dsn()) as conn:
        assert conn.execute("select value from kept").fetchone() == (42,)


def test_a_killed_server_is_detected_and_started_again_with_its_data(server):
    with psycopg.connect(server.config.pg_dsn()) as conn:
        conn.execute("create table kept (value int); insert into kept values (7)")
    pid = server.status().pid
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), timeout=10)
    assert server.status().state == "crashed"

    assert server.start().state == "running"
    assert server.status().pid != pid
    with psycopg.connect(server.config.pg_dsn()) as conn:
        assert conn.execute("select value from kept").fetchone() == (7,)


def test_a_busy_port_is_refused_with_a_message_naming_port_and_setting(isolated_env):
    service = LocalPostgres(settings(isolated_env))
    port = service.config.pg_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ServiceError) as refused:
            service.start()
    assert str(port) in str(refused.value)
    assert "TSHOP_PG_PORT" in str(refused.value)
    assert service.status().state == "stopped"


def test_an_external_dsn_starts_nothing(server, isolated_env):
    external = {
        **isolated_env,
        "TSHOP_PG_DSN": server.config.pg_dsn(),
        "TSHOP_STATE_DIR": isolated_env["TSHOP_STATE_DIR"] + "-ext",
    }
    service = LocalPostgres(settings(external))
    assert service.start().state == "external"
    assert not service.data_dir.exists()


def run_make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", target], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_make_services_twice_then_make_env_works_with_psql_and_psycopg(isolated_env):
    first = run_make("services", isolated_env)
    assert first.returncode == 0, first.stderr
    second = run_make("services", isolated_env)
    assert second.returncode == 0, second.stderr
    assert "postgresql  running" in second.stdout

    exported = run_make("env", isolated_env)
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.strip().splitlines()
    names = [line.split("=", 1)[0].removeprefix("export ") for line in lines]
    assert names[:2] == ["TSHOP_PG_DSN", "TSHOP_CLICKHOUSE_URL"]
    # the parts the dbt profiles read as plain env_var()s, each role's login among them
    for role in ("LOADER", "TRANSFORMER", "READER"):
        assert {f"TSHOP_PG_{role}_USER", f"TSHOP_PG_{role}_PASSWORD"} <= set(names)
    assert {"TSHOP_PG_HOST", "TSHOP_PG_PORT", "TSHOP_PG_DATABASE", "TSHOP_CLICKHOUSE_WRITER_PASSWORD"} <= set(
        names
    )

    # the printed lines are shell: eval them exactly as a user would, then use psql, as the superuser and as
    # the transformer dbt runs as, from the parts
    psql = subprocess.run(
        [
            "bash",
            "-c",
            f'eval "$1"; "{binary("psql")}" "$TSHOP_PG_DSN" -tAc "select 40 + 2" && '
            f'PGPASSWORD="$TSHOP_PG_TRANSFORMER_PASSWORD" "{binary("psql")}" -h "$TSHOP_PG_HOST" -p "$TSHOP_PG_PORT" '
            '-U "$TSHOP_PG_TRANSFORMER_USER" -d "$TSHOP_PG_DATABASE" -tAc "select current_user"',
            "_",
            exported.stdout,
        ],
        env=isolated_env,
        capture_output=True,
        text=True,
    )
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.split() == ["42", "tshop_transformer"]

    dsn = subprocess.run(
        ["bash", "-c", 'eval "$1"; printf %s "$TSHOP_PG_DSN"', "_", exported.stdout],
        capture_output=True,
        text=True,
    ).stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select current_database()").fetchone() == ("tshop",)

    stopped = run_make("stop", isolated_env)
    assert stopped.returncode == 0, stopped.stderr
    assert "postgresql  stopped" in stopped.stdout
