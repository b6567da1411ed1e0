"""A generated shop built through both dbt projects, and a Superset with the bundle imported, serving it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tshop import clients, dashboard
from tshop.config import Settings
from tshop.services._process import free_port

WAREHOUSE = "wh_dashboard"
# the last Monday before today (a week ago when today is a Monday) and the three days before it
_MONDAY = dt.date.today() - dt.timedelta(days=dt.date.today().weekday() or 7)
SHOP_DAYS = [_MONDAY - dt.timedelta(days=days) for days in (3, 2, 1, 0)]


@pytest.fixture(scope="module")
def shop(pg_dsn: str, build_shop, test_settings: Settings) -> Iterator[Settings]:
    """Four generated days (Friday to Monday: corrections, renames and repricing included) in a warehouse of
    their own, built into the test ClickHouse's `cdm`; the settings of a Superset on a free port.

    The days are the last Friday to Monday before today, inside the dashboard's default date filter (the
    month up to yesterday), so the dashboard opens on all of them."""
    config = build_shop(WAREHOUSE, SHOP_DAYS[0], len(SHOP_DAYS), 3000, TSHOP_SUPERSET_PORT=str(free_port()))
    client = clients.clickhouse(config)
    yield config
    client.command("drop database if exists cdm")
    client.close()


@dataclass
class SupersetApi:
    """Superset's REST API, logged in as the admin of this install."""

    base_url: str
    http: httpx.Client

    def get(self, path: str, **params) -> dict:
        answer = self.http.get(f"{self.base_url}{path}", params=params)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:1000])
        return answer.json()

    def charts(self) -> dict[str, int]:
        """{chart name: id} of the charts on the bundle's dashboard."""
        charts = self.get(f"/api/v1/dashboard/{dashboard.DASHBOARD_SLUG}/charts")["result"]
        return {chart["slice_name"]: chart["id"] for chart in charts}

    def chart_data(self, chart_id: int) -> list[dict]:
        """What the chart-data API returns for the chart's saved query: its rows."""
        return self.get(f"/api/v1/chart/{chart_id}/data/", format="json")["result"][0]["data"]


@pytest.fixture(scope="module")
def superset(shop: Settings) -> Iterator[Settings]:
    """Superset's metadata initialised, the bundle imported, the web app running."""
    dashboard.import_dashboard(shop)
    dashboard.start_web_app(shop)
    yield shop
    dashboard.web_app(shop).stop()


@pytest.fixture(scope="module")
def superset_api(superset: Settings) -> Iterator[SupersetApi]:
    base_url = f"http://127.0.0.1:{superset.superset_port}"
    with httpx.Client(timeout=120) as http:
        login = http.post(
            f"{base_url}/api/v1/security/login",
            json={
                "username": superset.superset_user,
                "password": superset.superset_password,
                "provider": "db",
                "refresh": False,
            },
        )
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield SupersetApi(base_url, http)
