"""What a person watching a pipeline run sees: one line per task group as it ends, a live bar meanwhile.

Airflow's and dbt's own output goes to log files (the run prints their paths); this reads the run's task
instances from Airflow's metadata database every POLL_SECONDS, which works the same for `airflow dags test`
and for a run of the scheduler.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tshop.config import Settings
from tshop.orchestration.airflow_cli import DAG_ID, task_log_folder

POLL_SECONDS = 1.0
# a task in one of these states will not change again in this try of the run
ENDED = {"success", "failed", "skipped", "upstream_failed", "removed"}
MARKS = {"success": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]-[/]"}


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    state: str | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    try_number: int

    @property
    def group(self) -> str:
        """The task group a Cosmos node task belongs to (`warehouse.customer_snapshot.run`), or the task."""
        return self.task_id.split(".", 1)[0]


def read_tasks(conn: psycopg.Connection, run_id: str) -> list[TaskRow]:
    rows = conn.execute(
        """select task_id, state, start_date, end_date, try_number from task_instance
           where dag_id = %s and run_id = %s""",
        (DAG_ID, run_id),
    ).fetchall()
    return [TaskRow(*row) for row in rows]


def group_state(tasks: list[TaskRow]) -> str | None:
    """How a group ended (failed when any task failed or could not run), or None while it runs."""
    if not all(task.state in ENDED for task in tasks):
        return None
    if any(task.state in ("failed", "upstream_failed") for task in tasks):
        return "failed"
    if all(task.state == "success" for task in tasks):
        return "success"
    return "skipped"


class RunProgress:
    """Polls one run's task instances in a thread and prints each task group's line when it ends.

    `find_run` returns the run's id once Airflow has created it (None before): `airflow dags test` creates its
    run a few seconds after it starts.
    """

    def __init__(
        self, config: Settings, find_run: Callable[[psycopg.Connection], str | None], console: Console
    ):
        self.config = config
        self.find_run = find_run
        self.console = console
        self.run_id: str | None = None
        self._printed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="run-progress", daemon=True)
        self._progress = Progress(
            TextColumn("    {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._bar = self._progress.add_task("waiting for Airflow to start the run", total=None)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._progress.stop()

    def _watch(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                conn = conn or psycopg.connect(
                    self.config.pg_dsn_as("airflow", database=self.config.airflow_database),
                    autocommit=True,
                    connect_timeout=5,
                )
                self.poll(conn)
            except psycopg.Error:
                # Airflow's database may not exist yet, or PostgreSQL is down: the run's own verdict says so
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(POLL_SECONDS)
        if conn is not None:
            try:
                self.poll(conn)  # the groups that ended since the last look
            except psycopg.Error:
                pass
            conn.close()

    def poll(self, conn: psycopg.Connection) -> None:
        if self.run_id is None:
            self.run_id = self.find_run(conn)
            if self.run_id is None:
                return
        tasks = read_tasks(conn, self.run_id)
        groups: dict[str, list[TaskRow]] = {}
        for task in tasks:
            groups.setdefault(task.group, []).append(task)
        # groups in the order they started; the ones not started yet last
        never = dt.datetime.max.replace(tzinfo=dt.UTC)
        ordered = sorted(groups.items(), key=lambda item: min(t.start_date or never for t in item[1]))
        for name, members in ordered:
            state = group_state(members)
            if state is None or name in self._printed:
                continue
            if name == "fail_if_a_task_failed" and state == "skipped":
                self._printed.add(name)  # nothing failed: the guard's skip is no news
                continue
            self._printed.add(name)
            starts = [t.start_date for t in members if t.start_date]
            ends = [t.end_date for t in members if t.end_date]
            seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
            done = sum(t.state == "success" for t in members)
            count = f"{done}/{len(members)} tasks" if len(members) > 1 else state
            self.console.print(f"    {MARKS.get(state, '✗')} {name:<24} {count:<14} {seconds:6.1f} s")
        ended = sum(t.state in ENDED for t in tasks)
        running = sorted({t.group for t in tasks if t.state == "running"})
        self._progress.update(
            self._bar,
            total=len(tasks),
            completed=ended,
            description=", ".join(running) or "waiting for a task",
        )


def task_log_tail(
    config: Settings, run_id: str, task: TaskRow, lines: int = 15
) -> tuple[Path | None, list[str]]:
    """The last lines of a task's log of its latest try, and the file, as the scheduler wrote it (one JSON
    event per line in Airflow 3); (None, []) when there is no such file (a run of `airflow dags test`, whose
    task logs are in the run's own log)."""
    path = (
        task_log_folder(config)
        / f"dag_id={DAG_ID}"
        / f"run_id={run_id}"
        / f"task_id={task.task_id}"
        / f"attempt={max(task.try_number, 1)}.log"
    )
    if not path.exists():
        return None, []
    text = []
    for line in path.read_text(errors="replace").splitlines()[-lines * 4 :]:
        try:
            event = json.loads(line)
        except ValueError:
            text.append(line)
            continue
        message = str(event.get("event", ""))
        if event.get("error_detail"):
            message += f" {event['error_detail']}"[:400]
        text.append(message)
    return path, [line for line in text if line.strip()][-lines:]
