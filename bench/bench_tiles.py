"""Issue 22's tile benchmark: every chart of every dashboard, timed where users wait, through Superset.

The shop of bench/shop.py (BENCH_SHOP_CUSTOMERS x BENCH_SHOP_DAYS, default 5,000,000 x 90; reused while its
scale matches) is built into a ClickHouse endpoint of its own (the dbt-clickhouse project, its own port and
folder under .state/bench/tiles), the dashboard bundle is imported into a Superset of its own, and each chart
of each dashboard is asked for its data through Superset's chart-data API (`/api/v1/chart/<id>/data/`, with
`force=true`, so Superset's cache never answers and every call runs the chart's query in ClickHouse):
once cold (the first call after the servers started) and BENCH_TILES_RUNS times warm (default 10: median and
p95). Beside it, the SQL Superset generated for the chart (`type=query`), run directly in ClickHouse with the
dashboard's read-only login: what Superset adds is the difference.

Target (issue 22): every chart under 0.5 s warm (p95). Writes the section "tiles" of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
from dataclasses import dataclass

import httpx
import psycopg

from bench.report import markdown_table, write_section
from bench.shop import STATE as SHOP_STATE
from bench.shop import beside_shop, built_shop
from bench.timing import timed
from tshop import clients, dashboard
from tshop.config import REPO_ROOT, Settings
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
from tshop.services.clickhouse import LocalClickHouse

STATE = REPO_ROOT / ".state" / "bench" / "tiles"
RUNS = int(os.environ.get("BENCH_TILES_RUNS", "10"))
TARGET_SECONDS = 0.5


@dataclass
class Tile:
    dashboard: str
    chart: str
    cold: float
    warm: list[float]
    direct: list[float]  # the chart's SQL run directly in ClickHouse

    @property
    def p95(self) -> float:
        return percentile(self.warm, 0.95)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value at least `share` of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


class ChartData:
    """Superset's chart-data API, logged in as the install's admin."""

    def __init__(self, config: Settings):
        self.base_url = f"http://127.0.0.1:{config.superset_port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=300)
        login = self.http.post(
            "/api/v1/security/login",
            json={"username": config.superset_user, "password": config.superset_password, "provider": "db"},
        )
        login.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def charts(self, slug: str) -> dict[str, int]:
        answer = self.http.get(f"/api/v1/dashboard/{slug}/charts")
        answer.raise_for_status()
        return {chart["slice_name"]: chart["id"] for chart in answer.json()["result"]}

    def data(self, chart_id: int) -> None:
        answer = self.http.get(f"/api/v1/chart/{chart_id}/data/", params={"format": "json", "force": "true"})
        if answer.status_code != 200:
            raise SystemExit(f"chart {chart_id}: HTTP {answer.status_code}: {answer.text[:500]}")

    def queries(self, chart_id: int) -> list[str]:
        answer = self.http.get(f"/api/v1/chart/{chart_id}/data/", params={"type": "query"})
        answer.raise_for_status()
        return [result["query"] for result in answer.json()["result"]]


def measure(config: Settings) -> list[Tile]:
    api = ChartData(config)
    reader = clients.clickhouse(config, "reader")
    tiles = []
    try:
        for slug in dashboard.DASHBOARDS:
            for name, chart_id in sorted(api.charts(slug).items()):
                cold = timed(lambda chart=chart_id: api.data(chart))
                warm = [timed(lambda chart=chart_id: api.data(chart)) for _ in range(RUNS)]
                queries = api.queries(chart_id)
                direct = [
                    timed(lambda q=queries: [reader.query(query).result_rows for query in q])
                    for _ in range(RUNS)
                ]
                tiles.append(Tile(slug, name, cold, warm, direct))
                print(
                    f"  {slug} / {name}: cold {cold:.3f} s, warm p95 {percentile(warm, 0.95):.3f} s",
                    flush=True,
                )
    finally:
        reader.close()
        api.http.close()
    return tiles


def main() -> None:
    load_at_start = os.getloadavg()[0]
    shutil.rmtree(STATE, ignore_errors=True)
    with built_shop() as shop:
        config = beside_shop(shop, STATE, "TSHOP_CLICKHOUSE_PORT", "TSHOP_SUPERSET_PORT")
        # Superset's metadata of an earlier run holds secrets of another key: made anew
        with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True) as conn:
            conn.execute("drop database if exists superset with (force)")
        endpoint = LocalClickHouse(config)
        endpoint.start()
        try:
            ch = clients.clickhouse(config)
            try:
                ch.command("drop database if exists cdm")
                build = timed(lambda: run_dbt(config, ["run"], project=CLICKHOUSE_PROJECT))
                current = ch.query("select count() from cdm.sales_datamart_current").result_rows[0][0]
            finally:
                ch.close()
            dashboard.import_dashboard(config)
            dashboard.start_web_app(config)
            try:
                tiles = measure(config)
            finally:
                dashboard.web_app(config).stop()
        finally:
            endpoint.stop()
            shutil.rmtree(STATE, ignore_errors=True)
    scale = json.loads((SHOP_STATE / "shop.json").read_text())
    report(tiles, scale, current, build, (load_at_start, os.getloadavg()[0]))


def report(tiles: list[Tile], scale: dict, current: int, build: float, load: tuple[float, float]) -> None:
    rows = [
        (
            tile.dashboard,
            tile.chart,
            f"{tile.cold:.3f}",
            f"{statistics.median(tile.warm):.3f}",
            f"{tile.p95:.3f}",
            f"{statistics.median(tile.direct):.3f}",
            "yes" if tile.p95 < TARGET_SECONDS else "**no**",
        )
        for tile in tiles
    ]
    slowest = max(tiles, key=lambda tile: tile.p95)
    overhead = statistics.median(statistics.median(t.warm) - statistics.median(t.direct) for t in tiles)
    body = "\n".join(
        [
            f"Shop: {scale['customers']:,} initial customers, {scale['days']} days (bench/shop.py); "
            f"`cdm.sales_datamart_current` holds {current:,} lines (ClickHouse built in {build:.0f} s). "
            f"Superset's chart-data API with `force=true` (its cache never answers), as the admin; cold: the "
            f"first call after the servers started; warm: {RUNS} calls. Direct: the SQL Superset generated "
            "for the chart, run in ClickHouse with the dashboard's read-only login. Load average "
            f"{load[0]:.2f} at the start, {load[1]:.2f} at the end (above 2: something else shared the 2 cores).",
            "",
            markdown_table(
                [
                    "dashboard",
                    "chart",
                    "cold s",
                    "warm median s",
                    "warm p95 s",
                    "direct SQL median s",
                    "under 0.5 s",
                ],
                rows,
            ),
            "",
            f"Target: every chart under {TARGET_SECONDS} s warm (p95). Slowest: {slowest.chart} "
            f"({slowest.p95:.3f} s). Superset's own share of a warm chart (median over the charts of "
            f"chart-data minus the direct SQL): {overhead:.3f} s.",
        ]
    )
    write_section("tiles", "Dashboard tiles through Superset (issue 22)", body)


if __name__ == "__main__":
    main()
