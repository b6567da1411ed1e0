"""`tshop`: the platform's command line. The Makefile calls it; users may too."""

from __future__ import annotations

import shlex
import sys

import typer

from tshop.config import ConfigError, settings
from tshop.services import ServiceError, local_services

app = typer.Typer(help="T-Shop platform commands.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
services_app = typer.Typer(help="The local PostgreSQL and ClickHouse.", no_args_is_help=True)
app.add_typer(services_app, name="services")


def _fail(error: Exception) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


@services_app.command("start", epilog="Example: TSHOP_PG_PORT=15433 tshop services start")
def services_start() -> None:
    """Start the local services (harmless when running; restarts one that died)."""
    try:
        for service in local_services(settings()):
            typer.echo(str(service.start()))
    except (ServiceError, ConfigError) as error:
        _fail(error)


@services_app.command("stop")
def services_stop() -> None:
    """Stop the local services."""
    try:
        for service in reversed(local_services(settings())):
            typer.echo(str(service.stop()))
    except (ServiceError, ConfigError) as error:
        _fail(error)


@services_app.command("status")
def services_status() -> None:
    """Show whether each local service runs; exit 1 when one that should run does not."""
    try:
        statuses = [service.status() for service in local_services(settings())]
    except ConfigError as error:
        _fail(error)
    for status in statuses:
        typer.echo(str(status))
    if any(status.state not in ("running", "external") for status in statuses):
        raise typer.Exit(1)


@app.command("env")
def env() -> None:
    """Print `export` lines that point clients at the running services: eval "$(tshop env)"."""
    try:
        config = settings()
        typer.echo(f"export TSHOP_PG_DSN={shlex.quote(config.pg_dsn())}")
        typer.echo(f"export TSHOP_CLICKHOUSE_URL={shlex.quote(config.clickhouse_url)}")
    except ConfigError as error:
        _fail(error)


if __name__ == "__main__":
    sys.exit(app())
