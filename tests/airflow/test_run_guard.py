"""The run guard on real processes, without Airflow: one run at a time per install, and nothing of a run
outlives it, not even a process that left its process group (as Cosmos starts dbt, in a session of its own).

A stand-in orchestrator runs a child under the guard; the child starts a grandchild in a new session, like
Cosmos' dbt, and both sleep until stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tshop.run_guard import RunBusyError, RunGuard
from tshop.services._process import pid_alive, wait_until

LOGICAL_DATE = "2024-03-09T02:00:00+00:00"

# argv: state dir, logical date, pid file, whether the child lingers
ORCHESTRATOR = """
import os, sys
from pathlib import Path
from tshop.run_guard import RunGuard, RunGuardError

CHILD = '''
import os, subprocess, sys, time
from pathlib import Path
grandchild = subprocess.Popen(["sleep", "600"], start_new_session=True, stdout=subprocess.DEVNULL)
Path(sys.argv[1]).write_text(f"{grandchild.pid} {os.getpid()}")
if sys.argv[2] == "linger":
    time.sleep(600)
'''
with RunGuard(Path(sys.argv[1]), sys.argv[2]) as guard:
    try:
        code = guard.run([sys.executable, "-c", CHILD, sys.argv[3], sys.argv[4]], env=dict(os.environ))
    except RunGuardError as error:
        print(f"stopped: {error}", flush=True)
        sys.exit(3)
print(f"ended: {code}", flush=True)
"""


def start_orchestrator(tmp_path: Path, linger: bool = True) -> tuple[subprocess.Popen, Path]:
    pids = tmp_path / "pids"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ORCHESTRATOR,
            str(tmp_path / "state"),
            LOGICAL_DATE,
            str(pids),
            "linger" if linger else "exit",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert wait_until(lambda: pids.exists() and pids.read_text().strip(), timeout=30), (
        "the child never started"
    )
    return process, pids


def run_pids(pids: Path) -> tuple[int, int]:
    grandchild, child = pids.read_text().split()
    return int(grandchild), int(child)


def gone(*pids: int) -> bool:
    return wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=30)


@pytest.fixture
def leftovers():
    """Kill whatever a failing test leaves running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_stopped_run_stops_every_process_it_started_even_outside_its_group(tmp_path, leftovers):
    orchestrator, pids = start_orchestrator(tmp_path)
    grandchild, child = run_pids(pids)
    leftovers += [grandchild, child, orchestrator.pid]
    assert os.getsid(grandchild) != os.getsid(child)  # out of reach of the child's process group

    orchestrator.send_signal(signal.SIGTERM)
    output, _ = orchestrator.communicate(timeout=60)

    assert orchestrator.returncode == 3, output
    assert "stopped: stopped by SIGTERM" in output
    assert gone(grandchild, child)
    with RunGuard(tmp_path / "state", LOGICAL_DATE):  # the lock is free again
        pass


def test_a_run_that_ends_leaves_nothing_behind(tmp_path, leftovers):
    orchestrator, pids = start_orchestrator(tmp_path, linger=False)
    grandchild, child = run_pids(pids)
    leftovers += [grandchild]
    output, _ = orchestrator.communicate(timeout=60)
    assert "ended: 0" in output
    assert gone(grandchild)


def test_a_second_run_refuses_while_one_is_active_naming_it(tmp_path, leftovers):
    orchestrator, pids = start_orchestrator(tmp_path)
    leftovers += [*run_pids(pids), orchestrator.pid]
    try:
        with (
            pytest.raises(RunBusyError) as refused,
            RunGuard(tmp_path / "state", "2024-03-10T02:00:00+00:00"),
        ):
            pass
        message = str(refused.value)
        assert LOGICAL_DATE in message and f"pid {orchestrator.pid}" in message and "since" in message
    finally:
        orchestrator.terminate()
        orchestrator.communicate(timeout=60)


def test_the_next_run_stops_what_a_killed_orchestrator_left(tmp_path, leftovers):
    orchestrator, pids = start_orchestrator(tmp_path)
    grandchild, child = run_pids(pids)
    leftovers += [grandchild, child]
    orchestrator.kill()  # kill -9: no chance to clean up
    orchestrator.wait(timeout=60)
    assert pid_alive(grandchild) and pid_alive(child)

    with RunGuard(tmp_path / "state", "2024-03-10T02:00:00+00:00") as guard:
        assert gone(grandchild, child)
        assert len(guard.notices) == 1
        assert f"left running by the run for {LOGICAL_DATE} (pid {orchestrator.pid}" in guard.notices[0]
