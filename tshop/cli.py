"""`tshop`: the platform's command line. The Makefile calls it; users may too."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from tshop.config import REPO_ROOT, settings
from tshop.errors import TShopError
from tshop.services import local_services

app = typer.Typer(
    help="T-Shop platform commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
    except TShopError as error:
        _fail(error)


@services_app.command("stop")
def services_stop() -> None:
    """Stop the local services."""
    try:
        for service in reversed(local_services(settings())):
            typer.echo(str(service.stop()))
    except TShopError as error:
        _fail(error)


@services_app.command("status")
def services_status() -> None:
    """Show whether each local service runs; exit 1 when one that should run does not."""
    try:
        statuses = [service.status() for service in local_services(settings())]
    except TShopError as error:
        _fail(error)
    for status in statuses:
        typer.echo(str(status))
    if any(status.state not in ("running", "external") for status in statuses):
        raise typer.Exit(1)


@app.command(
    "setup-roles", epilog="Example: TSHOP_PG_DSN=postgresql://admin:...@db:5432/tshop tshop setup-roles"
)
def setup_roles() -> None:
    """Create or update PostgreSQL's T-Shop roles and grants (CONTRACT.md section 10) as the superuser of
    TSHOP_PG_DSN (`make services` does it for the local server; passwords go to the secrets file), Airflow's and
    Superset's metadata databases with their owners, and, on an external ClickHouse with
    TSHOP_CLICKHOUSE_WRITER_*/READER_* set, its writer and read-only logins."""
    from tshop.services.clickhouse.access import ensure_clickhouse_users
    from tshop.services.postgres import create_database_if_missing
    from tshop.services.postgres_roles import ensure_roles

    try:
        config = settings()
        ensure_roles(config)
        create_database_if_missing(config, config.airflow_database, "airflow")
        create_database_if_missing(config, config.superset_database, "superset")
        clickhouse = ensure_clickhouse_users(config)
    except (TShopError, psycopg.Error) as error:
        _fail(error)
    typer.echo(f"PostgreSQL roles ready on {config.pg_parts()['host']}; passwords in {config.secrets_file}")
    typer.echo(clickhouse)


@app.command("rotate-personal-data-key", epilog="Example: tshop rotate-personal-data-key")
def rotate_personal_data_key() -> None:
    """Make a new current key for the personal data the landing files carry encrypted, kept in the secrets
    file beside the old ones, which still decrypt the files they encrypted. Prints key ids, never a key."""
    from tshop.personal_data import rotate_key

    try:
        config = settings()
        keys = rotate_key(config)
    except TShopError as error:
        _fail(error)
    typer.echo(f"new current key {keys.current_id}; keys that decrypt: {', '.join(sorted(keys.keys))}")
    typer.echo(f"in {config.secrets_file}; a host that decrypts needs the same TSHOP_PERSONAL_DATA_KEYS")


@app.command("pipeline", epilog="Example: tshop pipeline --date 2024-03-05 --generate")
def pipeline(
    date: Annotated[
        str | None,
        typer.Option(
            help="Business day to process (YYYY-MM-DD: the run at 02:00 the next morning), or the run's ISO "
            "logical date; default: the latest scheduled run's (today 02:00 UTC, for yesterday)."
        ),
    ] = None,
    generate: Annotated[
        bool,
        typer.Option(
            help="Simulate every business day after the last one RAW holds through that day first (a new "
            "shop: that day)."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Airflow's and dbt's output instead of a log file.")
    ] = False,
) -> None:
    """Run one pipeline cycle through Airflow, one line per task group, and print its summary; exit 1 unless
    every task succeeded, naming the others with their log tails. With the scheduler running and the DAG
    unpaused (after `make demo`) the scheduler runs it; otherwise `airflow dags test` does, refusing while
    another run of this install is active."""
    from tshop.orchestration import run_pipeline

    try:
        run_pipeline(settings(), _logical_date(date), generate=generate, verbose=verbose)
    except TShopError as error:
        _fail(error)


def _logical_date(date: str | None) -> str | None:
    if date and len(date) == 10:
        from tshop.orchestration import logical_date_for

        try:
            return logical_date_for(dt.date.fromisoformat(date))
        except ValueError:
            _fail(TShopError(f"--date {date!r} is not a day (YYYY-MM-DD)"))
    if date:
        try:
            dt.datetime.fromisoformat(date)
        except ValueError:
            _fail(TShopError(f"--date {date!r} is neither a day (YYYY-MM-DD) nor an ISO logical date"))
    return date


@app.command(
    "ingest", epilog="Example: TSHOP_LANDING_URL=s3://bucket/landing tshop ingest --run-id manual__1"
)
def ingest(
    run_id: Annotated[
        str | None,
        typer.Option(
            help="The run recorded in sl.landing_file (Airflow's run id); default manual__<UTC time>."
        ),
    ] = None,
) -> None:
    """Ingest every new file of the landing zone (TSHOP_LANDING_URL: incoming/customer|product|sales/) into
    RAW, one line per file. Exit 0 when every file was processed, rejected rows and files included (they are
    reported, in raw.rejected_row and sl.landing_file); 1 when the ingest itself failed."""
    from tshop.ingest import ingest as ingest_landing_zone

    try:
        report = ingest_landing_zone(settings(), run_id)
    except TShopError as error:
        _fail(error)
    for line in report.lines():
        typer.echo(line)


@app.command(
    "load-events",
    epilog="Example: TSHOP_LANDING_URL=s3://bucket/landing tshop load-events --run-id manual__1",
)
def load_events(
    run_id: Annotated[
        str | None,
        typer.Option(
            help="The run recorded in sl.landing_file and the events tables; default manual__<UTC time>."
        ),
    ] = None,
) -> None:
    """Load the landing zone's new clickstream and review files (incoming/clickstream|reviews/, JSON lines)
    into ClickHouse's events tables and build the marts they feed, one line per file. Exit 0 when every file
    was processed, refused lines and files included (events.rejected_event, sl.landing_file); 1 when the load
    itself failed (its files stay pending for the next load)."""
    from tshop.ingest.events import load_events as load

    try:
        report = load(settings(), run_id)
    except TShopError as error:
        _fail(error)
    for line in report.lines():
        typer.echo(line)


@app.command(
    "forget-customer",
    epilog="Examples: tshop forget-customer 17 42; tshop forget-customer --from-file ids.txt --run-id manual__1",
)
def forget_customer(
    customer_ids: Annotated[list[int] | None, typer.Argument(help="The customers to erase.")] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(help="A file of customer ids, one a line (blank lines and # comments skipped)."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="The run recorded in sl.erasure_log; default manual__<UTC time>.")
    ] = None,
    clickhouse_update: Annotated[
        str,
        typer.Option(
            help="How ClickHouse rows are rewritten: lightweight (UPDATE) or mutation (ALTER ... UPDATE)."
        ),
    ] = "lightweight",
) -> None:
    """Erase customers' personal data (names become `erased`, birth date null) in RAW, every DDS version, the
    CDM marts, ClickHouse and the landing zone's customer files, keeping every sale and dashboard number;
    recorded in sl.erasure_log (CONTRACT.md section 10). Exit 0 when everything is erased (customers erased
    before are reported, not changed); 1 on an unknown id (nothing changed) or when a step is left (a re-run
    completes it)."""
    from tshop.erasure import forget_customers

    ids = list(customer_ids or [])
    try:
        if from_file is not None:
            for number, line in enumerate(from_file.read_text().splitlines(), start=1):
                text = line.split("#", 1)[0].strip()
                if text:
                    try:
                        ids.append(int(text))
                    except ValueError:
                        raise TShopError(f"{from_file}:{number}: {text!r} is not a customer id") from None
        report = forget_customers(settings(), ids, run_id, clickhouse_update)
    except (TShopError, OSError) as error:
        _fail(error)
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@app.command(
    "report",
    epilog="Examples: tshop report --day 2024-03-05; tshop report --month 2024-02",
)
def report(
    day: Annotated[
        str | None,
        typer.Option(help="Write the daily report of this business day (YYYY-MM-DD), once it ended."),
    ] = None,
    month: Annotated[
        str | None, typer.Option(help="Write the month-end report of this month (YYYY-MM), once it ended.")
    ] = None,
) -> None:
    """Write one sales report (CSV and HTML) from the PostgreSQL mart under TSHOP_REPORTS_URL, replacing the
    one there, and print where. The pipeline writes them itself; this is for a report asked for again (after
    a late correction, say)."""
    from tshop.reports import ReportError, parse_day, parse_month, write_report

    try:
        if (day is None) == (month is None):
            raise ReportError("give either --day YYYY-MM-DD or --month YYYY-MM")
        period = parse_day(day) if day is not None else parse_month(month)
        for url in write_report(settings(), period):
            typer.echo(f"wrote {url}")
    except TShopError as error:
        _fail(error)


dashboard_app = typer.Typer(
    help="The Superset dashboards as code (superset_assets/): T-Shop sales, T-Shop customers.",
    no_args_is_help=True,
)
app.add_typer(dashboard_app, name="dashboard")


@dashboard_app.command("import")
def dashboard_import() -> None:
    """Set up Superset's metadata and admin, and import superset_assets/ (overwriting); print the login."""
    from tshop.dashboard import import_dashboard

    config = settings()
    try:
        import_dashboard(config)
    except TShopError as error:
        _fail(error)
    typer.echo(f"imported {REPO_ROOT / 'superset_assets'}")
    typer.echo(f"Superset login: {config.superset_user} / {config.superset_password}")


@dashboard_app.command("export")
def dashboard_export() -> None:
    """Write the dashboards as the running Superset holds them (edits made in the UI) into superset_assets/."""
    from tshop.dashboard import export_dashboard

    try:
        for path in export_dashboard(settings()):
            typer.echo(f"exported {path}")
    except TShopError as error:
        _fail(error)


webapps_app = typer.Typer(help="The Airflow and Superset web apps.", no_args_is_help=True)
app.add_typer(webapps_app, name="webapps")


@webapps_app.command("start")
def webapps_start() -> None:
    """Start the web apps in the background (harmless when they run)."""
    from tshop.webapps import start_web_apps

    try:
        for status in start_web_apps(settings()):
            typer.echo(str(status))
    except TShopError as error:
        _fail(error)


@webapps_app.command("stop")
def webapps_stop() -> None:
    """Stop the web apps."""
    from tshop.webapps import all_web_apps

    for web_app in all_web_apps(settings()):
        typer.echo(str(web_app.stop()))


@webapps_app.command("status")
def webapps_status() -> None:
    """Show whether each web app runs."""
    from tshop.webapps import all_web_apps

    for web_app in all_web_apps(settings()):
        typer.echo(str(web_app.status()))


@app.command("demo")
def demo(
    days: Annotated[
        int, typer.Option(min=1, help="Business days of a new demo shop, ending yesterday.")
    ] = 14,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the generator's output instead of a log file.")
    ] = False,
) -> None:
    """Set up and run the demo end to end, one line per stage and task group, then the addresses and logins."""
    from tshop.demo import run_demo

    try:
        run_demo(settings(), days=days, verbose=verbose)
    except TShopError as error:
        _fail(error)


@app.command("env")
def env() -> None:
    """Print `export` lines that point clients at the running services: eval "$(tshop env)"."""
    try:
        config = settings()
        typer.echo(f"export TSHOP_PG_DSN={shlex.quote(config.pg_dsn())}")
        typer.echo(f"export TSHOP_CLICKHOUSE_URL={shlex.quote(config.clickhouse_url)}")
        for name, value in config.connection_env().items():
            typer.echo(f"export {name}={shlex.quote(value)}")
    except TShopError as error:
        _fail(error)


if __name__ == "__main__":
    sys.exit(app())
