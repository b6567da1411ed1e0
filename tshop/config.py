"""T-Shop configuration: every setting, its environment variable and its default, in one place.

Everything else reads `settings()`; nothing else reads `os.environ` for T-Shop settings.

| variable | default | meaning |
|---|---|---|
| TSHOP_STATE_DIR | `<repo>/.state` | data, logs, pid files and generated secrets of the local services |
| TSHOP_PG_DSN | (unset) | `postgresql://` URL of an external PostgreSQL; when set, no local PostgreSQL starts |
| TSHOP_PG_HOST | 127.0.0.1 | address the local PostgreSQL listens on |
| TSHOP_PG_PORT | 15432 | port of the local PostgreSQL |
| TSHOP_PG_USER | tshop | database role of the local PostgreSQL (its superuser): setup only |
| TSHOP_PG_LOADER_USER | tshop_loader | the role that writes RAW and the landing tables (the generator, `tshop ingest`) |
| TSHOP_PG_TRANSFORMER_USER | tshop_transformer | the role dbt and the pipeline's books run as (reads RAW, writes DDS, CDM, SL) |
| TSHOP_PG_READER_USER | tshop_reader | the role that reads CDM only (ClickHouse's `postgresql()` reads, the reports) |
| TSHOP_PG_AIRFLOW_USER | tshop_airflow | owner of Airflow's metadata database |
| TSHOP_PG_SUPERSET_USER | tshop_superset | owner of Superset's metadata database |
| TSHOP_PG_DATABASE | tshop | the warehouse database |
| TSHOP_PG_OS_USER | tshop | system user that runs the local PostgreSQL when T-Shop runs as root |
| TSHOP_CLICKHOUSE_URL | (unset) | `http://` URL of an external ClickHouse HTTP interface; when set, no local one starts |
| TSHOP_CLICKHOUSE_HOST | 127.0.0.1 | address the local ClickHouse endpoint listens on |
| TSHOP_CLICKHOUSE_PORT | 8123 | port of the local ClickHouse endpoint |
| TSHOP_CLICKHOUSE_USER | default | ClickHouse user of the local endpoint (its admin) |
| TSHOP_CLICKHOUSE_WRITER_USER | tshop_writer | the ClickHouse login that writes `cdm` and `events` (dbt, loaders); no access management |
| TSHOP_CLICKHOUSE_READER_USER | tshop_reader | the read-only ClickHouse login Superset reads `cdm` and `events` with (tshop/services/clickhouse/access.py) |
| TSHOP_AIRFLOW_PORT | 8080 | port of the Airflow web app (api-server) started by `make demo` |
| TSHOP_AIRFLOW_USER | admin | the Airflow admin login; its password is generated per install |
| TSHOP_AIRFLOW_DATABASE | airflow | Airflow's metadata database, on the same PostgreSQL server |
| TSHOP_AIRFLOW_LOG_SERVER_PORT | 8793 | port of the log server of the Airflow scheduler's task runs, on 127.0.0.1 |
| TSHOP_AIRFLOW_TRIGGERER_LOG_SERVER_PORT | 8794 | port of an Airflow triggerer's log server (T-Shop starts no triggerer) |
| TSHOP_SUPERSET_PORT | 8088 | port of the Superset web app started by `make demo` |
| TSHOP_SUPERSET_USER | admin | the Superset admin login; its password is generated per install |
| TSHOP_SUPERSET_VIEWER_USER | viewer | a Superset login with the `T-Shop viewer` role: the dashboards and nothing else; its password is generated per install |
| TSHOP_SUPERSET_DATABASE | superset | Superset's metadata database, on the same PostgreSQL server |
| TSHOP_PIPELINE_GENERATE | true | the DAG's `generate` default: simulate each business day before building (`false` where the generator runs elsewhere, as in Docker Compose) |
| TSHOP_RETRIES | 2 | retries of each pipeline task (with exponential backoff from 30 s) |
| TSHOP_DBT_EXECUTABLE | `<repo>/.venvs/dbt/bin/dbt` | the dbt of the dbt environment (kept apart from Airflow's) |
| TSHOP_COSMOS_EXECUTION_MODE | watcher | how Cosmos runs the dbt nodes: `watcher` (one `dbt build` per project, each node's task reports its result) or `local` (a dbt process per task) |
| TSHOP_COSMOS_TEST_BEHAVIOR | after_each | `after_each` (a test task per node) or, with `local` only, `build` (a node and its tests in one task) |
| TSHOP_REPORTS_URL | `file://<state dir>/reports` | where the daily and month-end reports are written (`daily/YYYY-MM-DD.csv`/`.html`, `monthly/YYYY-MM.csv`/`.html`): a `file://` URL, or any URL fsspec writes to (`s3://bucket/reports` with s3fs installed) |
| TSHOP_LANDING_URL | `file://<state dir>/landing` | the landing zone outside systems drop files into (`incoming/<table>/...`, read by `tshop ingest`): a `file://` URL or `s3://bucket/prefix`; an S3 one reaches its server by the standard `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` |
| TSHOP_S3_HOST | 127.0.0.1 | address of the local S3-compatible server (moto's; tshop/services/s3.py), for tests and local trials |
| TSHOP_S3_PORT | 19000 | its port |
| TSHOP_ALERT_WEBHOOK | (unset) | a Slack-compatible incoming-webhook URL a failed run's alert is POSTed to (`{"text": ...}`); unset: alerts are only recorded in `sl.alert_log`. A secret: never printed or recorded |

Passwords are never defaults in the repository: the local services generate one per install on first
start and keep it in `<state>/secrets.env` (mode 0600). `TSHOP_PG_PASSWORD` and `TSHOP_CLICKHOUSE_PASSWORD`
override them; the external URLs carry their own. Each PostgreSQL role of `PG_ROLES` has its own,
`TSHOP_PG_<ROLE>_PASSWORD` (made by `tshop setup-roles`, which `make services` runs); a part connects as
its role when that password is known (the environment or the secrets file), else as the DSN's own user, as
on an external server nobody set the roles up on. The ClickHouse writer and reader and the Superset viewer have
theirs too (`TSHOP_CLICKHOUSE_WRITER_PASSWORD`, `TSHOP_CLICKHOUSE_READER_PASSWORD`, `TSHOP_SUPERSET_VIEWER_PASSWORD`).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from tshop.errors import TShopError

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, str] = {
    "TSHOP_STATE_DIR": str(REPO_ROOT / ".state"),
    "TSHOP_PG_HOST": "127.0.0.1",
    "TSHOP_PG_PORT": "15432",
    "TSHOP_PG_USER": "tshop",
    "TSHOP_PG_DATABASE": "tshop",
    "TSHOP_PG_OS_USER": "tshop",
    "TSHOP_PG_LOADER_USER": "tshop_loader",
    "TSHOP_PG_TRANSFORMER_USER": "tshop_transformer",
    "TSHOP_PG_READER_USER": "tshop_reader",
    "TSHOP_PG_AIRFLOW_USER": "tshop_airflow",
    "TSHOP_PG_SUPERSET_USER": "tshop_superset",
    "TSHOP_CLICKHOUSE_HOST": "127.0.0.1",
    "TSHOP_CLICKHOUSE_PORT": "8123",
    "TSHOP_CLICKHOUSE_USER": "default",
    "TSHOP_CLICKHOUSE_WRITER_USER": "tshop_writer",
    "TSHOP_CLICKHOUSE_READER_USER": "tshop_reader",
    "TSHOP_AIRFLOW_PORT": "8080",
    "TSHOP_AIRFLOW_USER": "admin",
    "TSHOP_AIRFLOW_DATABASE": "airflow",
    "TSHOP_AIRFLOW_LOG_SERVER_PORT": "8793",
    "TSHOP_AIRFLOW_TRIGGERER_LOG_SERVER_PORT": "8794",
    "TSHOP_SUPERSET_PORT": "8088",
    "TSHOP_SUPERSET_USER": "admin",
    "TSHOP_SUPERSET_VIEWER_USER": "viewer",
    "TSHOP_SUPERSET_DATABASE": "superset",
    "TSHOP_PIPELINE_GENERATE": "true",
    # where the pipeline's generator writes the simulated days: `raw` (binary COPY into RAW) or `landing`
    # (files in the landing zone, which the run's ingest then loads: the road of an outside export)
    "TSHOP_GENERATE_TO": "raw",
    "TSHOP_RETRIES": "2",
    "TSHOP_DBT_EXECUTABLE": str(REPO_ROOT / ".venvs" / "dbt" / "bin" / "dbt"),
    "TSHOP_COSMOS_EXECUTION_MODE": "watcher",
    "TSHOP_COSMOS_TEST_BEHAVIOR": "after_each",
    "TSHOP_S3_HOST": "127.0.0.1",
    "TSHOP_S3_PORT": "19000",
    # TSHOP_REPORTS_URL: its default follows TSHOP_STATE_DIR (Settings.reports_url)
    # TSHOP_LANDING_URL: its default follows TSHOP_STATE_DIR (Settings.landing_url); an s3:// one reaches its
    # server by the standard AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
    # TSHOP_ALERT_WEBHOOK: no default (unset: no webhook)
}


# The PostgreSQL roles (CONTRACT.md section 10) each part connects as; `admin` is TSHOP_PG_USER, the superuser,
# for setup only. tshop/services/postgres_roles.py creates them and grants what each may do.
PG_ROLES = ("loader", "transformer", "reader", "airflow", "superset")


class ConfigError(TShopError, ValueError):
    """A setting has a value T-Shop cannot use; the message names the variable."""


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}={value!r} is not a port number between 1 and 65535")
    return port


@dataclass(frozen=True)
class Settings:
    env: dict[str, str]

    def get(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value == "":
            return DEFAULTS.get(name)
        return value

    # -- state ---------------------------------------------------------------------------------
    @cached_property
    def state_dir(self) -> Path:
        return Path(self.get("TSHOP_STATE_DIR")).resolve()

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.env"

    def secret(self, name: str) -> str:
        """The value of a generated secret: from the environment, else from the state folder,
        else generated now and kept there for the next call."""
        if self.env.get(name):
            return self.env[name]
        stored = read_env_file(self.secrets_file)
        if name not in stored:
            stored[name] = secrets.token_urlsafe(18)
            _write_env_file(self.secrets_file, stored)
        return stored[name]

    # -- PostgreSQL ----------------------------------------------------------------------------
    @property
    def external_pg_dsn(self) -> str | None:
        dsn = self.env.get("TSHOP_PG_DSN") or None
        if dsn and not dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"TSHOP_PG_DSN must be a postgresql:// URL, got {dsn[:30]!r}")
        return dsn

    @property
    def pg_host(self) -> str:
        return self.get("TSHOP_PG_HOST")

    @property
    def pg_port(self) -> int:
        return _port("TSHOP_PG_PORT", self.get("TSHOP_PG_PORT"))

    @property
    def pg_user(self) -> str:
        return self.get("TSHOP_PG_USER")

    @property
    def pg_database(self) -> str:
        return self.get("TSHOP_PG_DATABASE")

    @property
    def pg_os_user(self) -> str:
        return self.get("TSHOP_PG_OS_USER")

    @property
    def pg_password(self) -> str:
        return self.secret("TSHOP_PG_PASSWORD")

    def pg_dsn(self, database: str | None = None) -> str:
        """The `postgresql://` URL of the warehouse (or of another database on the same server)."""
        if self.external_pg_dsn:
            dsn = self.external_pg_dsn
            if database is None:
                return dsn
            parts = urlsplit(dsn)
            return parts._replace(path="/" + database).geturl()
        return (
            f"postgresql://{quote(self.pg_user, safe='')}:{quote(self.pg_password, safe='')}"
            f"@{self.pg_host}:{self.pg_port}/{database or self.pg_database}"
        )

    def pg_role_user(self, role: str) -> str:
        if role == "admin":
            return self.pg_user
        if role not in PG_ROLES:
            raise ConfigError(f"no PostgreSQL role {role!r}; the roles are admin, {', '.join(PG_ROLES)}")
        return self.get(f"TSHOP_PG_{role.upper()}_USER")

    def pg_role_password(self, role: str) -> str | None:
        """The role's password from the environment or the secrets file; None when the roles were never set
        up here. Unlike `secret`, this never makes one: `tshop setup-roles` does, with the role itself."""
        name = f"TSHOP_PG_{role.upper()}_PASSWORD"
        return self.env.get(name) or read_env_file(self.secrets_file).get(name)

    def pg_dsn_as(self, role: str, database: str | None = None) -> str:
        """The URL of the warehouse (or another database of its server) logged in as one of `PG_ROLES`: the
        server and database of `pg_dsn`, the role's login. Without the role's password, `pg_dsn` itself."""
        dsn = self.pg_dsn(database)
        if role == "admin":
            return dsn
        password = self.pg_role_password(role)
        if password is None:
            return dsn
        parts = urlsplit(dsn)
        address = parts.netloc.rpartition("@")[2]
        login = f"{quote(self.pg_role_user(role), safe='')}:{quote(password, safe='')}"
        return parts._replace(netloc=f"{login}@{address}").geturl()

    def pg_parts(self, role: str = "admin", database: str | None = None) -> dict[str, str]:
        """host, port, user, password, database of `pg_dsn_as(role)`, each decoded: what the dbt profiles read
        as plain `env_var()`s (the URL is taken apart here, once)."""
        parts = urlsplit(self.pg_dsn_as(role, database))
        return {
            "host": parts.hostname or "127.0.0.1",
            "port": str(parts.port or 5432),
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "database": unquote(parts.path.lstrip("/").split("?")[0]),
        }

    # -- ClickHouse ----------------------------------------------------------------------------
    @property
    def external_clickhouse_url(self) -> str | None:
        url = self.env.get("TSHOP_CLICKHOUSE_URL") or None
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"TSHOP_CLICKHOUSE_URL must be an http:// URL, got {url[:30]!r}")
        return url

    @property
    def clickhouse_host(self) -> str:
        return self.get("TSHOP_CLICKHOUSE_HOST")

    @property
    def clickhouse_port(self) -> int:
        return _port("TSHOP_CLICKHOUSE_PORT", self.get("TSHOP_CLICKHOUSE_PORT"))

    @property
    def clickhouse_user(self) -> str:
        return self.get("TSHOP_CLICKHOUSE_USER")

    @property
    def clickhouse_password(self) -> str:
        return self.secret("TSHOP_CLICKHOUSE_PASSWORD")

    @property
    def clickhouse_url(self) -> str:
        """The `http://user:password@host:port` URL of the ClickHouse HTTP interface."""
        if self.external_clickhouse_url:
            return self.external_clickhouse_url
        return (
            f"http://{quote(self.clickhouse_user, safe='')}:{quote(self.clickhouse_password, safe='')}"
            f"@{self.clickhouse_host}:{self.clickhouse_port}"
        )

    @property
    def clickhouse_writer_user(self) -> str:
        return self.get("TSHOP_CLICKHOUSE_WRITER_USER")

    @property
    def clickhouse_writer_password(self) -> str:
        return self.secret("TSHOP_CLICKHOUSE_WRITER_PASSWORD")

    @property
    def clickhouse_reader_user(self) -> str:
        return self.get("TSHOP_CLICKHOUSE_READER_USER")

    @property
    def clickhouse_reader_password(self) -> str:
        return self.secret("TSHOP_CLICKHOUSE_READER_PASSWORD")

    def clickhouse_url_as(self, role: str) -> str:
        """The ClickHouse URL with the login of `role`: `admin` (clickhouse_url), `writer` or `reader`.

        Local endpoint: that login's user and generated password. External server (TSHOP_CLICKHOUSE_URL): its
        URL with the user and password replaced only when both TSHOP_CLICKHOUSE_<ROLE>_USER and
        TSHOP_CLICKHOUSE_<ROLE>_PASSWORD are set (the server's logins are not ours to invent), else the URL
        unchanged."""
        if role == "admin":
            return self.clickhouse_url
        if role not in ("writer", "reader"):
            raise ConfigError(f"no ClickHouse login for the role {role!r}: admin, writer or reader")
        prefix = f"TSHOP_CLICKHOUSE_{role.upper()}"
        if self.external_clickhouse_url:
            user, password = self.env.get(f"{prefix}_USER"), self.env.get(f"{prefix}_PASSWORD")
            if not (user and password):
                return self.external_clickhouse_url
            parts = urlsplit(self.external_clickhouse_url)
            address = parts.netloc.rsplit("@", 1)[-1]
            login = f"{quote(user, safe='')}:{quote(password, safe='')}"
            return parts._replace(netloc=f"{login}@{address}").geturl()
        user = self.clickhouse_writer_user if role == "writer" else self.clickhouse_reader_user
        password = self.clickhouse_writer_password if role == "writer" else self.clickhouse_reader_password
        return (
            f"http://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.clickhouse_host}:{self.clickhouse_port}"
        )

    # -- Airflow ---------------------------------------------------------------------------------
    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def airflow_port(self) -> int:
        return _port("TSHOP_AIRFLOW_PORT", self.get("TSHOP_AIRFLOW_PORT"))

    @property
    def airflow_user(self) -> str:
        return self.get("TSHOP_AIRFLOW_USER")

    @property
    def airflow_password(self) -> str:
        return self.secret("TSHOP_AIRFLOW_PASSWORD")

    @property
    def airflow_database(self) -> str:
        return self.get("TSHOP_AIRFLOW_DATABASE")

    @property
    def airflow_log_server_port(self) -> int:
        return _port("TSHOP_AIRFLOW_LOG_SERVER_PORT", self.get("TSHOP_AIRFLOW_LOG_SERVER_PORT"))

    @property
    def airflow_triggerer_log_server_port(self) -> int:
        return _port(
            "TSHOP_AIRFLOW_TRIGGERER_LOG_SERVER_PORT", self.get("TSHOP_AIRFLOW_TRIGGERER_LOG_SERVER_PORT")
        )

    # -- Superset --------------------------------------------------------------------------------
    @property
    def superset_home(self) -> Path:
        return self.state_dir / "superset"

    @property
    def superset_port(self) -> int:
        return _port("TSHOP_SUPERSET_PORT", self.get("TSHOP_SUPERSET_PORT"))

    @property
    def superset_user(self) -> str:
        return self.get("TSHOP_SUPERSET_USER")

    @property
    def superset_password(self) -> str:
        return self.secret("TSHOP_SUPERSET_PASSWORD")

    @property
    def superset_viewer_user(self) -> str:
        return self.get("TSHOP_SUPERSET_VIEWER_USER")

    @property
    def superset_viewer_password(self) -> str:
        return self.secret("TSHOP_SUPERSET_VIEWER_PASSWORD")

    @property
    def superset_database(self) -> str:
        return self.get("TSHOP_SUPERSET_DATABASE")

    @property
    def pipeline_generates(self) -> bool:
        return self._choice("TSHOP_PIPELINE_GENERATE", ("true", "false")) == "true"

    @property
    def generate_to(self) -> str:
        """Where the generator writes simulated days: `raw` or `landing` (TSHOP_GENERATE_TO)."""
        return self._choice("TSHOP_GENERATE_TO", ("raw", "landing"))

    @property
    def retries(self) -> int:
        value = self.get("TSHOP_RETRIES")
        if not value.isdigit():
            raise ConfigError(f"TSHOP_RETRIES={value!r} is not a whole number")
        return int(value)

    # -- dbt -------------------------------------------------------------------------------------
    @property
    def dbt_executable(self) -> Path:
        return Path(self.get("TSHOP_DBT_EXECUTABLE"))

    @property
    def cosmos_execution_mode(self) -> str:
        return self._choice("TSHOP_COSMOS_EXECUTION_MODE", ("local", "watcher"))

    @property
    def cosmos_test_behavior(self) -> str:
        behavior = self._choice("TSHOP_COSMOS_TEST_BEHAVIOR", ("build", "after_each"))
        if behavior == "build" and self.cosmos_execution_mode == "watcher":
            # in watcher mode the producer task runs the one `dbt build`; a node task cannot build
            raise ConfigError(
                "TSHOP_COSMOS_TEST_BEHAVIOR=build needs TSHOP_COSMOS_EXECUTION_MODE=local; "
                "watcher mode runs the tests in its one `dbt build` and reports them with `after_each`"
            )
        return behavior

    # -- reports ---------------------------------------------------------------------------------
    @property
    def reports_url(self) -> str:
        """The URL of the reports' folder: TSHOP_REPORTS_URL, else `file://<state dir>/reports`."""
        url = self.env.get("TSHOP_REPORTS_URL") or (self.state_dir / "reports").as_uri()
        if "://" not in url:
            raise ConfigError(
                f"TSHOP_REPORTS_URL={url!r} is not a URL: give a folder as file:///path/to/reports "
                "(or an object store's URL, such as s3://bucket/reports)"
            )
        return url

    # -- the landing zone (CONTRACT.md section 7) -------------------------------------------------
    @property
    def landing_url(self) -> str:
        """The URL of the landing zone: TSHOP_LANDING_URL, else `file://<state dir>/landing`."""
        url = (self.env.get("TSHOP_LANDING_URL") or (self.state_dir / "landing").as_uri()).rstrip("/")
        if "://" not in url:
            raise ConfigError(
                f"TSHOP_LANDING_URL={url!r} is not a URL: give a folder as file:///path/to/landing "
                "(or an S3-compatible bucket's URL, such as s3://bucket/landing)"
            )
        return url

    def landing_storage_options(self) -> dict:
        """fsspec's options for the landing zone's filesystem: for `s3://`, the endpoint, credentials and
        region from the standard AWS_* variables of these settings (unset ones are left to botocore's own
        lookup), a few quick retries, and no cached listings (every ingest must see what landed since)."""
        if not self.landing_url.startswith(("s3://", "s3a://")):
            return {}
        options: dict = {
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "config_kwargs": {"connect_timeout": 10, "retries": {"max_attempts": 3, "mode": "standard"}},
        }
        for variable, option in (
            ("AWS_ENDPOINT_URL", "endpoint_url"),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ):
            if self.env.get(variable):
                options[option] = self.env[variable]
        region = self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION")
        if region:
            options["client_kwargs"] = {"region_name": region}
        return options

    # -- the local S3-compatible server (tests, local trials) ------------------------------------
    @property
    def s3_host(self) -> str:
        return self.get("TSHOP_S3_HOST")

    @property
    def s3_port(self) -> int:
        return _port("TSHOP_S3_PORT", self.get("TSHOP_S3_PORT"))

    # -- alerts ----------------------------------------------------------------------------------
    @property
    def alert_webhook(self) -> str | None:
        """The URL a failed run's alert is POSTed to, or None. It carries its token: never print it."""
        url = self.env.get("TSHOP_ALERT_WEBHOOK") or None
        if url and not url.startswith(("http://", "https://")):
            # the value is a secret: name the variable, not the value
            raise ConfigError("TSHOP_ALERT_WEBHOOK must be an http:// or https:// URL")
        return url

    def _choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.get(name)
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        return value

    def connection_env(self) -> dict[str, str]:
        """The connection settings taken apart, once, for the dbt profiles' plain `env_var()`s: the warehouse's
        address and each role's login (the DSN's own user where the roles were never set up)."""
        address = self.pg_parts()
        found = {
            "TSHOP_PG_HOST": address["host"],
            "TSHOP_PG_PORT": address["port"],
            "TSHOP_PG_DATABASE": address["database"],
        }
        for role in ("loader", "transformer", "reader"):
            login = self.pg_parts(role)
            found[f"TSHOP_PG_{role.upper()}_USER"] = login["user"]
            found[f"TSHOP_PG_{role.upper()}_PASSWORD"] = login["password"]
        # ClickHouse: its address and the writer's and reader's logins (tshop/services/clickhouse/access.py)
        for role in ("writer", "reader"):
            parts = urlsplit(self.clickhouse_url_as(role))
            found[f"TSHOP_CLICKHOUSE_{role.upper()}_USER"] = unquote(parts.username or "default")
            found[f"TSHOP_CLICKHOUSE_{role.upper()}_PASSWORD"] = unquote(parts.password or "")
        found["TSHOP_CLICKHOUSE_HOST"] = parts.hostname or "127.0.0.1"
        found["TSHOP_CLICKHOUSE_PORT"] = str(parts.port or (8443 if parts.scheme == "https" else 8123))
        found["TSHOP_CLICKHOUSE_SECURE"] = "true" if parts.scheme == "https" else "false"
        # where ClickHouse's postgresql() reaches the same server (Docker Compose: by its service name)
        found["TSHOP_CLICKHOUSE_PG_HOST"] = self.env.get("TSHOP_CLICKHOUSE_PG_HOST") or address["host"]
        found["TSHOP_CLICKHOUSE_PG_PORT"] = self.env.get("TSHOP_CLICKHOUSE_PG_PORT") or address["port"]
        return found

    def client_env(self) -> dict[str, str]:
        """The environment a client process (dbt, the generator, Airflow) needs to reach the services."""
        return {
            **self.env,
            **self.connection_env(),
            "TSHOP_PG_DSN": self.pg_dsn(),
            "TSHOP_CLICKHOUSE_URL": self.clickhouse_url,
            # its default follows the state folder: a client with another working folder finds the same one
            "TSHOP_LANDING_URL": self.landing_url,
        }


def settings(env: dict[str, str] | None = None) -> Settings:
    """The settings for this process (or for the given environment, in tests)."""
    return Settings(dict(os.environ if env is None else env))


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # the file holds passwords: create it private, then move it into place atomically
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# generated by T-Shop for this install; never commit\n")
        handle.writelines(f"{key}={value}\n" for key, value in sorted(values.items()))
    os.replace(tmp, path)
