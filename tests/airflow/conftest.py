"""Fixtures of the pipeline tests: empty warehouses to run the DAG into, and Airflow's records of a run."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
from psycopg import sql

from tshop import clients
from tshop.config import REPO_ROOT, Settings, settings
from tshop.orchestration import DAG_ID
from tshop.services.clickhouse import LocalClickHouse
from tshop.services.postgres import LocalPostgres

SHOP = {"customers": 2000, "seed": 5}
TSHOP = str(REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop")
DATAGEN = str(REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop-datagen")


@pytest.fixture
def new_warehouse(test_settings: Settings, pg_dsn: str, clickhouse_url: str):
    """A factory of empty warehouse databases (an empty ClickHouse `cdm` and `events` with each, and a landing
    folder of its own: the runs' generator writes its web events there), run with no retries unless told
    otherwise."""
    made: list[str] = []

    def drop_clickhouse_mart() -> None:
        ch = clients.clickhouse(test_settings)
        try:
            ch.command("drop database if exists cdm")
            ch.command("drop database if exists events")
        finally:
            ch.close()

    def make(name: str, retries: int = 0) -> Settings:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        made.append(name)
        drop_clickhouse_mart()
        landing = test_settings.state_dir / f"landing-{name}"
        shutil.rmtree(landing, ignore_errors=True)
        return settings(
            {
                **test_settings.env,
                "TSHOP_PG_DSN": test_settings.pg_dsn(database=name),
                "TSHOP_RETRIES": str(retries),
                "TSHOP_LANDING_URL": landing.as_uri(),
            }
        )

    yield make
    # a test may have left a server stopped or killed: the next test needs it
    LocalPostgres(test_settings).start()
    LocalClickHouse(test_settings).start()
    drop_clickhouse_mart()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


class Run:
    """`tshop pipeline` in the background, its output collected as it comes (Airflow writes a lot)."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait(self, timeout: float = 900) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=60)
        return code

    def wait_for_line(self, *texts: str, after: int = 0, timeout: float = 900) -> int:
        """Wait until a line holding every one of `texts` is printed after line `after`; its index."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(after, len(self.lines)):
                if all(text in self.lines[index] for text in texts):
                    return index
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the run never printed {texts!r}:\n{self.tail()}")
            time.sleep(0.1)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, lines: int = 40) -> str:
        return "".join(self.lines[-lines:])


@dataclass(frozen=True)
class Pipelines:
    """Runs the pipeline as a user does and reads Airflow's records of its runs (one Airflow database
    serves every warehouse of the test server)."""

    config: Settings

    @staticmethod
    def generate_day(config: Settings, day: dt.date) -> None:
        """Simulate one business day into RAW, as `make generate` does."""
        subprocess.run(
            [DATAGEN, "generate", "--customers", str(SHOP["customers"]), "--seed", str(SHOP["seed"]),
             "--days", "1", "--start-date", day.isoformat(), "--skip-loaded"],
            env=config.client_env(),
            check=True,
            capture_output=True,
        )  # fmt: skip

    @staticmethod
    def pipeline_command(day: dt.date) -> list[str]:
        """`tshop pipeline` for one business day, what `make pipeline` runs, showing Airflow's and dbt's
        output (the tests wait for their lines)."""
        return [TSHOP, "pipeline", "--date", day.isoformat(), "--verbose"]

    @staticmethod
    def cli_env(config: Settings) -> dict[str, str]:
        return {**os.environ, **config.env}

    def start(self, config: Settings, day: dt.date) -> Run:
        """`tshop pipeline --date day` in the background."""
        return Run(self.pipeline_command(day), self.cli_env(config))

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 900) -> None:
        """Poll `condition` until it holds; Airflow's database may not exist yet when a run starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
                pass  # the database or its tables are being made
            time.sleep(0.3)
        raise AssertionError(f"{what} did not happen within {timeout:.0f} s")

    @staticmethod
    def processes_of(config: Settings) -> dict[int, str]:
        """The live processes working for `config`'s warehouse: every process of a pipeline run (Airflow, its
        tasks, dbt) inherits the warehouse's address, TSHOP_PG_DSN, in its environment."""
        found = {}
        for process in psutil.process_iter():
            try:
                if process.status() != psutil.STATUS_ZOMBIE and process.environ().get("TSHOP_PG_DSN") == (
                    config.pg_dsn()
                ):
                    found[process.pid] = " ".join(process.cmdline())[:160]
            except psutil.Error:
                continue
        return found

    def warehouse_sessions(self, config: Settings) -> list[tuple]:
        """The sessions open on `config`'s warehouse database, as PostgreSQL sees them."""
        database = urlsplit(config.pg_dsn()).path.lstrip("/")
        with psycopg.connect(self.config.pg_dsn(), autocommit=True) as conn:
            return conn.execute(
                "select pid, application_name, state, left(query, 80) from pg_stat_activity where datname = %s",
                (database,),
            ).fetchall()

    def airflow_db(self) -> psycopg.Connection:
        return psycopg.connect(self.config.pg_dsn(database=self.config.airflow_database), autocommit=True)

    def dag_run_state(self, logical_date: str) -> str | None:
        """Airflow's own verdict on the run at `logical_date`."""
        with self.airflow_db() as conn:
            row = conn.execute(
                "select state from dag_run where dag_id = %s and logical_date = %s::timestamptz",
                (DAG_ID, logical_date),
            ).fetchone()
        return row[0] if row else None

    def task_states(self, logical_date: str) -> dict[str, str | None]:
        """Each task of the run at `logical_date` and its state, from Airflow's records."""
        with self.airflow_db() as conn:
            rows = conn.execute(
                """select ti.task_id, ti.state from task_instance as ti
                   join dag_run as run on run.dag_id = ti.dag_id and run.run_id = ti.run_id
                   where ti.dag_id = %s and run.logical_date = %s::timestamptz""",
                (DAG_ID, logical_date),
            ).fetchall()
        return dict(rows)

    def producer_started_node(self, logical_date: str, group: str, node: str) -> bool:
        """Whether the watcher producer of `group` has reported that dbt started `node` (model name).

        Cosmos' producer publishes each node's dbt events as XComs as they happen (the NodeStart event is dbt's
        `START sql ... model` line), so this is the moment dbt starts the node, seen from outside.
        """
        with self.airflow_db() as conn:
            row = conn.execute(
                r"""select 1 from xcom
                    join dag_run as run on run.id = xcom.dag_run_id
                    where run.dag_id = %s and run.logical_date = %s::timestamptz
                      and xcom.task_id = %s and xcom.key like %s""",
                (
                    DAG_ID,
                    logical_date,
                    f"{group}.dbt_producer_watcher",
                    f"model\\_\\_%\\_\\_{node}\\_dbt\\_event",
                ),
            ).fetchone()
        return row is not None

    def running_tasks(self, logical_date: str, prefix: str) -> list[str]:
        with self.airflow_db() as conn:
            rows = conn.execute(
                """select ti.task_id from task_instance as ti
                   join dag_run as run on run.dag_id = ti.dag_id and run.run_id = ti.run_id
                   where ti.dag_id = %s and run.logical_date = %s::timestamptz
                     and ti.task_id like %s and ti.state = 'running'""",
                (DAG_ID, logical_date, prefix + "%"),
            ).fetchall()
        return [task for (task,) in rows]


@pytest.fixture
def pipelines(test_settings: Settings, pg_dsn: str) -> Pipelines:
    return Pipelines(test_settings)
