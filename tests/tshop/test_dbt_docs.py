"""The dbt docs of both projects, built from a real warehouse and served by a real Airflow API server through
Cosmos' plugin, where the UI's Browse menu links to them."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tshop import clients
from tshop.config import Settings, settings
from tshop.dbt import CLICKHOUSE_PROJECT
from tshop.dbt_docs import (
    PROJECTS,
    dbt_docs_airflow_env,
    dbt_docs_url,
    docs_dir,
    docs_root,
    generate_dbt_docs,
)
from tshop.orchestration import AIRFLOW_BIN, airflow_env, ensure_airflow
from tshop.services._process import free_port, wait_until
from tshop.services.background import BackgroundProcess

WAREHOUSE = "wh_dbt_docs"
SLUGS = [docs.slug for docs in PROJECTS]


@pytest.fixture(scope="module")
def shop(pg_dsn: str, build_shop, test_settings: Settings) -> Iterator[Settings]:
    """One generated day built through both dbt projects (so both catalogs have tables to describe), with
    Airflow's web app on a free port."""
    config = build_shop(WAREHOUSE, dt.date(2024, 3, 8), 1, 300, TSHOP_AIRFLOW_PORT=str(free_port()))
    client = clients.clickhouse(config)
    shutil.rmtree(docs_root(config), ignore_errors=True)
    yield config
    client.command("drop database if exists cdm")
    client.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(WAREHOUSE)))


def _target_times() -> dict[Path, float]:
    """The times of the files in the projects' own target/ folders (Cosmos renders the DAG from them)."""
    return {
        path: path.stat().st_mtime_ns
        for docs in PROJECTS
        for path in (docs.project / "target").rglob("*")
        if path.is_file()
    }


@pytest.fixture(scope="module")
def built(shop: Settings) -> dict[str, str]:
    """What the first generate did; it leaves the projects' target/ folders as they were."""
    targets = _target_times()
    done = generate_dbt_docs(shop)
    assert _target_times() == targets
    return done


@pytest.fixture(scope="module")
def airflow_ui(shop: Settings, built: dict[str, str]) -> Iterator[httpx.Client]:
    """Airflow's API server with T-Shop's configuration and the docs' variables, and a client logged in to
    it as the admin (the simple auth manager's token, as the UI keeps it in its `_token` cookie)."""
    ensure_airflow(shop)
    base_url = f"http://127.0.0.1:{shop.airflow_port}"
    server = BackgroundProcess(
        "airflow-api-server-dbt-docs",
        [str(AIRFLOW_BIN / "airflow"), "api-server"],
        shop.state_dir / "test-dbt-docs",
        base_url,
        airflow_env(shop) | dbt_docs_airflow_env(shop),
    )
    server.start()
    try:
        with httpx.Client(base_url=base_url, timeout=60) as http:

            def healthy() -> bool:
                try:
                    return http.get("/api/v2/monitor/health").status_code == 200
                except httpx.TransportError:
                    return False

            assert wait_until(healthy, timeout=180, interval=1), server.log_file.read_text()[-3000:]
            login = http.post(
                "/auth/token", json={"username": shop.airflow_user, "password": shop.airflow_password}
            )
            assert login.status_code == 201, login.text
            token = login.json()["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            http.cookies.set("_token", token)
            yield http
    finally:
        server.stop()


def test_both_sites_are_built_against_the_live_databases(shop: Settings, built: dict[str, str]):
    assert built == {"warehouse": "live", "clickhouse_mart": "live"}
    for slug in SLUGS:
        site = docs_dir(shop, slug)
        assert site.is_symlink(), "the served folder is a link switched in one rename"
        assert {"index.html", "manifest.json", "catalog.json"} <= {path.name for path in site.iterdir()}
        assert site.resolve().is_relative_to(docs_root(shop) / "builds")


def test_the_airflow_ui_links_to_both_sites_under_browse(shop: Settings, airflow_ui: httpx.Client):
    plugins = airflow_ui.get("/api/v2/plugins")
    assert plugins.status_code == 200, plugins.text
    views = {
        view["href"]: view
        for plugin in plugins.json()["plugins"]
        if plugin["name"] == "cosmos"
        for view in plugin["external_views"]
    }
    for slug in SLUGS:
        path = dbt_docs_url(shop, slug).removeprefix(f"http://127.0.0.1:{shop.airflow_port}")
        assert path in views, views
        assert views[path]["category"] == "Browse"


def test_the_docs_address_serves_the_dbt_docs_page(shop: Settings, airflow_ui: httpx.Client):
    for slug in SLUGS:
        page = airflow_ui.get(dbt_docs_url(shop, slug))
        assert page.status_code == 200, page.text[:500]
        assert "<title>dbt Docs</title>" in page.text
        # the page reads these two beside it
        for artifact in ("manifest.json", "catalog.json"):
            assert airflow_ui.get(f"/cosmos/{slug}/{artifact}").status_code == 200


def test_the_served_manifests_hold_the_lineage_of_both_projects(airflow_ui: httpx.Client):
    warehouse = airflow_ui.get("/cosmos/warehouse/manifest.json").json()["nodes"]
    mart = warehouse["model.tshop.sales_datamart"]
    assert "model.tshop.sales_datamart_increment" in mart["depends_on"]["nodes"]
    assert warehouse["model.tshop.sales_datamart_increment"]["depends_on"]["nodes"]
    assert {"snapshot.tshop.sales", "snapshot.tshop.customer", "snapshot.tshop.product"} <= set(warehouse)

    clickhouse = airflow_ui.get("/cosmos/clickhouse_mart/manifest.json").json()["nodes"]
    current = clickhouse["model.tshop_clickhouse.sales_datamart_current"]
    assert current["depends_on"]["nodes"] == ["model.tshop_clickhouse.sales_datamart"]
    summary = clickhouse["model.tshop_clickhouse.sales_daily_summary"]
    assert summary["depends_on"]["nodes"] == ["model.tshop_clickhouse.sales_datamart_current"]


def test_every_column_of_the_marts_is_described_and_typed(airflow_ui: httpx.Client):
    for slug, model in (
        ("warehouse", "model.tshop.sales_datamart"),
        ("clickhouse_mart", "model.tshop_clickhouse.sales_datamart"),
    ):
        documented = airflow_ui.get(f"/cosmos/{slug}/manifest.json").json()["nodes"][model]
        assert documented["description"]
        assert documented["columns"]
        assert all(column["description"] for column in documented["columns"].values()), model
        # the catalog, read from the database, has the same columns with their types
        catalog = airflow_ui.get(f"/cosmos/{slug}/catalog.json").json()["nodes"][model]["columns"]
        assert {name.lower() for name in documented["columns"]} <= {name.lower() for name in catalog}
        assert all(column["type"] for column in catalog.values())


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def test_a_second_generate_keeps_the_sites_and_an_edit_rebuilds_its_project(
    shop: Settings, built: dict[str, str]
):
    index = {slug: docs_dir(shop, slug) / "index.html" for slug in SLUGS}
    before = {slug: _mtime(path) for slug, path in index.items()}

    assert generate_dbt_docs(shop) == {"warehouse": "current", "clickhouse_mart": "current"}
    assert {slug: _mtime(path) for slug, path in index.items()} == before

    # an edit of a ClickHouse model (its time only; restored after) rebuilds that project's site alone: the
    # projects are siblings, and only the shared package is read by both
    model = CLICKHOUSE_PROJECT / "models" / "cdm" / "sales_datamart_current.sql"
    times = model.stat()
    try:
        os.utime(model)
        assert generate_dbt_docs(shop) == {"warehouse": "current", "clickhouse_mart": "live"}
    finally:
        os.utime(model, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert _mtime(index["warehouse"]) == before["warehouse"]
    assert _mtime(index["clickhouse_mart"]) > before["clickhouse_mart"]


def test_a_database_out_of_reach_gives_an_offline_site_and_a_retry(shop: Settings):
    """ClickHouse not answering: its site still has the lineage and the descriptions, and the next call tries
    the live build again instead of keeping the offline one."""
    closed = free_port()
    config = settings(
        {
            **shop.env,
            "TSHOP_STATE_DIR": str(shop.state_dir / "dbt-docs-offline"),
            "TSHOP_CLICKHOUSE_URL": f"http://default:unused@127.0.0.1:{closed}",
        }
    )
    shutil.rmtree(docs_root(config), ignore_errors=True)
    first = generate_dbt_docs(config)
    assert first["warehouse"] == "live"
    assert first["clickhouse_mart"].startswith("offline: "), first
    site = docs_dir(config, "clickhouse_mart")
    manifest = json.loads((site / "manifest.json").read_text())
    current = manifest["nodes"]["model.tshop_clickhouse.sales_datamart_current"]
    assert current["depends_on"]["nodes"] == ["model.tshop_clickhouse.sales_datamart"]
    assert current["columns"]
    assert json.loads((site / "catalog.json").read_text())["nodes"] == {}
    assert (site / "index.html").exists()

    second = generate_dbt_docs(config)
    assert second["warehouse"] == "current"
    assert second["clickhouse_mart"].startswith("offline: "), second


def test_no_password_is_served(shop: Settings, airflow_ui: httpx.Client):
    """The ClickHouse mart's compiled SQL calls postgresql() with PostgreSQL's password: the docs show the
    call with the password hidden, and no file of either site holds a password of the install."""
    passwords = [shop.pg_password, shop.clickhouse_password]
    clickhouse = airflow_ui.get("/cosmos/clickhouse_mart/manifest.json").json()["nodes"]
    compiled = clickhouse["model.tshop_clickhouse.sales_datamart"]["compiled_code"]
    assert "postgresql(" in compiled and "'[HIDDEN]'" in compiled
    for slug in SLUGS:
        for artifact in ("dbt_docs_index.html", "manifest.json", "catalog.json"):
            served = airflow_ui.get(f"/cosmos/{slug}/{artifact}").text
            assert not any(password in served for password in passwords), (slug, artifact)
        stored = "".join(
            path.read_text() for path in docs_dir(shop, slug).resolve().rglob("*") if path.is_file()
        )
        assert not any(password in stored for password in passwords), slug
