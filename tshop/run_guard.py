"""One pipeline run at a time per install, and no process of a run outliving it.

A pipeline run is a tree of processes: `airflow dags test`, the task processes it starts, and the dbt builds
Cosmos starts in sessions of their own (so a signal to Airflow's process group never reaches them). Left
behind, a dbt build keeps writing to the warehouse, and a second run beside it breaks the watermarks (two
runs read the same increment: duplicate versions). So:

- a run holds an exclusive `flock` on `<state>/pipeline.lock` while it lives; a second run finds it taken
  and refuses, naming the run that holds it (logical date, pid, since when) from `<state>/pipeline-run.json`.
  The kernel drops the lock when its holder dies in any way, `kill -9` included;
- every process of a run carries the run's token in its environment (TSHOP_PIPELINE_RUN), inherited by
  whatever it starts, and Airflow runs in a process group of its own. Stopping a run signals that group and
  every process carrying the token (SIGINT first, which dbt answers by cancelling its queries in the
  warehouse, then SIGTERM, then SIGKILL), and waits until they are gone;
- the record stays when the orchestrator is killed before it could clean up, so the next run finds the
  processes the killed run left and stops them before it starts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

import psutil

from tshop.errors import TShopError

RUN_TOKEN = "TSHOP_PIPELINE_RUN"
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# SIGINT lets dbt cancel its queries; Airflow and dbt take a few seconds to wind down
STOP_SEQUENCE = ((signal.SIGINT, 10.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0))


class RunGuardError(TShopError):
    """The run cannot start, or was stopped; the message says why."""


class RunBusyError(RunGuardError):
    """Another pipeline run of this install is active."""


class RunInterrupted(RunGuardError):
    """The orchestrator was asked to stop (SIGINT, SIGTERM, SIGHUP); the run's processes were stopped."""


@dataclass(frozen=True)
class RunRecord:
    """What `<state>/pipeline-run.json` keeps about the active run."""

    token: str
    pid: int
    logical_date: str
    started_at: float  # seconds since the epoch
    pgid: int | None = None

    @property
    def since(self) -> str:
        return dt.datetime.fromtimestamp(self.started_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def describe(self) -> str:
        return f"the run for {self.logical_date} (pid {self.pid}, since {self.since})"


class RunGuard:
    """Context manager around one pipeline run: the lock, the record, the signal handlers, the cleanup."""

    def __init__(self, state_dir: Path, logical_date: str):
        self.state_dir = state_dir
        self.lock_file = state_dir / "pipeline.lock"
        self.record_file = state_dir / "pipeline-run.json"
        self.record = RunRecord(
            token=secrets.token_hex(8), pid=os.getpid(), logical_date=logical_date, started_at=time.time()
        )
        self.notices: list[str] = []
        self._lock_fd: int | None = None
        self._previous_handlers: dict[int, object] = {}

    # -- the lock ---------------------------------------------------------------------------------
    def __enter__(self) -> RunGuard:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self._read_record()
            if holder is None:  # it has the lock but has not written its record yet
                raise RunBusyError(
                    "another pipeline run of this install is starting; wait for it to end"
                ) from None
            raise RunBusyError(
                f"another pipeline run of this install is active: {holder.describe()}. Runs never overlap (each "
                f"moves the watermarks the next starts from): wait for it to end, or stop it with `kill {holder.pid}`"
            ) from None
        self._lock_fd = fd
        try:
            previous = self._read_record()
            if previous is not None:
                # its orchestrator died before cleaning up (the lock was free): stop what it left running
                left = run_processes(previous)
                if left:
                    names = sorted({_name(process) for process in left})
                    stop_processes(previous, left)
                    self.notices.append(
                        f"stopped {len(left)} process(es) ({', '.join(names)}) left running by {previous.describe()}, "
                        "whose orchestrator was killed"
                    )
            self._write_record(self.record)
            self._install_signal_handlers()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            self._restore_signal_handlers()
            self.record_file.unlink(missing_ok=True)
            self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _read_record(self) -> RunRecord | None:
        try:
            return RunRecord(**json.loads(self.record_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _write_record(self, record: RunRecord) -> None:
        tmp = self.record_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, self.record_file)  # a reader never sees half a record
        self.record = record

    # -- the run's processes ----------------------------------------------------------------------
    def run(
        self, command: list[str], env: dict[str, str], timeout: float | None = None, output: IO | None = None
    ) -> int:
        """Run `command` in a process group of its own, carrying the run's token; its exit code. Its output
        (stdout and stderr) goes to `output` when given, to ours otherwise.

        Whatever happens (its end, a signal, a timeout, an error here), every process of the run is stopped
        before this returns.
        """
        child = subprocess.Popen(
            command,
            env={**env, RUN_TOKEN: self.record.token},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            process_group=0,
        )
        try:
            self._write_record(replace(self.record, pgid=child.pid))
            try:
                return child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RunGuardError(
                    f"stopped after {timeout:.0f} s without finishing; every process of the run was stopped"
                ) from None
        finally:
            self.stop()
            child.wait()

    def stop(self) -> None:
        """Stop every process of this run still alive (none of them when the run ended by itself)."""
        if threading.current_thread() is threading.main_thread():
            # a second Ctrl-C must not cut the cleanup short
            with _signals_ignored():
                stop_processes(self.record, run_processes(self.record))
        else:
            stop_processes(self.record, run_processes(self.record))

    # -- signals ----------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        # Python can set handlers in the main thread only; elsewhere (a test's thread) exceptions still stop
        # the run, and nobody sends the thread signals
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in HANDLED_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, _interrupt)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()


def active_run(state_dir: Path) -> RunRecord | None:
    """The record of the pipeline run holding this install's lock, None when no run holds it."""
    lock_file = state_dir / "pipeline.lock"
    if not lock_file.exists():
        return None
    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return RunRecord(**json.loads((state_dir / "pipeline-run.json").read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return RunRecord(token="", pid=0, logical_date="?", started_at=time.time())
    finally:
        os.close(fd)  # releases the lock if this took it
    return None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise RunInterrupted(f"stopped by {signal.Signals(signum).name}; every process of the run was stopped")


class _signals_ignored:
    def __enter__(self) -> None:
        self.previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in HANDLED_SIGNALS}

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def run_processes(record: RunRecord) -> list[psutil.Process]:
    """The live processes of the run: its process group, and whatever carries its token."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                continue
            # a process older than the run is not the run's, whatever its group (pids are reused)
            if process.create_time() < record.started_at - 1:
                continue
            in_group = record.pgid is not None and _pgid(process) == record.pgid
            if in_group or process.environ().get(RUN_TOKEN) == record.token:
                found.append(process)
        except (psutil.Error, OSError):
            continue  # gone meanwhile, or not ours to read
    return found


def stop_processes(record: RunRecord, processes: list[psutil.Process]) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the run's group and processes, until none is left; waits."""
    alive = processes
    for signum, grace in STOP_SEQUENCE:
        if not alive:
            return
        # the whole group at once, when a process of the run still leads or belongs to it (a group id left
        # by a long-dead run may have been reused by someone else's processes)
        if record.pgid is not None and any(_pgid(process) == record.pgid for process in alive):
            try:
                os.killpg(record.pgid, signum)
            except (ProcessLookupError, PermissionError):
                pass  # gone meanwhile
        for process in alive:
            try:
                process.send_signal(signum)
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=grace)
        # a process may have started one more (a task starting its dbt) before it stopped
        alive = run_processes(record)
    if alive:
        raise RunGuardError(
            f"could not stop {len(alive)} process(es) of {record.describe()}: "
            + ", ".join(f"{_name(process)} (pid {process.pid})" for process in alive)
        )


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return "?"
