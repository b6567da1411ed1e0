"""The local ClickHouse endpoint as a service: start, stop, status, like the local PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tshop.config import Settings, settings
from tshop.services._process import (
    ServiceError,
    ServiceStatus,
    busy_port_message,
    pid_alive,
    port_is_free,
    wait_until,
)

NAME = "clickhouse"


class LocalClickHouse:
    """The chDB engine served over ClickHouse's HTTP interface, in a background process of its own."""

    def __init__(self, config: Settings | None = None):
        self.config = config or settings()
        self.root = self.config.state_dir / "clickhouse"
        self.pid_file = self.root / "server.pid"
        self.log_file = self.root / "server.log"

    @property
    def address(self) -> str:
        return f"{self.config.clickhouse_host}:{self.config.clickhouse_port}"

    @property
    def is_external(self) -> bool:
        return self.config.external_clickhouse_url is not None

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def status(self) -> ServiceStatus:
        if self.is_external:
            return ServiceStatus(NAME, "external", self.config.external_clickhouse_url.split("@")[-1])
        pid = self._pid()
        if pid is None:
            return ServiceStatus(NAME, "stopped", self.address)
        if pid_alive(pid):
            return ServiceStatus(NAME, "running", self.address, pid)
        return ServiceStatus(NAME, "crashed", self.address, pid, "the server died; start starts it again")

    def _answers_ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/ping", timeout=1) as response:
                return response.read() == b"Ok.\n"
        except OSError:
            return False

    def start(self) -> ServiceStatus:
        if self.is_external:
            return self.status()
        state = self.status().state
        if state == "running":
            return self.status()
        # a killed server's threads may still be releasing its socket for a moment
        grace = 10 if state == "crashed" else 0
        if not wait_until(
            lambda: port_is_free(self.config.clickhouse_host, self.config.clickhouse_port), grace
        ):
            raise ServiceError(
                busy_port_message(
                    "ClickHouse endpoint",
                    self.config.clickhouse_host,
                    self.config.clickhouse_port,
                    "TSHOP_CLICKHOUSE_PORT",
                )
            )
        self.root.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "TSHOP_CLICKHOUSE_USER": self.config.clickhouse_user,
            "TSHOP_CLICKHOUSE_PASSWORD": self.config.clickhouse_password,
            "TSHOP_CLICKHOUSE_WRITER_USER": self.config.clickhouse_writer_user,
            "TSHOP_CLICKHOUSE_WRITER_PASSWORD": self.config.clickhouse_writer_password,
            "TSHOP_CLICKHOUSE_READER_USER": self.config.clickhouse_reader_user,
            "TSHOP_CLICKHOUSE_READER_PASSWORD": self.config.clickhouse_reader_password,
            "TZ": "UTC",
        }
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tshop.services.clickhouse", "--data-dir", str(self.root),
                 "--host", self.config.clickhouse_host, "--port", str(self.config.clickhouse_port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )  # fmt: skip
        self.pid_file.write_text(str(process.pid))
        # the first start of chDB loads the engine (a few seconds)
        if not wait_until(
            lambda: self._answers_ping() or process.poll() is not None, timeout=120, interval=0.2
        ):
            raise ServiceError(
                f"the ClickHouse endpoint did not answer /ping; see {self.log_file}:\n{_tail(self.log_file)}"
            )
        if process.poll() is not None:
            raise ServiceError(
                f"the ClickHouse endpoint exited (code {process.returncode}):\n{_tail(self.log_file)}"
            )
        return self.status()

    def stop(self) -> ServiceStatus:
        if self.is_external:
            return self.status()
        pid = self._pid()
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not wait_until(lambda: not pid_alive(pid), timeout=30):
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda: not pid_alive(pid), timeout=5)
        self.pid_file.unlink(missing_ok=True)
        return self.status()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"
