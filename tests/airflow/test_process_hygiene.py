"""A pipeline run leaves nothing behind: stopped (SIGTERM, Ctrl-C), it stops every process it started, dbt
included, before it exits; a second run of the same install refuses to start beside an active one; and the
processes of a run whose orchestrator was killed outright (kill -9) are stopped by the next run."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess

import pytest

from tshop.orchestration import logical_date_for

pytestmark = pytest.mark.slow

DAY = dt.date(2024, 3, 8)


def wait_until_dbt_writes(run) -> None:
    """Until the warehouse's `dbt build` is writing: it has started the DDS snapshots."""
    stage = run.wait_for_line("starting task_id=warehouse.dbt_producer_watcher")
    run.wait_for_line("START snapshot", after=stage)


def test_a_stopped_run_stops_all_it_started_and_a_second_run_refuses_meanwhile(new_warehouse, pipelines):
    config = new_warehouse("e2e_stopped_run")
    pipelines.generate_day(config, DAY)
    first = pipelines.start(config, DAY)
    try:
        wait_until_dbt_writes(first)

        second = subprocess.run(
            pipelines.pipeline_command(DAY + dt.timedelta(days=1)),
            env=pipelines.cli_env(config),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode != 0, second.stdout[-2000:]
        # it names the active run: its logical date, its pid, since when
        refusal = second.stderr
        assert "another pipeline run" in refusal, refusal
        assert (
            logical_date_for(DAY) in refusal and f"pid {first.process.pid}" in refusal and "since" in refusal
        )

        first.process.send_signal(signal.SIGTERM)
        code = first.wait(timeout=300)
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.wait()

    assert code != 0
    assert "SIGTERM" in first.tail(5), first.tail()
    # nothing of the run works on: no process, and no session in the warehouse once its queries are cancelled
    assert pipelines.processes_of(config) == {}
    pipelines.wait_for(
        "the warehouse's sessions to close", lambda: not pipelines.warehouse_sessions(config), 120
    )


def test_the_next_run_stops_what_a_killed_orchestrator_left_running(new_warehouse, pipelines):
    config = new_warehouse("e2e_killed_run")
    pipelines.generate_day(config, DAY)
    first = pipelines.start(config, DAY)
    try:
        wait_until_dbt_writes(first)
        os.kill(first.process.pid, signal.SIGKILL)  # nothing to clean up after itself
        first.process.wait()  # (its output stays open: the processes it left write to it)
        left = pipelines.processes_of(config)
        assert left, "the killed run's Airflow and dbt outlive it"

        second = pipelines.start(config, DAY)
        assert second.wait() == 0, second.tail()
    finally:
        for pid in pipelines.processes_of(config):  # whatever a failure left
            os.kill(pid, signal.SIGKILL)

    assert "left running by the run for " + logical_date_for(DAY) in second.output, second.output[:3000]
    assert pipelines.processes_of(config) == {}
    states = pipelines.task_states(logical_date_for(DAY))
    assert all(
        state == "success"
        for task, state in states.items()
        if task not in ("simulate_day", "fail_if_a_task_failed")
    ), states
    assert states["fail_if_a_task_failed"] == "skipped", "nothing failed"
