"""Airflow on the local machine: its home and metadata database, the pipeline run, the web app.

Airflow's metadata lives in its own database on the warehouse's PostgreSQL server; the executor is the
LocalExecutor. Everything Airflow needs is passed as AIRFLOW__* environment variables, so there is no
airflow.cfg to keep in step: `airflow_env()` is the single place that configures it. Every socket Airflow
listens on is on 127.0.0.1, on a port of T-Shop's configuration.

A pipeline run succeeds only when every one of its tasks succeeded: `run_pipeline` reads the task instances
of the run from Airflow's records after `airflow dags test` returns, whatever its exit code, prints a summary,
and raises PipelineError naming every task that did not succeed.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg

from tshop.config import REPO_ROOT, Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT, run_dbt
from tshop.run_guard import RunBusyError, RunGuard, RunGuardError
from tshop.services.background import BackgroundProcess
from tshop.services.postgres import create_database_if_missing

DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
DAG_ID = "tshop"
AIRFLOW_BIN = Path(REPO_ROOT / ".venvs" / "airflow" / "bin")


class PipelineError(RuntimeError):
    """The pipeline run failed; the message names the tasks that did not succeed."""


def loopback_hostname() -> str:
    """The host name Airflow records for this machine's task runs (`[core] hostname_callable`).

    The API server fetches a running task's log from the log server at this name, and the log server listens
    on 127.0.0.1 only; the machine's own name may resolve elsewhere (127.0.1.1 on Debian).
    """
    return "127.0.0.1"


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
        # the API server signs its requests to the log server with this; unset, each process made up its own
        "AIRFLOW__API__SECRET_KEY": config.secret("TSHOP_AIRFLOW_API_SECRET_KEY"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.loopback_hostname",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
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
) -> RunOutcome:
    """One pipeline cycle through Airflow (`airflow dags test`), with the DAG's `generate` and any other
    `params`; prints a summary of the run and returns it, or raises PipelineError naming every task that did
    not succeed.

    One run at a time per install, and nothing of it outlives it: see `tshop.run_guard`. A second run refuses
    to start while one is active; the processes of a run whose orchestrator was killed are stopped first.
    """
    logical_date = logical_date or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    started: dt.datetime | None = None
    try:
        with RunGuard(config.state_dir, logical_date) as guard:
            for notice in guard.notices:
                print(f"note: {notice}", flush=True)
            compile_manifests(config)
            ensure_airflow(config)
            started = dt.datetime.now(dt.UTC)
            exit_code = guard.run(
                [str(AIRFLOW_BIN / "airflow"), "dags", "test", DAG_ID, logical_date,
                 "--conf", json.dumps({**(params or {}), "generate": generate})],
                env=airflow_env(config),
                timeout=timeout,
            )  # fmt: skip
    except RunBusyError as error:
        raise PipelineError(str(error)) from None
    except RunGuardError as error:
        # stopped (a signal, the timeout): what it had done, and Airflow's record of it closed as failed
        if started is not None:
            _print_stopped_run(config, logical_date, started, generate)
        raise PipelineError(f"the pipeline run for {logical_date}: {error}") from None
    outcome = settle_run(config, logical_date, started, generated=generate, exit_code=exit_code)
    print(outcome, flush=True)
    if not outcome.succeeded:
        raise PipelineError(f"the pipeline run for {logical_date} failed: {outcome.reasons()}")
    return outcome


def _print_stopped_run(config: Settings, logical_date: str, started: dt.datetime, generate: bool) -> None:
    try:
        outcome = settle_run(config, logical_date, started, generated=generate, exit_code=None)
    except PipelineError:
        return  # its records are out of reach (PostgreSQL down): the error says enough
    if outcome.run_id:
        print(outcome, flush=True)


# the one task allowed to be skipped, and when: the business day is simulated only with `generate`
GENERATOR_TASK = "simulate_day"
# how the summary words each state a task can be left in
STATE_WORDS = {
    "failed": "failed",
    "up_for_retry": "left retrying",
    "upstream_failed": "did not run (a task before it failed)",
    "skipped": "skipped",
    None: "never ran",
}


def unsuccessful_tasks(states: Mapping[str, str | None], generated: bool) -> dict[str, str]:
    """The tasks that keep a run from succeeding, each with how the summary words its state.

    Every task must have succeeded. The only task that may be skipped is the generator's, and only when the
    run was not asked to generate; a task left retrying, never run, or in any state short of success counts.
    """
    found = {}
    for task, state in sorted(states.items()):
        if state == "success" or (task == GENERATOR_TASK and state == "skipped" and not generated):
            continue
        found[task] = STATE_WORDS.get(state, f"left {state}")
    return found


@dataclass(frozen=True)
class RunOutcome:
    """A pipeline run as Airflow recorded it, judged by the rule: every task succeeded."""

    logical_date: str
    run_id: str | None
    airflow_state: str | None  # as `airflow dags test` left it
    tasks: dict[str, str | None]
    generated: bool
    exit_code: int | None  # of `airflow dags test`; None when it was stopped
    unsuccessful: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unsuccessful", unsuccessful_tasks(self.tasks, self.generated))

    @property
    def succeeded(self) -> bool:
        return (
            bool(self.tasks)
            and not self.unsuccessful
            and self.airflow_state == "success"
            and self.exit_code == 0
        )

    def groups(self) -> list[tuple[str, list[str]]]:
        """The unsuccessful tasks by what became of them, the worst first."""
        groups: dict[str, list[str]] = {}
        for task, word in self.unsuccessful.items():
            groups.setdefault(word, []).append(task)
        order = list(STATE_WORDS.values())
        return sorted(
            groups.items(), key=lambda group: order.index(group[0]) if group[0] in order else len(order)
        )

    def reasons(self) -> str:
        """Why the run did not succeed, naming every task that did not."""
        parts = [f"{word}: {', '.join(tasks)}" for word, tasks in self.groups()]
        if self.exit_code is None:
            parts.append("the run was stopped before it ended")
        elif self.exit_code != 0:
            parts.append(f"`airflow dags test` exited {self.exit_code}")
        if not self.tasks:
            parts.append("Airflow recorded no task of this run; see the Airflow output above")
        if not parts:
            parts.append(f"Airflow recorded the run as {self.airflow_state}")
        return "; ".join(parts)

    def __str__(self) -> str:
        """The summary printed after each run: its verdict, the tasks counted, the others by name."""
        succeeded = sum(state == "success" for state in self.tasks.values())
        head = f"pipeline run {self.run_id or '(none)'} for {self.logical_date}"
        if self.succeeded:
            generator = self.tasks.get(GENERATOR_TASK) == "skipped"
            return f"{head}: success ({succeeded} tasks succeeded{', no generation' if generator else ''})"
        counts = [f"{succeeded} tasks succeeded"]
        counts += [f"{len(tasks)} {word.split(' (')[0]}" for word, tasks in self.groups()]
        return "\n  ".join([f"{head}: failed ({', '.join(counts)})", *self.reasons().split("; ")])


def settle_run(
    config: Settings, logical_date: str, started: dt.datetime, generated: bool, exit_code: int | None
) -> RunOutcome:
    """Judge the run `airflow dags test` made at `logical_date` (since `started`) by its task instances, and
    make Airflow's record of it agree: a run that did not succeed is `failed` there too."""
    try:
        conn = psycopg.connect(config.pg_dsn(database=config.airflow_database), connect_timeout=10)
    except psycopg.OperationalError as error:
        address = urlsplit(config.pg_dsn()).netloc.rpartition("@")[2]
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(
            f"the pipeline run for {logical_date} failed: PostgreSQL at {address} is not reachable "
            f"({first_line}); it holds the warehouse and Airflow's records. Start it (`make services`) and "
            "run the same date again."
        ) from None
    with conn:
        # dags test replaces an earlier run of the same logical date: only a run it made now counts
        run = conn.execute(
            """select id, run_id, state from dag_run
               where dag_id = %s and logical_date = %s::timestamptz and run_after >= %s""",
            (DAG_ID, logical_date, started),
        ).fetchone()
        if run is None:
            return RunOutcome(logical_date, None, None, {}, generated, exit_code)
        run_pk, run_id, airflow_state = run
        tasks = dict(
            conn.execute(
                "select task_id, state from task_instance where dag_id = %s and run_id = %s",
                (DAG_ID, run_id),
            ).fetchall()
        )
        outcome = RunOutcome(logical_date, run_id, airflow_state, tasks, generated, exit_code)
        if not outcome.succeeded and airflow_state != "failed":
            # Airflow has no command to set a run's state, and its API server may not run: this is the
            # column the UI's "mark failed" sets. The run's record must not say success (or running, for a
            # run that was stopped) when the pipeline failed.
            conn.execute(
                "update dag_run set state = 'failed', end_date = coalesce(end_date, now()) where id = %s",
                (run_pk,),
            )
    return outcome


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
