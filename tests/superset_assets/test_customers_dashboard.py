"""The second dashboard, "T-Shop customers" (superset_assets/, over cdm.customer_monthly of CONTRACT section 9):
it renders every chart in a real browser in the manager's words, and every chart's numbers from Superset's
chart-data API equal SQL run on ClickHouse: customers per segment over the months, new against returning
customers per month, revenue by segment, coupons issued per segment and discount.

Its shop spans six weeks, so its months hold new and returning customers and more than one segment."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tshop import clients, dashboard, metrics
from tshop.config import Settings
from tshop.services._process import free_port

pytestmark = pytest.mark.slow

WAREHOUSE = "wh_customers_dashboard"
# six weeks up to the last Monday before today: always across a month boundary
_MONDAY = dt.date.today() - dt.timedelta(days=dt.date.today().weekday() or 7)
FIRST_DAY, DAYS = _MONDAY - dt.timedelta(days=41), 42
# a ReplacingMergeTree: FINAL hides the rows a load replaced and no merge has dropped yet (as the dataset does)
MART = "cdm.customer_monthly final"
# what a manager should not read on a tile: column names and SQL
TECHNICAL = (
    r"customer_id|customer_type|coupon_code|coupon_discount_pct|first_purchase_date|recency_days|"
    r"count\(|sum\(|uniq"
)

# each chart's numbers as SQL on ClickHouse, from the definitions the dashboard shows (one row per customer
# and month: a count of rows is a count of customers)
EXPECTED = {
    "Customers per segment by month": f"""
        select month, segment, count(customer_id) from {MART} group by month, segment""",
    "New and returning customers per month": f"""
        select month, if(first_purchase_date >= month, 'new', 'returning') as customer_type, count(customer_id)
        from {MART} group by month, customer_type""",
    "Revenue by segment": f"select segment, sum(revenue) from {MART} group by segment",
    "Coupons issued by segment and discount": f"""
        select segment, coupon_discount_pct, count(coupon_code) from {MART}
        group by segment, coupon_discount_pct""",
}


@pytest.fixture(scope="module")
def shop(pg_dsn: str, build_shop, test_settings: Settings) -> Iterator[Settings]:
    """Six generated weeks in a warehouse of their own, built into the test ClickHouse's `cdm`; the settings of
    a Superset on a free port (overrides the folder's four-day shop for this module)."""
    config = build_shop(WAREHOUSE, FIRST_DAY, DAYS, 3000, TSHOP_SUPERSET_PORT=str(free_port()))
    client = clients.clickhouse(config)
    yield config
    client.command("drop database if exists cdm")
    client.close()


@pytest.fixture(scope="module")
def expected(shop: Settings) -> dict[str, list[tuple]]:
    client = clients.clickhouse(shop)
    try:
        return {chart: sorted(client.query(sql).result_rows) for chart, sql in EXPECTED.items()}
    finally:
        client.close()


def test_the_shop_gives_the_dashboard_something_to_tell(shop: Settings, expected):
    """More than one month, new and returning customers, several segments; one row per customer and month."""
    client = clients.clickhouse(shop)
    try:
        rows, keys = client.query(f"select count(), uniqExact(customer_id, month) from {MART}").result_rows[0]
    finally:
        client.close()
    assert rows == keys > 0
    assert len({month for month, *_ in expected["Customers per segment by month"]}) >= 2
    assert {kind for _, kind, _ in expected["New and returning customers per month"]} == {"new", "returning"}
    assert len({segment for segment, _ in expected["Revenue by segment"]}) >= 3


def test_the_customers_dashboard_renders_every_chart_in_a_real_browser(
    superset: Settings, expected, browse_dashboard
):
    shown = browse_dashboard(
        dashboard.CUSTOMERS_DASHBOARD_SLUG,
        len(dashboard.CUSTOMERS_DASHBOARD_CHARTS),
        "superset_customers_dashboard.png",
    )
    assert shown.names == sorted(dashboard.CUSTOMERS_DASHBOARD_CHARTS)
    for name, text in shown.texts.items():
        assert "error" not in text.lower(), (name, text)
        assert "no results" not in text.lower(), (name, text)
        assert "No data" not in text, (name, text)
        assert not re.search(TECHNICAL, text), (name, text)
    assert shown.at_row_limit == [], (
        f"charts at their row limit, maybe showing part of their data: {shown.at_row_limit}"
    )
    assert Path(shown.screenshot).stat().st_size > 10_000
    # the filters: months (all of them by default) and segments
    assert re.search(r"Month\s", shown.filter_bar) and "Segment" in shown.filter_bar, shown.filter_bar
    # the coupons table in business words, one line per segment and discount with its count
    coupons = shown.texts["Coupons issued by segment and discount"]
    for header in ("Segment", "Discount (%)", "Coupons issued"):
        assert header in coupons, coupons
    for segment, discount, count in expected["Coupons issued by segment and discount"]:
        assert re.search(rf"\b{segment}\s+{discount}\s+{count:,}\b", coupons), (
            segment,
            discount,
            count,
            coupons,
        )
    assert max(shown.heights.values()) <= 500, shown.heights


def test_every_customers_chart_speaks_business(superset_api):
    """Titles, descriptions and axes in the manager's words; revenue in USD; every metric named."""
    charts = superset_api.charts(dashboard.CUSTOMERS_DASHBOARD_SLUG)
    assert sorted(charts) == sorted(dashboard.CUSTOMERS_DASHBOARD_CHARTS)
    dataset_ids = set()
    for name, chart_id in charts.items():
        chart = superset_api.get(f"/api/v1/chart/{chart_id}")["result"]
        params = json.loads(chart["params"])
        description = chart["description"]
        assert description and not re.search(TECHNICAL, description), (name, description)
        if params["viz_type"].startswith("echarts_timeseries"):
            assert (params["x_axis_title"], params["y_axis_title"]) == ("Month", "Customers"), name
        dataset_ids.add(json.loads(chart["query_context"])["datasource"]["id"])
    (dataset_id,) = dataset_ids
    dataset = superset_api.get(f"/api/v1/dataset/{dataset_id}")["result"]
    assert (dataset["schema"], dataset["table_name"]) == ("cdm", "customer_monthly")
    metrics_by_name = {metric["metric_name"]: metric for metric in dataset["metrics"]}
    assert metrics_by_name["revenue"]["currency"] == {"symbol": "USD", "symbolPosition": "prefix"}
    for metric in metrics_by_name.values():
        assert metric["verbose_name"], metric["metric_name"]
    for column in dataset["columns"]:
        assert column["verbose_name"], column["column_name"]


def _chart_rows(chart: str, data: list[dict]) -> list[tuple]:
    """The chart-data API's rows in the shape of the chart's SQL (months as dates, series unpivoted)."""

    def month(value) -> dt.date:
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC).date()

    if chart in ("Customers per segment by month", "New and returning customers per month"):
        # the bars pivot the segments (or new / returning) into series: one column each, null where none
        return sorted(
            (month(row["month"]), series, value)
            for row in data
            for series, value in row.items()
            if series != "month" and value is not None
        )
    if chart == "Revenue by segment":
        return sorted((row["segment"], row["revenue"]) for row in data)
    if chart == "Coupons issued by segment and discount":
        return sorted((row["segment"], row["coupon_discount_pct"], row["coupons"]) for row in data)
    raise AssertionError(f"no rule for the chart {chart!r}")


@pytest.mark.parametrize("chart", dashboard.CUSTOMERS_DASHBOARD_CHARTS)
def test_every_customers_chart_shows_the_numbers_of_sql_on_clickhouse(chart: str, superset_api, expected):
    charts = superset_api.charts(dashboard.CUSTOMERS_DASHBOARD_SLUG)
    assert expected[chart], chart
    shown = _chart_rows(chart, superset_api.chart_data(charts[chart]))
    assert metrics.normalised(shown) == metrics.normalised(expected[chart]), chart
