"""`tshop-datagen`: simulate business days of the shop into PostgreSQL's RAW layer (`--to raw`), or as files
into the landing zone (`--to landing`, CONTRACT.md section 7); and, unless `--no-events`, each day's web
clickstream and reviews as JSON lines into the landing zone whatever the target (section 8)."""

from __future__ import annotations

import datetime as dt
import enum
import time
from typing import Annotated, NoReturn

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datagen import events as shop_events
from datagen.errors import Refused
from datagen.shop_writer import ShopWriter
from datagen.simulation import (
    DEFAULT_CUSTOMERS,
    DEFAULT_SEED,
    DEFAULT_START_DATE,
    EARLIEST_DAY,
    DayReport,
    ShopSimulation,
)

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)


class Target(enum.StrEnum):
    raw = "raw"
    landing = "landing"


@app.callback()
def main() -> None:
    """Simulate the T-Shop clothing shop into RAW."""


@app.command(
    epilog="Example: tshop-datagen generate --customers 5000000 --days 90 --seed 7 --start-date 2024-03-04 "
    "(add --to landing for files in the landing zone)"
)
def generate(
    customers: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help=f"Customers of a new shop (default {DEFAULT_CUSTOMERS:,}). A shop the target already holds "
            "keeps its own: another number is refused, the same one accepted.",
        ),
    ] = None,
    days: Annotated[
        int, typer.Option(min=1, help="Business days to simulate (with --through: the days of a new shop).")
    ] = 7,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=2**63 - 1,
            show_default=False,
            help=f"Random seed of a new shop (default {DEFAULT_SEED}): the same seed and arguments give the "
            "same rows. A shop the target already holds keeps its own: another seed is refused.",
        ),
    ] = None,
    start_date: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            show_default=False,
            help=f"First business day (YYYY-MM-DD), from {EARLIEST_DAY}; the last must be over (UTC). "
            f"Default {DEFAULT_START_DATE}.",
        ),
    ] = None,
    through: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            show_default=False,
            help="Catch up instead: simulate every business day after the last one the target holds through this "
            "day (YYYY-MM-DD, over in UTC), in order, each once; a new shop gets DAYS days ending it.",
        ),
    ] = None,
    to: Annotated[
        Target,
        typer.Option(
            help="raw: into PostgreSQL's RAW, one transaction per day. landing: files into the landing zone "
            "(incoming/<table>/<day>/), for `tshop ingest`; a day's files appear whole or not at all."
        ),
    ] = Target.raw,
    dsn: Annotated[
        str | None,
        typer.Option(help="postgresql:// URL of --to raw; default: TSHOP_PG_DSN or the local server."),
    ] = None,
    landing_url: Annotated[
        str | None,
        typer.Option(
            envvar="TSHOP_LANDING_URL",
            show_default=False,
            help="The landing zone of --to landing and of the events, whatever --to (file:///... or "
            "s3://bucket/prefix); default file://<state dir>/landing.",
        ),
    ] = None,
    skip_loaded: Annotated[
        bool, typer.Option(help="Leave days already generated as they are instead of refusing.")
    ] = False,
    events: Annotated[
        bool,
        typer.Option(
            help="Also write each simulated day's web events and the reviews created that day into the landing "
            "zone, whatever --to: incoming/clickstream/<day>/clickstream-<day>.jsonl.gz and "
            "incoming/reviews/<day>/reviews-<day>.jsonl.gz (days already loaded are left as they are)."
        ),
    ] = True,
    browsing_sessions_per_buyer: Annotated[
        float,
        typer.Option(
            min=0,
            max=1000,
            help="The events' volume: browsing sessions (no purchase; 40% anonymous) per buyer of the day, "
            "beside each buyer's own session. About buyers x (7.8 + 3.8 x this) events a day: 1.2 million on "
            "an average day of 5,000,000 customers.",
        ),
    ] = shop_events.BROWSING_SESSIONS_PER_BUYER,
    encrypt_personal_data: Annotated[
        bool,
        typer.Option(
            envvar="TSHOP_ENCRYPT_PERSONAL_DATA",
            help="--to landing: write the customers' first_name, last_name and birth_date as AES-256-GCM "
            "envelopes under the install's personal-data key (made in the secrets file on first use; "
            "tshop/personal_data.py), which `tshop ingest` decrypts. Encrypted files are not "
            "byte-deterministic for a seed (a fresh nonce per value). No effect with --to raw: RAW holds "
            "plaintext.",
        ),
    ] = False,
) -> None:
    """Simulate DAYS business days from START_DATE into RAW (one transaction per day) or the landing zone."""
    if through is not None and start_date is not None:
        _fail("--start-date and --through exclude each other: --through continues from the last loaded day.")
    if to is Target.landing and dsn is not None:
        _fail("--dsn is the database of --to raw; --to landing writes files to --landing-url.")
    writer = _writer(to, dsn, landing_url, encrypt_personal_data)
    simulation = ShopSimulation(
        writer,
        seed=seed,
        initial_customers=customers,
        events=_event_sink(writer, landing_url) if events else None,
        event_rates=shop_events.EventRates(browsing_sessions_per_buyer=browsing_sessions_per_buyer),
    )
    started = time.monotonic()
    totals = {"lines": 0, "orders": 0, "events": 0}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # the days print their own lines; a refusal is not followed by an empty bar
    ) as progress:
        task = progress.add_task("simulating days", total=None if through else days)

        def on_day(report: DayReport) -> None:
            totals["lines"] += report.sale_lines
            totals["orders"] += report.orders
            totals["events"] += report.clickstream_events
            note = "already loaded, skipped" if report.skipped else (
                f"{report.orders:,} cheques, {report.sale_lines:,} lines, +{report.customers_added:,} customers, "
                f"{report.last_name_changes} renamed, {report.price_changes} repriced, {report.sale_corrections} corrected"
                + (f"; {report.clickstream_events:,} web events, {report.reviews:,} reviews" if events else "")
            )  # fmt: skip
            progress.console.print(f"{report.day} {report.day.strftime('%a')}: {note}")
            progress.advance(task)

        try:
            if through is not None:
                reports = simulation.catch_up(through.date(), new_shop_days=days, on_day=on_day)
            else:
                start = start_date.date() if start_date else DEFAULT_START_DATE
                reports = simulation.run(start, days, skip_loaded=skip_loaded, on_day=on_day)
        except Refused as refused:
            _fail(str(refused))
        except psycopg.Error as error:
            # the day in progress rolled back as a whole; the days printed above are in RAW
            _fail(f"PostgreSQL: {str(error).strip()}")
        except OSError as error:
            # the day in progress is marked as being written and is generated first next time, the same
            _fail(f"{simulation.writer.place}: {error}")
    if through is not None and not reports:
        place = simulation.writer.place
        console.print(
            f"{place[:1].upper()}{place[1:]} holds every business day through {through.date()}: "
            "nothing to simulate"
        )
        return
    console.print(
        f"{len(reports)} day(s): {totals['orders']:,} cheques, {totals['lines']:,} sale lines"
        + (f", {totals['events']:,} web events" if events else "")
        + f" in {time.monotonic() - started:.1f} s"
    )


def _writer(to: Target, dsn: str | None, landing_url: str | None, encrypt: bool = False) -> ShopWriter | str:
    """The DSN of --to raw, or the landing zone's writer (encrypting the personal columns when `encrypt`);
    defaults from `tshop.config` (read lazily: only when the option is not given)."""
    if to is Target.raw:
        if dsn is None:
            from tshop.config import settings

            dsn = settings().pg_dsn_as("loader")
        return dsn
    from datagen.landing import LandingWriter

    landing_url = _landing_url(landing_url)
    keys = _personal_data_keys() if encrypt else None
    try:
        return LandingWriter(landing_url, encrypt_with=keys)
    except (ImportError, ValueError) as error:
        # an unknown scheme, or one whose fsspec implementation (s3fs for s3://) is not installed
        _fail(f"--landing-url {landing_url!r} cannot be written: {error}")


def _personal_data_keys():
    """The install's personal-data keys with a current one (generated into the secrets file on first use)."""
    from tshop.config import settings
    from tshop.personal_data import PersonalDataError, keyring_for_encryption

    try:
        return keyring_for_encryption(settings())
    except PersonalDataError as error:
        _fail(f"--encrypt-personal-data: {error}")


def _landing_url(landing_url: str | None) -> str:
    if landing_url is None:
        from tshop.config import settings

        landing_url = settings().landing_url
    return landing_url


def _event_sink(writer: ShopWriter | str, landing_url: str | None) -> shop_events.EventSink:
    """The events' files in the landing zone: --to landing's own, or --landing-url's (TSHOP_LANDING_URL)."""
    from datagen.landing import LandingEventSink, LandingWriter

    url = writer.url if isinstance(writer, LandingWriter) else _landing_url(landing_url)
    try:
        return LandingEventSink(url)
    except (ImportError, ValueError) as error:
        _fail(f"--landing-url {url!r} cannot be written for the events: {error} (or pass --no-events)")


def _fail(message: str) -> NoReturn:
    # markup off: a message quotes PostgreSQL's and the user's text, which may hold [brackets]
    console.print("[red]error:[/red] ", end="")
    console.print(message, markup=False, highlight=False)
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
