"""Pipeline runs: one cycle through Airflow, watched, judged by its tasks, and reported.

A run goes one of two ways, and ends the same way:
- through the scheduler, when it runs and the DAG is unpaused (what `make demo` leaves): the run is triggered
  (or a finished run of the same logical date cleared) and waited for, so it is an ordinary run in the UI and
  never overlaps a scheduled one (`max_active_runs=1`);
- otherwise in this process's children with `airflow dags test`, under `tshop.run_guard` (one run at a time,
  nothing outlives it). A scheduler would run the tasks of such a run too, if the DAG were unpaused: that is
  why the first way exists.

Either way the output is one line per task group (`tshop.orchestration.progress`), Airflow's and dbt's own in
log files whose paths are printed, and a run succeeds only when every one of its tasks succeeded: the task
instances are read from Airflow's records, a summary printed, and PipelineError raised naming every task that
did not; the failed tasks' log tails and the command to re-run are printed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import psycopg
from rich.console import Console

from tshop.alerts import notify_failed_run
from tshop.config import REPO_ROOT, Settings
from tshop.orchestration.airflow_cli import (
    AIRFLOW_BIN,
    DAG_ID,
    PipelineError,
    airflow,
    airflow_env,
    ensure_airflow,
)
from tshop.orchestration.manifests import compile_manifests
from tshop.orchestration.progress import RunProgress, TaskRow, read_tasks, task_log_tail
from tshop.run_guard import RunBusyError, RunGuard, RunGuardError

# a scheduler that has not beaten its heart for this long is not running (it beats every 5 s by default)
SCHEDULER_HEARTBEAT_LIMIT = dt.timedelta(seconds=30)
RUN_HOUR = 2  # the DAG's schedule: 02:00 UTC, for the business day that has just ended


def logical_date_for(business_day: dt.date) -> str:
    """The logical date of the run that processes `business_day`: 02:00 UTC the next morning."""
    return f"{business_day + dt.timedelta(days=1)}T{RUN_HOUR:02d}:00:00+00:00"


def latest_logical_date(now: dt.datetime | None = None) -> str:
    """The logical date of the latest scheduled run due by `now`: today's 02:00 UTC, yesterday's before it."""
    now = now or dt.datetime.now(dt.UTC)
    day = now.date() if now.hour >= RUN_HOUR else now.date() - dt.timedelta(days=1)
    return logical_date_for(day - dt.timedelta(days=1))


def business_day_of(logical_date: str) -> dt.date:
    """The business day a run processes: the day before its logical date (UTC)."""
    moment = dt.datetime.fromisoformat(logical_date)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date() - dt.timedelta(days=1)


def refuse_unfinished_day(logical_date: str) -> None:
    day = business_day_of(logical_date)
    today = dt.datetime.now(dt.UTC).date()
    if day >= today:
        raise PipelineError(
            f"business day {day} has not ended yet (it is {today} UTC): a run processes a day after it ends, "
            f"so the latest day to run is {today - dt.timedelta(days=1)} (`tshop pipeline --date "
            f"{today - dt.timedelta(days=1)}`); nothing was run."
        )


def rerun_command(logical_date: str, generated: bool) -> str:
    """The command that runs the same business day again, generating as the run did."""
    tshop = AIRFLOW_BIN / "tshop"
    return f"{tshop.relative_to(REPO_ROOT)} pipeline --date {business_day_of(logical_date)}" + (
        " --generate" if generated else ""
    )


def run_pipeline(
    config: Settings,
    logical_date: str | None = None,
    generate: bool = False,
    params: dict | None = None,
    timeout: float | None = None,
    verbose: bool = False,
    console: Console | None = None,
) -> RunOutcome:
    """One pipeline cycle through Airflow with the DAG's `generate` and any other `params`; prints one line
    per task group and a summary, returns the outcome, or raises PipelineError naming every task that did
    not succeed (after printing their log tails and the command to re-run). `verbose` shows Airflow's and
    dbt's output as it comes instead of writing it to the run's log file.

    The default logical date is the latest scheduled one (today's 02:00 UTC); a business day that has not
    ended is refused.
    """
    console = console or Console(highlight=False, soft_wrap=True)
    logical_date = logical_date or latest_logical_date()
    refuse_unfinished_day(logical_date)
    conf = {**(params or {}), "generate": generate}
    compile_manifests(config)
    ensure_airflow(config)
    if scheduler_runs_dag(config):
        outcome = _run_through_scheduler(config, logical_date, conf, timeout, console)
    else:
        outcome = _run_in_process(config, logical_date, conf, timeout, verbose, console)
    console.print(str(outcome), markup=False)
    if not outcome.succeeded:
        fail_run(config, outcome, console)
    return outcome


def scheduler_runs_dag(config: Settings) -> bool:
    """Whether a live scheduler runs the DAG: it beat its heart lately and the DAG is unpaused."""
    try:
        with psycopg.connect(
            config.pg_dsn_as("airflow", database=config.airflow_database), connect_timeout=10
        ) as conn:
            alive = conn.execute(
                """select exists (select from job where job_type = 'SchedulerJob' and state = 'running'
                                  and latest_heartbeat > now() - %s)""",
                (SCHEDULER_HEARTBEAT_LIMIT,),
            ).fetchone()[0]
            unpaused = conn.execute(
                "select exists (select from dag where dag_id = %s and not is_paused)", (DAG_ID,)
            ).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return False
    except psycopg.OperationalError:
        return False  # the in-process run reports PostgreSQL being down, by name
    return alive and unpaused


def run_log_file(config: Settings, logical_date: str) -> Path:
    """Where a run's Airflow and dbt output goes: one file per run started, under the state folder."""
    folder = config.state_dir / "logs" / "pipeline"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return folder / f"{business_day_of(logical_date)}-{stamp}.log"


def _run_in_process(
    config: Settings, logical_date: str, conf: dict, timeout: float | None, verbose: bool, console: Console
) -> RunOutcome:
    generate = bool(conf.get("generate"))
    started: dt.datetime | None = None
    log_file = None if verbose else run_log_file(config, logical_date)
    if log_file:
        console.print(f"    Airflow and dbt output: {log_file}", markup=False)
    try:
        with RunGuard(config.state_dir, logical_date) as guard:
            for notice in guard.notices:
                console.print(f"note: {notice}", markup=False)
            started = dt.datetime.now(dt.UTC)
            since = started
            command = [
                str(AIRFLOW_BIN / "airflow"),
                "dags",
                "test",
                DAG_ID,
                logical_date,
                "--conf",
                json.dumps(conf),
            ]
            with RunProgress(config, lambda conn: _run_made_since(conn, logical_date, since), console):
                if log_file is None:
                    exit_code = guard.run(command, env=airflow_env(config), timeout=timeout)
                else:
                    with open(log_file, "ab") as output:
                        exit_code = guard.run(
                            command, env=airflow_env(config), timeout=timeout, output=output
                        )
    except RunBusyError as error:
        raise PipelineError(str(error)) from None
    except RunGuardError as error:
        # stopped (a signal, the timeout): what it had done, and Airflow's record of it closed as failed
        if started is not None:
            _print_stopped_run(config, logical_date, started, generate, console)
        raise PipelineError(f"the pipeline run for {logical_date}: {error}") from None
    outcome = settle_run(config, logical_date, started, generated=generate, exit_code=exit_code)
    return outcome if log_file is None else outcome.with_log(log_file)


def _run_made_since(conn: psycopg.Connection, logical_date: str, since: dt.datetime) -> str | None:
    row = conn.execute(
        """select run_id from dag_run
           where dag_id = %s and logical_date = %s::timestamptz and run_after >= %s""",
        (DAG_ID, logical_date, since),
    ).fetchone()
    return row[0] if row else None


def _print_stopped_run(
    config: Settings, logical_date: str, started: dt.datetime, generate: bool, console: Console
) -> None:
    try:
        outcome = settle_run(config, logical_date, started, generated=generate, exit_code=None)
    except PipelineError:
        return  # its records are out of reach (PostgreSQL down): the error says enough
    if outcome.run_id:
        console.print(str(outcome), markup=False)


# how long to wait for the scheduler to take up a run it was given
QUEUED_PATIENCE = dt.timedelta(minutes=10)


def _run_through_scheduler(
    config: Settings, logical_date: str, conf: dict, timeout: float | None, console: Console
) -> RunOutcome:
    """Have the scheduler run `logical_date` (a new run, a finished one cleared, or the active one waited
    for) and wait for it to end."""
    run_id = start_scheduled_run(config, logical_date, conf, console)
    console.print(
        f"    the scheduler runs it: http://127.0.0.1:{config.airflow_port}/dags/{DAG_ID}/runs/{run_id} "
        f"(task logs under {config.airflow_home / 'logs'})",
        markup=False,
    )
    return wait_for_run(config, run_id, logical_date, bool(conf.get("generate")), timeout, console)


def run_scheduled(
    config: Settings, logical_date: str, console: Console, timeout: float | None = None
) -> RunOutcome:
    """The scheduler's own run of `logical_date`, which it makes when the DAG is unpaused (`make demo`'s first
    run): waited for when it runs, reported when it has succeeded already, re-run when it failed, and
    triggered with the DAG's defaults if the scheduler has not made it within a minute. Raises PipelineError
    like `run_pipeline` when it did not succeed."""
    refuse_unfinished_day(logical_date)
    deadline = time.monotonic() + 60
    with psycopg.connect(
        config.pg_dsn_as("airflow", database=config.airflow_database), autocommit=True
    ) as conn:
        while (
            row := conn.execute(
                "select run_id, state from dag_run where dag_id = %s and logical_date = %s::timestamptz",
                (DAG_ID, logical_date),
            ).fetchone()
        ) is None and time.monotonic() < deadline:
            time.sleep(1)
    if row is not None and row[1] == "success":
        console.print(f"    the run {row[0]} succeeded already", markup=False)
        outcome = settle_run(
            config, logical_date, None, generated=config.pipeline_generates, exit_code=0, run_id=row[0]
        )
    else:
        conf = {"generate": config.pipeline_generates}
        outcome = _run_through_scheduler(config, logical_date, conf, timeout, console)
    console.print(str(outcome), markup=False)
    if not outcome.succeeded:
        fail_run(config, outcome, console)
    return outcome


def start_scheduled_run(config: Settings, logical_date: str, conf: dict, console: Console) -> str:
    """The id of the run of `logical_date` the scheduler will run with `conf`: the one still active, or a new
    one, triggered after deleting an ended one of the same logical date, as `airflow dags test` does (a
    cleared run would keep its old conf, and its watcher producers would skip themselves on their second
    try, leaving each node to build alone)."""
    with psycopg.connect(
        config.pg_dsn_as("airflow", database=config.airflow_database), autocommit=True
    ) as conn:
        row = conn.execute(
            "select run_id, state from dag_run where dag_id = %s and logical_date = %s::timestamptz",
            (DAG_ID, logical_date),
        ).fetchone()
        if row is not None and row[1] in ("queued", "running"):
            console.print(f"    the run {row[0]} is under way; waiting for it to end", markup=False)
            return row[0]
        if row is not None:
            # its task instances and their records go with it (foreign keys on delete cascade)
            conn.execute("delete from dag_run where dag_id = %s and run_id = %s", (DAG_ID, row[0]))
        airflow(config, "dags", "trigger", DAG_ID, "--logical-date", logical_date, "--conf", json.dumps(conf),
                capture=True)  # fmt: skip
        return conn.execute(
            "select run_id from dag_run where dag_id = %s and logical_date = %s::timestamptz",
            (DAG_ID, logical_date),
        ).fetchone()[0]


def wait_for_run(
    config: Settings,
    run_id: str,
    logical_date: str,
    generated: bool,
    timeout: float | None,
    console: Console,
) -> RunOutcome:
    """Wait for the scheduler's run `run_id` to end, showing its progress, and judge it."""
    deadline = time.monotonic() + timeout if timeout else None
    queued_since = time.monotonic()
    with (
        psycopg.connect(
            config.pg_dsn_as("airflow", database=config.airflow_database), autocommit=True
        ) as conn,
        RunProgress(config, lambda _conn: run_id, console),
    ):
        while True:
            state = conn.execute(
                "select state from dag_run where dag_id = %s and run_id = %s", (DAG_ID, run_id)
            ).fetchone()[0]
            if state in ("success", "failed"):
                break
            if state != "queued":
                queued_since = time.monotonic()
            elif time.monotonic() - queued_since > QUEUED_PATIENCE.total_seconds():
                raise PipelineError(
                    f"the scheduler has not started run {run_id} in {QUEUED_PATIENCE}: is it running "
                    "(`tshop webapps status`) and the DAG unpaused?"
                )
            if deadline and time.monotonic() > deadline:
                raise PipelineError(
                    f"the run {run_id} did not end within {timeout:.0f} s; it goes on in Airflow"
                )
            time.sleep(1)
    return settle_run(config, logical_date, None, generated=generated, exit_code=0, run_id=run_id)


def fail_run(config: Settings, outcome: RunOutcome, console: Console) -> NoReturn:
    """Report a run that did not succeed: log tails and the re-run command here, an alert (once per run,
    whether or not the DAG's own failure callback sent it already), and PipelineError."""
    report_failure(config, outcome, console)
    notify_failed_run(
        config,
        dag_id=DAG_ID,
        run_id=outcome.run_id
        or f"unrecorded__{outcome.logical_date}__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
        logical_date=outcome.logical_date,
        failed_tasks=[task for task, word in outcome.unsuccessful.items() if word == STATE_WORDS["failed"]]
        or list(outcome.unsuccessful),
        log_tail=outcome.reasons().replace("; ", "\n"),
        log_path=str(outcome.log_file) if outcome.log_file else None,
        rerun_command=rerun_command(outcome.logical_date, outcome.generated),
    )
    raise PipelineError(f"the pipeline run for {outcome.logical_date} failed: {outcome.reasons()}")


def report_failure(config: Settings, outcome: RunOutcome, console: Console) -> None:
    """The failed tasks' log tails, where the whole logs are, and the command to re-run."""
    failed = [task for task in outcome.task_rows if task.state == "failed"]
    for task in failed:
        path, tail = task_log_tail(config, outcome.run_id or "", task)
        console.print(
            f"\n--- {task.task_id} failed; its log{f' ({path})' if path else ''} ends:", markup=False
        )
        for line in tail or _run_log_tail(outcome.log_file):
            console.print(f"  {line}", markup=False)
    if not failed and outcome.log_file:
        console.print(f"\n--- the run's log ({outcome.log_file}) ends:", markup=False)
        for line in _run_log_tail(outcome.log_file):
            console.print(f"  {line}", markup=False)
    if outcome.log_file:
        console.print(f"whole output: {outcome.log_file}", markup=False)
    console.print(
        f"re-run: {rerun_command(outcome.logical_date, outcome.generated)}   (or clear the run in the Airflow UI: "
        f"http://127.0.0.1:{config.airflow_port}/dags/{DAG_ID})",
        markup=False,
    )


def _run_log_tail(log_file: Path | None, lines: int = 15) -> list[str]:
    """What the run's own log says went wrong: its first error lines (with the lines that continue them; the
    first error is the cause, the later ones its consequences) when it has any, else its last lines; each
    cut to a readable width."""
    if log_file is None or not log_file.exists():
        return []
    with open(log_file, "rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - 2_000_000))
        text = file.read().decode(errors="replace").splitlines()
    errors: list[str] = []
    for index, line in enumerate(text):
        if "[error" in line:
            errors.append(line)
            errors += [more for more in text[index + 1 : index + 4] if more.startswith((" ", "\t"))]
    picked = errors[:lines] or [line for line in text if line.strip()][-lines:]
    return [line if len(line) <= 300 else line[:297] + "..." for line in picked]


# the one task allowed to be skipped, and when: the business day is simulated only with `generate`
GENERATOR_TASK = "simulate_day"
# the DAG's last task, which runs (and fails) only when another task failed: skipped is its success
FAILURE_GUARD_TASK = "fail_if_a_task_failed"
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
        if task == FAILURE_GUARD_TASK and state == "skipped":
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
    exit_code: int | None  # of `airflow dags test` (0 for a run of the scheduler); None when it was stopped
    task_rows: tuple[TaskRow, ...] = ()  # the task instances the verdict read, for the failure report
    log_file: Path | None = None  # where Airflow's and dbt's output went (`airflow dags test`)
    unsuccessful: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unsuccessful", unsuccessful_tasks(self.tasks, self.generated))

    def with_log(self, log_file: Path) -> RunOutcome:
        return replace(self, log_file=log_file)

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
            parts.append("Airflow recorded no task of this run; see the Airflow output")
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
    config: Settings,
    logical_date: str,
    started: dt.datetime | None,
    generated: bool,
    exit_code: int | None,
    run_id: str | None = None,
) -> RunOutcome:
    """Judge a run by its task instances, and make Airflow's record of it agree: a run that did not succeed
    is `failed` there too. The run is `run_id`, or the one `airflow dags test` made at `logical_date` since
    `started` (it replaces an earlier run of the same logical date: only a run it made now counts)."""
    try:
        conn = psycopg.connect(
            config.pg_dsn_as("airflow", database=config.airflow_database), connect_timeout=10
        )
    except psycopg.OperationalError as error:
        address = urlsplit(config.pg_dsn()).netloc.rpartition("@")[2]
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(
            f"the pipeline run for {logical_date} failed: PostgreSQL at {address} is not reachable "
            f"({first_line}); it holds the warehouse and Airflow's records. Start it (`make services`) and "
            "run the same date again."
        ) from None
    with conn:
        if run_id is not None:
            run = conn.execute(
                "select id, run_id, state from dag_run where dag_id = %s and run_id = %s", (DAG_ID, run_id)
            ).fetchone()
        else:
            run = conn.execute(
                """select id, run_id, state from dag_run
                   where dag_id = %s and logical_date = %s::timestamptz and run_after >= %s""",
                (DAG_ID, logical_date, started),
            ).fetchone()
        if run is None:
            return RunOutcome(logical_date, None, None, {}, generated, exit_code)
        run_pk, run_id, airflow_state = run
        rows = read_tasks(conn, run_id)
        tasks = {row.task_id: row.state for row in rows}
        outcome = RunOutcome(logical_date, run_id, airflow_state, tasks, generated, exit_code, tuple(rows))
        if not outcome.succeeded and airflow_state != "failed":
            # Airflow has no command to set a run's state, and its API server may not run: this is the
            # column the UI's "mark failed" sets. The run's record must not say success (or running, for a
            # run that was stopped) when the pipeline failed.
            conn.execute(
                "update dag_run set state = 'failed', end_date = coalesce(end_date, now()) where id = %s",
                (run_pk,),
            )
    return outcome
