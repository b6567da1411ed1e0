"""The dashboards as code (superset_assets/): "T-Shop sales" renders in a real browser as a manager would show it
(business labels, money in dollars, the most popular size with its share, when the data was loaded, the last
month by default), every chart shows what CONTRACT section 3 defines, re-importing a bundle that dropped a
chart drops it from its dashboard but never a chart the other dashboard shows, the bundle (both dashboards)
survives export and import unchanged, and a wrong ClickHouse password at import changes nothing.
"T-Shop customers" has its own rendering and numbers tests (test_customers_dashboard.py)."""

from __future__ import annotations

import datetime as dt
import filecmp
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tshop import clients, dashboard, metrics
from tshop.config import Settings, settings

pytestmark = pytest.mark.slow

# what a manager should not read on a tile: column names and SQL
TECHNICAL = r"total_cost|sum\(|quantity|product_|customer_|order_id|sale_date"


def test_the_dashboard_renders_every_chart_in_a_real_browser(shop: Settings, browse_dashboard):
    shown = browse_dashboard(
        dashboard.DASHBOARD_SLUG, len(dashboard.DASHBOARD_CHARTS), "superset_dashboard.png"
    )
    names, texts, at_row_limit, filter_bar, heights = (
        shown.names, shown.texts, shown.at_row_limit, shown.filter_bar, shown.heights
    )  # fmt: skip

    assert names == sorted(dashboard.DASHBOARD_CHARTS)
    for name, text in texts.items():
        assert "error" not in text.lower(), (name, text)
        assert "no results" not in text.lower(), (name, text)
        assert "No data" not in text, (name, text)
        # business labels: no column or SQL names on a tile
        assert not re.search(TECHNICAL, text), (name, text)
    assert at_row_limit == [], f"charts at their row limit, maybe showing part of their data: {at_row_limit}"
    assert Path(shown.screenshot).stat().st_size > 10_000

    # the date filter opens on the last month, which holds every generated day: the tiles show all the data
    assert re.search(r"Sale date\s+Last month\s", filter_bar), filter_bar
    client = clients.clickhouse(shop)
    try:
        mart = metrics.MART["clickhouse"]
        revenue, cheques = client.query(
            f"select sum(total_cost), uniqExact(order_id) from {mart}"
        ).result_rows[0]
        size = client.query(metrics.DEFINITIONS["most popular size"].format(mart=mart)).result_rows[0][0]
        share = client.query(
            f"select sumIf(quantity, product_size = {{size:String}}) * 100 / sum(quantity) from {mart}",
            parameters={"size": size},
        ).result_rows[0][0]
        loaded_at = client.query("select max(loaded_at) from cdm.sales_datamart").result_rows[0][0]
    finally:
        client.close()
    # money in dollars, the same way on every money tile
    assert f"$ {revenue:,.2f}" in texts["Revenue"], texts["Revenue"]
    assert f"$ {float(revenue) / cheques:,.2f}" in texts["Average cheque"], texts["Average cheque"]
    # the most popular size as a tile: the size, and its share of the items sold beside it
    shown = re.search(rf"^{re.escape(size)}\s+([\d.]+)% of items sold", texts["Most popular size"], re.M)
    assert shown, texts["Most popular size"]
    assert abs(float(shown.group(1)) - float(share)) <= 0.05 + 1e-9, (shown.group(1), share)
    # when the data was loaded: the mart's latest loaded_at, in UTC to the minute
    assert f"{loaded_at:%Y-%m-%d %H:%M}" in texts["Data as of"], texts["Data as of"]
    assert "UTC" in texts["Data as of"]
    # no tall empty tiles: the number tiles are short, the charts at most a screen high
    for name in (
        "Revenue",
        "Average cheque",
        "Items per cheque",
        "Customers",
        "Average age",
        "Most popular size",
        "Data as of",
    ):
        assert heights[name] <= 220, (name, heights[name])
    assert max(heights.values()) <= 500, heights


def test_every_chart_speaks_business(superset_api):
    """Titles and axes in the manager's words; money metrics carry their currency in the dataset."""
    for name, chart_id in superset_api.charts().items():
        chart = superset_api.get(f"/api/v1/chart/{chart_id}")["result"]
        params = json.loads(chart["params"])
        description = chart["description"]
        assert description and not re.search(TECHNICAL, description), (name, description)
        if params["viz_type"].startswith("echarts_timeseries"):
            assert (params["x_axis_title"], params["y_axis_title"]) == ("Sale date", "Revenue (USD)"), name
    dataset_id = superset_api.get(f"/api/v1/chart/{superset_api.charts()['Revenue']}")["result"][
        "query_context"
    ]
    dataset = superset_api.get(f"/api/v1/dataset/{json.loads(dataset_id)['datasource']['id']}")
    metrics_by_name = {metric["metric_name"]: metric for metric in dataset["result"]["metrics"]}
    for money in ("revenue", "average_cheque"):
        assert metrics_by_name[money]["currency"] == {"symbol": "USD", "symbolPosition": "prefix"}, money
    for metric in metrics_by_name.values():
        assert metric["verbose_name"], metric["metric_name"]


def _chart_rows(metric: str, data: list[dict]) -> list[tuple]:
    """The chart-data API's rows in the shape of the metric's definition (dates as dates, series unpivoted)."""

    def day(value) -> dt.date:
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC).date()

    if metric == "revenue per day":
        return sorted((day(row["sale_date"]), row["revenue"]) for row in data)
    if metric == "revenue per day and category":
        # the chart pivots categories into series: one column per category, null where it sold nothing
        return sorted(
            (day(row["sale_date"]), category, value)
            for row in data
            for category, value in row.items()
            if category != "sale_date" and value is not None
        )
    if metric == "revenue by age band":
        return sorted((row["age_band"], row["revenue"]) for row in data)
    (row,) = data
    return [(row[metric.replace(" ", "_")],)]  # a single number or size: the metric of that name


def test_every_chart_shows_its_metric_as_the_contract_defines_it(shop: Settings, superset_api):
    charts = superset_api.charts()
    assert sorted(charts) == sorted(dashboard.DASHBOARD_CHARTS)
    client = clients.clickhouse(shop)
    try:
        for chart, metric in dashboard.CHART_METRICS.items():
            definition = metrics.DEFINITIONS[metric].format(mart=metrics.MART["clickhouse"])
            expected = sorted(client.query(definition).result_rows)
            assert expected, metric
            shown = _chart_rows(metric, superset_api.chart_data(charts[chart]))
            assert metrics.normalised(shown) == metrics.normalised(expected), chart
    finally:
        client.close()


def test_reimporting_a_bundle_without_a_chart_takes_it_off_the_dashboard(
    superset: Settings, superset_api, tmp_path: Path
):
    """Superset merges an overwriting import's charts with those already on the dashboard (apache/superset
    #22127); the bundle is the dashboard's source, so a chart it dropped goes."""
    bundle = tmp_path / "bundle"
    shutil.copytree(dashboard.BUNDLE, bundle)
    dropped = "Average age"
    chart_file = bundle / "charts" / "Average_age.yaml"
    dropped_uuid = yaml.safe_load(chart_file.read_text())["uuid"]
    chart_file.unlink()
    dashboard_file = bundle / "dashboards" / "T-Shop_sales.yaml"
    config = yaml.safe_load(dashboard_file.read_text())
    _unplace_chart(config, dropped_uuid)
    dashboard_file.write_text(yaml.safe_dump(config, sort_keys=False))
    assert dropped in superset_api.charts()

    def charts_named(name: str) -> int:
        query = f"(filters:!((col:slice_name,opr:eq,value:'{name}')))"
        return superset_api.get("/api/v1/chart/", q=query)["count"]

    try:
        for _ in range(2):  # and once more: the same bundle again changes nothing
            dashboard.import_dashboard(superset, bundle)
            assert sorted(superset_api.charts()) == sorted(set(dashboard.DASHBOARD_CHARTS) - {dropped})
            # no other dashboard showed it: it is gone, not left behind unlinked
            assert charts_named(dropped) == 0
            # the other dashboard of the bundle keeps its charts
            customers = superset_api.charts(dashboard.CUSTOMERS_DASHBOARD_SLUG)
            assert sorted(customers) == sorted(dashboard.CUSTOMERS_DASHBOARD_CHARTS)
    finally:
        dashboard.import_dashboard(superset)
    assert sorted(superset_api.charts()) == sorted(dashboard.DASHBOARD_CHARTS)
    assert charts_named(dropped) == 1


def _place_chart(config: dict, chart: dict) -> None:
    """Put the chart (its file's config) on the dashboard (its file's config), in a row of its own at the end."""
    row, place = "ROW-moved", "CHART-moved"
    config["position"]["GRID_ID"]["children"].append(row)
    config["position"][row] = {
        "type": "ROW",
        "id": row,
        "children": [place],
        "parents": ["ROOT_ID", "GRID_ID"],
        "meta": {"background": "BACKGROUND_TRANSPARENT"},
    }
    chart_id = max(item["meta"]["chartId"] for item in config["position"].values() if _is_chart(item)) + 1
    config["position"][place] = {
        "type": "CHART",
        "id": place,
        "children": [],
        "parents": ["ROOT_ID", "GRID_ID", row],
        "meta": {
            "width": 4,
            "height": 24,
            "chartId": chart_id,
            "uuid": chart["uuid"],
            "sliceName": chart["slice_name"],
        },
    }


def _unplace_chart(config: dict, chart_uuid: str) -> None:
    (place,) = [
        key
        for key, item in config["position"].items()
        if _is_chart(item) and item["meta"]["uuid"] == chart_uuid
    ]
    del config["position"][place]
    for item in config["position"].values():
        if isinstance(item, dict) and place in item.get("children", []):
            item["children"].remove(place)


def _is_chart(item) -> bool:
    return isinstance(item, dict) and item.get("type") == "CHART"


def test_a_chart_one_dashboard_drops_stays_while_the_other_shows_it(
    superset: Settings, superset_api, tmp_path: Path
):
    """The bundle holds several dashboards: the orphan rule deletes a chart only when no dashboard shows it. A chart
    moved from "T-Shop sales" to "T-Shop customers" in the bundle leaves the one and stays on the other."""
    bundle = tmp_path / "bundle"
    shutil.copytree(dashboard.BUNDLE, bundle)
    moved = "Average age"
    chart = yaml.safe_load((bundle / "charts" / "Average_age.yaml").read_text())
    sales_file, customers_file = (
        bundle / "dashboards" / "T-Shop_sales.yaml",
        bundle / "dashboards" / "T-Shop_customers.yaml",
    )
    sales, customers = yaml.safe_load(sales_file.read_text()), yaml.safe_load(customers_file.read_text())
    _unplace_chart(sales, chart["uuid"])
    _place_chart(customers, chart)
    sales_file.write_text(yaml.safe_dump(sales, sort_keys=False))
    customers_file.write_text(yaml.safe_dump(customers, sort_keys=False))

    def chart_ids_named(name: str) -> list[int]:
        query = f"(filters:!((col:slice_name,opr:eq,value:'{name}')))"
        return [row["id"] for row in superset_api.get("/api/v1/chart/", q=query)["result"]]

    (chart_id,) = chart_ids_named(moved)
    try:
        for _ in range(2):  # and once more: the same bundle again changes nothing
            dashboard.import_dashboard(superset, bundle)
            assert sorted(superset_api.charts()) == sorted(set(dashboard.DASHBOARD_CHARTS) - {moved})
            customers_charts = superset_api.charts(dashboard.CUSTOMERS_DASHBOARD_SLUG)
            assert sorted(customers_charts) == sorted({*dashboard.CUSTOMERS_DASHBOARD_CHARTS, moved})
            # the same chart, not deleted and made again
            assert chart_ids_named(moved) == [chart_id] and customers_charts[moved] == chart_id
    finally:
        dashboard.import_dashboard(superset)
    # the committed bundle puts it back where it was, still the same chart
    assert sorted(superset_api.charts()) == sorted(dashboard.DASHBOARD_CHARTS)
    assert sorted(superset_api.charts(dashboard.CUSTOMERS_DASHBOARD_SLUG)) == sorted(
        dashboard.CUSTOMERS_DASHBOARD_CHARTS
    )
    assert chart_ids_named(moved) == [chart_id]


def test_export_import_export_gives_the_same_files(superset: Settings, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(dashboard.BUNDLE, first)
    shutil.copytree(dashboard.BUNDLE, second)
    dashboard.export_dashboard(superset, first)
    dashboard.import_dashboard(superset, first)
    dashboard.export_dashboard(superset, second)

    def files(bundle: Path) -> list[str]:
        return sorted(path.relative_to(bundle).as_posix() for path in bundle.rglob("*.yaml"))

    assert files(first) == files(second) == files(dashboard.BUNDLE)
    # both dashboards, and every chart either shows
    dashboards = [
        yaml.safe_load((first / name).read_text()) for name in files(first) if name.startswith("dashboards/")
    ]
    assert sorted(config["slug"] for config in dashboards) == sorted(dashboard.DASHBOARDS)
    charts = [
        yaml.safe_load((first / name).read_text())["slice_name"]
        for name in files(first)
        if name.startswith("charts/")
    ]
    assert sorted(charts) == sorted(chart for shown in dashboard.DASHBOARDS.values() for chart in shown)
    # the committed bundle is the export itself: importing it and exporting changes no file
    for name in files(first):
        assert filecmp.cmp(first / name, second / name, shallow=False), name
        assert filecmp.cmp(first / name, dashboard.BUNDLE / name, shallow=False), name


def test_the_files_hold_no_password_and_no_local_address():
    database = next((dashboard.BUNDLE / "databases").glob("*.yaml")).read_text()
    assert "clickhousedb://default:XXXXXXXXXX@clickhouse:8123/cdm" in database
    for path in dashboard.BUNDLE.rglob("*.yaml"):
        assert "127.0.0.1" not in path.read_text(), path


def test_a_wrong_clickhouse_password_fails_clearly_and_the_dashboard_keeps_working(
    superset: Settings, superset_api
):
    wrong = settings({**superset.env, "TSHOP_CLICKHOUSE_URL": superset.clickhouse_url.replace("@", "x@", 1)})
    # the URL's password is the last thing before "@": appending to it makes it wrong
    assert wrong.clickhouse_url != superset.clickhouse_url

    with pytest.raises(
        dashboard.DashboardError, match=r"ClickHouse at .* refused the dashboard's database login"
    ):
        dashboard.import_dashboard(wrong)

    charts = superset_api.charts()
    assert superset_api.chart_data(charts["Revenue"])[0]["revenue"] > 0
