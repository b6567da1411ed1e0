"""A long-running program started in the background with a pid file and a log (the web apps)."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tshop.services._process import (
    ServiceError,
    ServiceStatus,
    busy_port_message,
    pid_alive,
    port_is_free,
    wait_until,
)


@dataclass
class BackgroundProcess:
    name: str
    command: list[str]
    run_dir: Path
    address: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def status(self) -> ServiceStatus:
        pid = self._pid()
        if pid is None:
            return ServiceStatus(self.name, "stopped", self.address)
        if pid_alive(pid):
            return ServiceStatus(self.name, "running", self.address, pid)
        return ServiceStatus(self.name, "crashed", self.address, pid, f"see {self.log_file}")

    def refuse_busy_port(self, what: str, port: int, variable: str) -> None:
        """Raise when another program holds the port it is to serve on: it would fail later, less clearly."""
        if self.status().state != "running" and not port_is_free("127.0.0.1", port):
            raise ServiceError(busy_port_message(what, "127.0.0.1", port, variable))

    def start(self) -> ServiceStatus:
        """Start it unless it runs; in its own session, so it outlives the shell that started it."""
        if self.status().state == "running":
            return self.status()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env or None,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        return self.status()

    def stop(self, timeout: float = 30) -> ServiceStatus:
        pid = self._pid()
        if pid is not None and pid_alive(pid):
            # the whole process group: web servers fork workers
            _signal_group(pid, signal.SIGTERM)
            if not wait_until(lambda: not pid_alive(pid), timeout=timeout):
                _signal_group(pid, signal.SIGKILL)
                wait_until(lambda: not pid_alive(pid), timeout=5)
        self.pid_file.unlink(missing_ok=True)
        return self.status()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
