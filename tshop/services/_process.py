"""Small process and network helpers shared by the local services."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from tshop.errors import TShopError


class ServiceError(TShopError):
    """A local service cannot start or stop; the message says why and what to change."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | crashed | external
    address: str
    pid: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        pid = f" (pid {self.pid})" if self.pid else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.name:<11} {self.state:<8} {self.address}{pid}{detail}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); it is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for test and benchmark instances)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def busy_port_message(service: str, host: str, port: int, setting: str) -> str:
    return (
        f"cannot start the local {service}: port {port} on {host} is already in use by another program. "
        f"Stop that program or choose a free port with {setting}=<port> (for example "
        f"`export {setting}={port + 1}`)."
    )
