"""The `T-Shop viewer` role (tshop/superset_cli.py, made by `make dashboard`): its login sees the dashboards, drawn
with data, in a real browser, and nothing else: no SQL Lab, no database or dataset, no edit; the admin keeps
SQL Lab. Superset reads ClickHouse with the read-only login, which cannot write or read other databases."""

from __future__ import annotations

import httpx
import pytest

from tshop import clients, dashboard
from tshop.config import Settings

from .conftest import CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.slow


def _login(superset: Settings, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{superset.superset_port}/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": False},
        timeout=60,
    )


@pytest.fixture(scope="module")
def viewer_http(superset: Settings):
    login = _login(superset, superset.superset_viewer_user, superset.superset_viewer_password)
    assert login.status_code == 200, login.text
    with httpx.Client(
        base_url=f"http://127.0.0.1:{superset.superset_port}",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=120,
    ) as http:
        yield http


def _browser_login(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/superset/welcome/**")


def test_the_viewer_sees_the_dashboard_drawn_with_data_in_a_real_browser(
    superset: Settings, browse_dashboard
):
    rendered = browse_dashboard(
        dashboard.DASHBOARD_SLUG,
        len(dashboard.DASHBOARD_CHARTS),
        "viewer-sales.png",
        login=(superset.superset_viewer_user, superset.superset_viewer_password),
    )
    assert rendered.names == sorted(dashboard.DASHBOARD_CHARTS)
    for name, text in rendered.texts.items():
        assert "error" not in text.lower() and "No data" not in text, (name, text)
        assert "permission" not in text.lower() and "access" not in text.lower(), (name, text)
    assert "$" in rendered.texts["Revenue"], rendered.texts["Revenue"]


def test_sql_lab_is_refused_to_the_viewer_and_open_to_the_admin_in_a_real_browser(superset: Settings):
    from playwright.sync_api import sync_playwright

    base_url = f"http://127.0.0.1:{superset.superset_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        _browser_login(page, base_url, superset.superset_viewer_user, superset.superset_viewer_password)
        # no SQL Lab in the menu, and its page is refused: Superset sends the viewer back to the welcome page
        assert page.locator("text=SQL Lab").count() == 0
        answer = page.goto(f"{base_url}/sqllab/")
        page.wait_for_load_state("networkidle")
        assert "/sqllab" not in page.url or answer.status == 403, (page.url, answer.status)
        assert page.locator("[data-test='sql-editor-tabs'], .SqlEditor").count() == 0
        browser.close()

        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        _browser_login(page, base_url, superset.superset_user, superset.superset_password)
        page.goto(f"{base_url}/sqllab/")
        page.wait_for_selector("[data-test='sql-editor-tabs'], #ace-editor, .ace_editor", timeout=60_000)
        assert "/sqllab" in page.url
        browser.close()


def test_the_viewer_s_api_reads_dashboards_and_chart_data_only(superset: Settings, viewer_http: httpx.Client):
    charts = viewer_http.get(f"/api/v1/dashboard/{dashboard.DASHBOARD_SLUG}/charts")
    assert charts.status_code == 200, charts.text
    chart_id = {chart["slice_name"]: chart["id"] for chart in charts.json()["result"]}["Revenue"]
    data = viewer_http.get(f"/api/v1/chart/{chart_id}/data/", params={"format": "json"})
    assert data.status_code == 200, data.text[:500]
    assert data.json()["result"][0]["data"], data.text[:500]

    # no databases, no datasets, no SQL Lab, no edit
    for path in ("/api/v1/database/", "/api/v1/dataset/", "/api/v1/saved_query/", "/api/v1/query/"):
        answer = viewer_http.get(path)
        assert answer.status_code in (401, 403), (path, answer.status_code, answer.text[:300])
    database_id = _admin_database_id(superset)
    sql = viewer_http.post(
        "/api/v1/sqllab/execute/", json={"database_id": database_id, "sql": "select 1", "runAsync": False}
    )
    assert sql.status_code in (401, 403), (sql.status_code, sql.text[:300])
    dataset_id = data.json()["result"][0].get("datasource_id") or 1
    edit = viewer_http.put(f"/api/v1/dataset/{dataset_id}", json={"description": "viewer was here"})
    assert edit.status_code in (401, 403), (edit.status_code, edit.text[:300])
    chart_edit = viewer_http.put(f"/api/v1/chart/{chart_id}", json={"slice_name": "renamed by the viewer"})
    assert chart_edit.status_code in (401, 403), (chart_edit.status_code, chart_edit.text[:300])
    delete = viewer_http.delete(f"/api/v1/chart/{chart_id}")
    assert delete.status_code in (401, 403), (delete.status_code, delete.text[:300])


def _admin_database_id(superset: Settings) -> int:
    login = _login(superset, superset.superset_user, superset.superset_password)
    token = login.json()["access_token"]
    answer = httpx.get(
        f"http://127.0.0.1:{superset.superset_port}/api/v1/database/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["result"][0]["id"]


@pytest.mark.parametrize("who", ["admin", "viewer"])
@pytest.mark.parametrize("password", ["wrong password", ""])
def test_a_wrong_or_missing_superset_password_is_refused(superset: Settings, who: str, password: str):
    username = superset.superset_user if who == "admin" else superset.superset_viewer_user
    answer = _login(superset, username, password)
    assert answer.status_code in (400, 401), (answer.status_code, answer.text[:300])
    assert "access_token" not in answer.text


def test_superset_s_clickhouse_login_cannot_write_or_read_other_databases(superset: Settings):
    """Superset's database login is the read-only one: it cannot create a table nor read system.users."""
    uri, password = dashboard.clickhouse_uri(superset)
    assert uri.startswith(f"clickhousedb://{superset.clickhouse_reader_user}@"), uri
    import clickhouse_connect

    reader = clickhouse_connect.get_client(
        host=superset.clickhouse_host,
        port=superset.clickhouse_port,
        username=superset.clickhouse_reader_user,
        password=password,
        database="cdm",
    )
    try:
        assert reader.query("select count() from cdm.sales_datamart").result_rows[0][0] > 0
        for statement, code in (
            ("create table cdm.superset_was_here (a Int32) engine = Memory", "164"),
            ("select name from system.users", "497"),
            ("select * from file('/etc/hostname', 'LineAsString')", "497"),
        ):
            with pytest.raises(Exception, match=f"Code: {code}"):
                reader.command(statement)
    finally:
        reader.close()
    admin = clients.clickhouse(superset)
    try:
        assert admin.query("exists table cdm.superset_was_here").result_rows[0][0] == 0
    finally:
        admin.close()
