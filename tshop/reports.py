"""Daily and month-end sales reports: built from PostgreSQL's `cdm.sales_datamart` and written under
TSHOP_REPORTS_URL (CONTRACT section 9).

A report covers one period, a business day or a calendar month, and is two files:
- `daily/YYYY-MM-DD.csv` / `monthly/YYYY-MM.csv`: one row per `product_category` (sorted), with `orders`
  (distinct order_id), `items` (sum of quantity), `customers` (distinct customer_id) and `revenue` (sum of
  total_cost) of the mart's current lines (`is_current`) whose `sale_date` is in the period. Items and revenue
  add up to the period's totals; orders and customers do not (an order or a customer may span categories);
- the same name with `.html`: a self-contained page (inline CSS and SVG, no script, nothing fetched) with
  the period's totals, the table, and charts drawn by matplotlib's SVG backend.

The same data gives the same bytes: nothing records when a report was written (the one time shown, "data as
of", is the newest line version in the report), the SVG ids come from a fixed hash salt, and the SVG carries
no date. So a re-run day rewrites its files unchanged.

Which reports a pipeline run writes (`write_reports_of_run`) is `due_reports`: the day it built, every
earlier day with sales that has no report yet (a run that caught up several days), every finished month with
sales that has no report yet, and the month of its day when that day ends a month (always rewritten, so a
re-run of a month's last day corrects its report). `tshop report` writes one report on demand.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import fsspec
import jinja2
import psycopg
from fsspec.implementations.local import LocalFileSystem
from markupsafe import Markup

from tshop import clients
from tshop.config import Settings
from tshop.errors import TShopError

DAILY = "daily"
MONTHLY = "monthly"
CSV_COLUMNS = ("product_category", "orders", "items", "customers", "revenue")
_DAILY_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(csv|html)$")
_MONTHLY_NAME = re.compile(r"^(\d{4}-\d{2})\.(csv|html)$")


class ReportError(TShopError):
    """A report cannot be made or written; the message says which and why."""


# -- periods --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Period:
    """A report's period: one business day, or one calendar month (`first` is its first day)."""

    kind: str  # DAILY or MONTHLY
    first: dt.date

    @classmethod
    def day(cls, day: dt.date) -> Period:
        return cls(DAILY, day)

    @classmethod
    def month_of(cls, day: dt.date) -> Period:
        return cls(MONTHLY, day.replace(day=1))

    @property
    def last(self) -> dt.date:
        if self.kind == DAILY:
            return self.first
        return self.first.replace(day=calendar.monthrange(self.first.year, self.first.month)[1])

    @property
    def name(self) -> str:
        """The file name without its extension: 2024-03-01 or 2024-03."""
        return self.first.isoformat() if self.kind == DAILY else self.first.strftime("%Y-%m")

    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=offset) for offset in range((self.last - self.first).days + 1)]

    def __str__(self) -> str:
        return f"{'daily' if self.kind == DAILY else 'monthly'} report {self.name}"


def parse_day(text: str, today: dt.date | None = None) -> Period:
    """The daily period of `text` (YYYY-MM-DD); refused unless that day has ended (UTC)."""
    try:
        day = dt.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise ReportError(f"--day {text!r} is not a day (YYYY-MM-DD, such as 2024-03-01)")
    _refuse_unfinished(Period.day(day), today)
    return Period.day(day)


def parse_month(text: str, today: dt.date | None = None) -> Period:
    """The monthly period of `text` (YYYY-MM); refused unless the month's last day has ended (UTC)."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ReportError(f"--month {text!r} is not a month (YYYY-MM, such as 2024-03)")
    period = Period.month_of(dt.date(int(match[1]), int(match[2]), 1))
    _refuse_unfinished(period, today)
    return period


def _refuse_unfinished(period: Period, today: dt.date | None) -> None:
    # a report describes a period that is over: a day's sales keep arriving until it ends
    today = today or dt.datetime.now(dt.UTC).date()
    if period.last >= today:
        what = f"day {period.name}" if period.kind == DAILY else f"month {period.name} (to {period.last})"
        raise ReportError(
            f"{what} is not over yet (it is {today} UTC): a report covers a day or month that has ended, "
            "and nothing was written"
        )


# -- which reports a run writes ---------------------------------------------------------------------------


def due_reports(business_day: dt.date, sale_days: Iterable[dt.date], written: set[Period]) -> list[Period]:
    """The reports the run of `business_day` writes, days first, each in date order.

    `sale_days` are the days with current mart lines (up to `business_day`); `written` the reports that
    exist (both files). The day itself is always (re)written, with or without sales; an earlier day or a
    finished month only when its report is missing; the month ending on `business_day` always.
    """
    sale_days = sorted(day for day in set(sale_days) if day <= business_day)
    missing_days = [day for day in sale_days if day < business_day and Period.day(day) not in written]
    due = [Period.day(day) for day in [*missing_days, business_day]]
    for month in sorted({Period.month_of(day) for day in [*sale_days, business_day]}):
        ends_with_this_day = month.last == business_day  # always (re)written by the run of its last day
        if ends_with_this_day or (month.last < business_day and month not in written):
            due.append(month)
    return due


# -- the figures ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Orders, items, customers and revenue of a set of current mart lines."""

    orders: int
    items: int
    customers: int
    revenue: Decimal


@dataclass(frozen=True)
class Report:
    period: Period
    categories: list[tuple[str, Figures]]  # sorted by category
    totals: Figures  # orders and customers counted once over the whole period
    lines: int  # current sale lines
    data_as_of: dt.datetime | None  # the newest line version's valid_from: derived from the data
    revenue_per_day: list[tuple[dt.date, Decimal]]  # every day of the period, 0 without sales


def read_report(conn: psycopg.Connection, period: Period) -> Report:
    """The period's figures from the mart's current lines, all read from one snapshot of the database.
    `conn` has no transaction open (an autocommit connection)."""
    bounds = (period.first, period.last)
    where = "where is_current and sale_date between %s and %s"  # the partial index on sale_date serves it
    figures = "count(distinct order_id), coalesce(sum(quantity), 0), count(distinct customer_id), coalesce(sum(total_cost), 0)"
    # one repeatable-read transaction: a run building the mart meanwhile cannot make the totals disagree
    # with the categories
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        by_category = conn.execute(
            f"select product_category, {figures} from cdm.sales_datamart {where} group by product_category",
            bounds,
        ).fetchall()
        *total, lines, data_as_of = conn.execute(
            f"select {figures}, count(*), max(valid_from) from cdm.sales_datamart {where}", bounds
        ).fetchone()
        per_day = dict(
            conn.execute(
                f"select sale_date, sum(total_cost) from cdm.sales_datamart {where} group by sale_date",
                bounds,
            ).fetchall()
        )
    # sorted here rather than by the database, whose collation could order names differently elsewhere
    categories = sorted(((category or "", Figures(*rest)) for category, *rest in by_category))
    return Report(
        period=period,
        categories=categories,
        totals=Figures(*total),
        lines=lines,
        data_as_of=data_as_of,
        revenue_per_day=[(day, per_day.get(day, Decimal("0.00"))) for day in period.days()],
    )


# -- rendering ----------------------------------------------------------------------------------------------


def render_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for category, figures in report.categories:
        writer.writerow((category, figures.orders, figures.items, figures.customers, figures.revenue))
    return out.getvalue().encode()


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("tshop", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TEMPLATES.filters["count"] = lambda value: f"{value:,}"
_TEMPLATES.filters["money"] = lambda value: f"{value:,.2f}"


def render_html(report: Report) -> bytes:
    period = report.period
    first = period.first
    # names spelt out here: strftime's %A and %B follow the process's locale, and the bytes must not
    month = _MONTH_NAMES[first.month - 1]
    if period.kind == DAILY:
        title = f"Daily sales report, {_DAY_NAMES[first.weekday()]} {first.day} {month} {first.year}"
    else:
        title = f"Month-end sales report, {month} {first.year}"
    charts = []
    if report.lines:
        charts.append(("Revenue by category (USD)", _category_chart(report), "category"))
        if period.kind == MONTHLY:
            charts.append(("Revenue per day (USD)", _day_chart(report), "day"))
    page = _TEMPLATES.get_template("report.html.j2").render(
        title=title,
        report=report,
        period_range=f"{period.first} to {period.last}" if period.kind == MONTHLY else str(period.first),
        data_as_of=_moment(report.data_as_of),
        shares=[_share(figures.revenue, report.totals.revenue) for _, figures in report.categories],
        charts=[(caption, Markup(svg), key) for caption, svg, key in charts],
    )
    return page.encode()


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")  # fmt: skip


def _moment(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        # a timestamptz comes back in the session's time zone, which must not change the bytes
        return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def _share(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole * 100:.1f} %" if whole else "-"


# Fixed style, so the SVG depends on the data and matplotlib's version only. Text stays text (searchable,
# small) in the page's sans-serif; the SVG ids come from a fixed salt instead of a random one.
_CHART_STYLE = {
    "svg.hashsalt": "tshop-reports",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_BAR_COLOR = "#3b6ea8"
_WEEKEND_COLOR = "#9bb7d4"
_USD = "{x:,.0f}"


def _category_chart(report: Report) -> str:
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    names = [category for category, _ in report.categories]
    revenue = [float(figures.revenue) for _, figures in report.categories]
    with rc_context(_CHART_STYLE):
        # a Figure without pyplot: no global figure state, safe in a long-lived process
        figure = Figure(figsize=(7.5, 0.9 + 0.32 * len(names)), layout="constrained")
        axes = figure.add_subplot()
        bars = axes.barh(names, revenue, color=_BAR_COLOR)
        axes.invert_yaxis()  # the table's order, top to bottom
        axes.bar_label(bars, labels=[f"{value:,.2f}" for value in revenue], padding=3)
        axes.xaxis.set_major_formatter(StrMethodFormatter(_USD))
        axes.margins(x=0.18)
        return _svg(figure, "category")


def _day_chart(report: Report) -> str:
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    days = [day.day for day, _ in report.revenue_per_day]
    revenue = [float(value) for _, value in report.revenue_per_day]
    colors = [_WEEKEND_COLOR if day.weekday() >= 5 else _BAR_COLOR for day, _ in report.revenue_per_day]
    with rc_context(_CHART_STYLE):
        figure = Figure(figsize=(7.5, 2.8), layout="constrained")
        axes = figure.add_subplot()
        axes.bar(days, revenue, color=colors)
        axes.set_xticks(days, [str(day) for day in days], fontsize=7)
        axes.set_xlim(0.4, len(days) + 0.6)
        axes.set_xlabel("day of the month (lighter: weekend)")
        axes.yaxis.set_major_formatter(StrMethodFormatter(_USD))
        return _svg(figure, "day")


def _svg(figure, prefix: str) -> str:
    """The figure as an `<svg>` element to inline in HTML, its ids prefixed so two charts on one page never
    share one (matplotlib names every figure's groups `figure_1`, `axes_1`, ...)."""
    out = io.StringIO()
    # no Date (the time of writing), and none of the other metadata: it only links to matplotlib's site
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE: not allowed inside HTML
    return re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{prefix}-", svg).strip()


# -- writing ------------------------------------------------------------------------------------------------


def reports_location(config: Settings) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of TSHOP_REPORTS_URL."""
    url = config.reports_url
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        # an unknown scheme, or one whose fsspec implementation (s3fs, gcsfs) is not installed
        raise ReportError(f"TSHOP_REPORTS_URL={url!r} cannot be written: {error}") from None


def write_report(config: Settings, period: Period, conn: psycopg.Connection | None = None) -> list[str]:
    """Build the period's report from the warehouse and write its CSV and HTML; the URLs written."""
    fs, root = reports_location(config)
    if conn is None:
        with _warehouse(config) as own:
            return write_report(config, period, own)
    report = read_report(conn, period)
    written = []
    # the CSV first: a report counts as written when both files exist, so an interrupted pair is redone
    for extension, data in (("csv", render_csv(report)), ("html", render_html(report))):
        path = f"{root.rstrip('/')}/{period.kind}/{period.name}.{extension}"
        _write_file(fs, path, data)
        written.append(fs.unstrip_protocol(path))
    return written


def _write_file(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    folder, name = path.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)  # an object store's put replaces the object whole, or not at all
        return
    # a reader (or a crash) never sees half a file: write beside it, then rename over it (atomic on POSIX)
    temporary = f"{folder}/.{name}.{os.getpid()}.tmp"
    try:
        fs.pipe_file(temporary, data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextmanager
def _warehouse(config: Settings) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the warehouse; its usual failures said in a sentence."""
    try:
        with clients.postgres(config, "reader", autocommit=True, connect_timeout=10) as conn:
            yield conn
    except psycopg.errors.UndefinedTable:
        raise ReportError(
            "cdm.sales_datamart does not exist yet: build the warehouse first (make pipeline)"
        ) from None
    except psycopg.OperationalError as error:
        raise ReportError(f"the warehouse (PostgreSQL) cannot be reached: {error}".strip()) from None


def written_reports(config: Settings) -> set[Period]:
    """The reports under TSHOP_REPORTS_URL that have both their files."""
    fs, root = reports_location(config)
    found: dict[Period, set[str]] = {}
    for kind, pattern in ((DAILY, _DAILY_NAME), (MONTHLY, _MONTHLY_NAME)):
        folder = f"{root.rstrip('/')}/{kind}"
        names = [path.rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False)] if fs.isdir(folder) else []
        for name in names:
            match = pattern.match(name)
            if not match:
                continue
            try:
                first = dt.date.fromisoformat(match[1] if kind == DAILY else f"{match[1]}-01")
            except ValueError:
                continue
            found.setdefault(Period(kind, first), set()).add(match[2])
    return {period for period, extensions in found.items() if extensions == {"csv", "html"}}


def sale_days(conn: psycopg.Connection, through: dt.date) -> list[dt.date]:
    """The days up to `through` with current mart lines.

    A loose index scan on the partial index (sale_date) where is_current: one index probe per day found,
    where `select distinct sale_date` would read every current line of the mart (tens of millions at the
    contract's full scale) on every run.
    """
    rows = conn.execute(
        """with recursive day as (
               (select sale_date from cdm.sales_datamart
                where is_current and sale_date <= %(through)s order by sale_date limit 1)
               union all
               select (select sale_date from cdm.sales_datamart
                       where is_current and sale_date > day.sale_date and sale_date <= %(through)s
                       order by sale_date limit 1)
               from day where day.sale_date is not null
           )
           select sale_date from day where sale_date is not null""",
        {"through": through},
    ).fetchall()
    return [day for (day,) in rows]


def write_reports_of_run(config: Settings, business_day: dt.date) -> list[str]:
    """Write the reports the run of `business_day` owes (`due_reports`); the URLs written."""
    written = []
    with _warehouse(config) as conn:
        days = sale_days(conn, business_day)
        for period in due_reports(business_day, days, written_reports(config)):
            written += write_report(config, period, conn)
    return written
