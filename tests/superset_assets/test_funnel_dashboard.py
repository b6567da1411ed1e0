"""The third dashboard, "T-Shop funnel" (superset_assets/, over cdm.conversion_funnel_daily and cdm.product_rating
of CONTRACT section 8): it renders every chart in a real browser in the manager's words, and every chart's numbers
from Superset's chart-data API equal SQL run on ClickHouse: the funnel from sessions to buyers, the daily
conversion beside the expected 1% / 5%, the conversion over the days shown, the reviews and the average rating by
product category (weighted by reviews).

It runs on the folder's four-day shop (Friday to Monday: weekdays and a weekend)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tshop import clients, dashboard, metrics
from tshop.config import Settings

pytestmark = pytest.mark.slow

FUNNEL = "cdm.conversion_funnel_daily"
RATING = "cdm.product_rating"
# what a manager should not read on a tile: column names and SQL
TECHNICAL = (
    r"event_date|product_viewers|cart_adders|expected_conversion|average_rating|product_category|step_count|"
    r"count_at_step|sum\(|avg\(|nullIf"
)

# each chart's numbers as SQL on ClickHouse, straight from the two tables
EXPECTED = {
    "Sessions to buyers": f"""
        select step, step_count from (
            select sum(sessions) as s, sum(product_viewers) as v, sum(cart_adders) as c, sum(buyers) as b
            from {FUNNEL}
        )
        array join ['Sessions', 'Product viewers', 'Cart adders', 'Buyers'] as step, [s, v, c, b] as step_count""",
    "Conversion per day": f"select event_date, conversion, expected_conversion from {FUNNEL}",
    "Conversion": f"select sum(buyers) / sum(customers) from {FUNNEL}",
    "Reviews": f"select sum(reviews) from {RATING}",
    "Average rating by category": f"""
        select product_category, sum(average_rating * reviews) / sum(reviews) from {RATING}
        group by product_category""",
}


@pytest.fixture(scope="module", autouse=True)
def funnel_marts(shop: Settings) -> Iterator[Settings]:
    """The two marts the dashboard reads, built by the ClickHouse project from the shop's own clickstream and
    reviews (the `shop` fixture generates and loads them): each must have rows to show."""
    client = clients.clickhouse(shop)
    try:
        assert client.command(f"select count() from {FUNNEL}") > 0
        assert client.command(f"select count() from {RATING}") > 0
    finally:
        client.close()
    yield shop


@pytest.fixture(scope="module")
def expected(shop: Settings) -> dict[str, list[tuple]]:
    client = clients.clickhouse(shop)
    try:
        return {chart: sorted(client.query(sql).result_rows) for chart, sql in EXPECTED.items()}
    finally:
        client.close()


def test_the_marts_give_the_dashboard_something_to_tell(expected):
    """Weekdays and a weekend day, each step of the funnel no wider than the one before, several categories."""
    days = expected["Conversion per day"]
    assert {expected_conversion for _, _, expected_conversion in days} == {0.01, 0.05}, days
    steps = dict(expected["Sessions to buyers"])
    counts = [steps[step] for step in ("Sessions", "Product viewers", "Cart adders", "Buyers")]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0, steps
    assert len(expected["Average rating by category"]) >= 3


def test_the_funnel_dashboard_renders_every_chart_in_a_real_browser(
    superset: Settings, expected, browse_dashboard
):
    shown = browse_dashboard(
        dashboard.FUNNEL_DASHBOARD_SLUG,
        len(dashboard.FUNNEL_DASHBOARD_CHARTS),
        "superset_funnel_dashboard.png",
    )
    assert shown.names == sorted(dashboard.FUNNEL_DASHBOARD_CHARTS)
    for name, text in shown.texts.items():
        assert "error" not in text.lower(), (name, text)
        assert "no results" not in text.lower(), (name, text)
        assert "No data" not in text, (name, text)
        assert not re.search(TECHNICAL, text), (name, text)
    assert shown.at_row_limit == [], (
        f"charts at their row limit, maybe showing part of their data: {shown.at_row_limit}"
    )
    assert Path(shown.screenshot).stat().st_size > 10_000
    # the day filter opens on the last month, which holds every day of the shop: the tiles show all of it
    assert re.search(r"Day\s+Last month\s", shown.filter_bar), shown.filter_bar
    # the conversion as a percentage, the reviews as a count
    ((conversion,),) = expected["Conversion"]
    assert f"{conversion:.2%}" in shown.texts["Conversion"], shown.texts["Conversion"]
    ((reviews,),) = expected["Reviews"]
    assert f"{reviews:,}" in shown.texts["Reviews"], shown.texts["Reviews"]
    for name in ("Conversion", "Reviews"):
        assert shown.heights[name] <= 220, (name, shown.heights[name])
    assert max(shown.heights.values()) <= 500, shown.heights


def test_every_funnel_chart_speaks_business(superset_api):
    """Titles, descriptions and axes in the manager's words; conversion as a percentage; every metric named."""
    charts = superset_api.charts(dashboard.FUNNEL_DASHBOARD_SLUG)
    assert sorted(charts) == sorted(dashboard.FUNNEL_DASHBOARD_CHARTS)
    dataset_ids = set()
    for name, chart_id in charts.items():
        chart = superset_api.get(f"/api/v1/chart/{chart_id}")["result"]
        params = json.loads(chart["params"])
        description = chart["description"]
        assert description and not re.search(TECHNICAL, description), (name, description)
        dataset_ids.add(json.loads(chart["query_context"])["datasource"]["id"])
    axes = {
        "Conversion per day": ("Day", "Customers who bought", ".1%"),
        "Average rating by category": ("Product category", "Average rating (stars)", ".2f"),
    }
    for name, (x_title, y_title, y_format) in axes.items():
        params = json.loads(superset_api.get(f"/api/v1/chart/{charts[name]}")["result"]["params"])
        assert (params["x_axis_title"], params["y_axis_title"], params["y_axis_format"]) == (
            x_title,
            y_title,
            y_format,
        ), name
    tables = set()
    for dataset_id in dataset_ids:
        dataset = superset_api.get(f"/api/v1/dataset/{dataset_id}")["result"]
        tables.add((dataset["schema"], dataset["table_name"]))
        for metric in dataset["metrics"]:
            assert metric["verbose_name"], metric["metric_name"]
            if metric["metric_name"] in ("conversion", "expected_conversion"):
                assert metric["d3format"] == ".2%", metric
        for column in dataset["columns"]:
            assert column["verbose_name"], column["column_name"]
    assert tables == {
        ("cdm", "conversion_funnel_daily"),
        ("cdm", "conversion_funnel_steps"),
        ("cdm", "product_rating"),
    }


def _chart_rows(chart: str, data: list[dict]) -> list[tuple]:
    """The chart-data API's rows in the shape of the chart's SQL (days as dates)."""

    def day(value) -> dt.date:
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC).date()

    if chart == "Sessions to buyers":
        return sorted((row["step"], row["count_at_step"]) for row in data)
    if chart == "Conversion per day":
        return sorted((day(row["event_date"]), row["conversion"], row["expected_conversion"]) for row in data)
    if chart == "Conversion":
        return [(row["conversion"],) for row in data]
    if chart == "Reviews":
        return [(row["reviews"],) for row in data]
    if chart == "Average rating by category":
        return sorted((row["product_category"], row["average_rating"]) for row in data)
    raise AssertionError(f"no rule for the chart {chart!r}")


@pytest.mark.parametrize("chart", dashboard.FUNNEL_DASHBOARD_CHARTS)
def test_every_funnel_chart_shows_the_numbers_of_sql_on_clickhouse(chart: str, superset_api, expected):
    charts = superset_api.charts(dashboard.FUNNEL_DASHBOARD_SLUG)
    assert expected[chart], chart
    shown = _chart_rows(chart, superset_api.chart_data(charts[chart]))
    assert metrics.normalised(shown) == metrics.normalised(expected[chart]), chart
