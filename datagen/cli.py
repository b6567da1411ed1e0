"""`tshop-datagen`: simulate business days of the shop into PostgreSQL's RAW layer."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datagen.simulation import DayAlreadyLoaded, DayReport, ShopSimulation

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Simulate the T-Shop clothing shop into RAW."""


@app.command(
    epilog="Example: tshop-datagen generate --customers 5000000 --days 90 --seed 7 --start-date 2024-03-04"
)
def generate(
    customers: Annotated[
        int, typer.Option(min=1, help="Customers of a new shop (a continuing shop keeps its own).")
    ] = 20_000,
    days: Annotated[int, typer.Option(min=1, help="Business days to simulate.")] = 7,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed and arguments give the same rows.")
    ] = 42,
    start_date: Annotated[
        dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First business day (YYYY-MM-DD).")
    ] = dt.datetime(2024, 3, 4),
    dsn: Annotated[
        str | None, typer.Option(help="postgresql:// URL; default: TSHOP_PG_DSN or the local server.")
    ] = None,
    skip_loaded: Annotated[
        bool, typer.Option(help="Leave days already in RAW as they are instead of refusing.")
    ] = False,
) -> None:
    """Simulate DAYS business days from START_DATE into RAW, one transaction per day."""
    if dsn is None:
        from tshop.config import settings

        dsn = settings().pg_dsn()
    simulation = ShopSimulation(dsn, seed=seed, initial_customers=customers)
    started = time.monotonic()
    totals = {"lines": 0, "orders": 0}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("simulating days", total=days)

        def on_day(report: DayReport) -> None:
            totals["lines"] += report.sale_lines
            totals["orders"] += report.orders
            note = "already loaded, skipped" if report.skipped else (
                f"{report.orders:,} cheques, {report.sale_lines:,} lines, +{report.customers_added:,} customers, "
                f"{report.last_name_changes} renamed, {report.price_changes} repriced, {report.sale_corrections} corrected"
            )  # fmt: skip
            progress.console.print(f"{report.day} {report.day.strftime('%a')}: {note}")
            progress.advance(task)

        try:
            simulation.run(start_date.date(), days, skip_loaded=skip_loaded, on_day=on_day)
        except DayAlreadyLoaded as refused:
            console.print(f"[red]error:[/red] {refused}")
            raise typer.Exit(1) from None
    console.print(
        f"{days} day(s): {totals['orders']:,} cheques, {totals['lines']:,} sale lines in {time.monotonic() - started:.1f} s"
    )


if __name__ == "__main__":
    app()
