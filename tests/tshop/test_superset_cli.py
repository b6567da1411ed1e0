"""The import's ClickHouse login check (tshop.superset_cli.check_clickhouse), against the real endpoint.

The demo imports the dashboards alongside the first pipeline run, before dbt has created ClickHouse's `cdm`:
a right login must pass then, and a wrong one must still stop the import."""

from __future__ import annotations

import uuid

import pytest

from tshop import dashboard
from tshop.config import Settings, settings
from tshop.superset_cli import BundleError, check_clickhouse


def _uri_of_a_database_not_created_yet(config: Settings) -> tuple[str, str]:
    # with the admin's login, which may open any database: the dashboard's own, the read-only one, is granted
    # `cdm` and `events` only and is refused any other (as a ClickHouse server refuses it), so a database of a
    # random name stands for a `cdm` not created yet only for a login that may open it
    admin = settings({**config.env, "TSHOP_CLICKHOUSE_URL": config.clickhouse_url})
    uri, password = dashboard.clickhouse_uri(admin)
    return uri.replace(f"/{dashboard.CLICKHOUSE_DATABASE}", f"/not_created_{uuid.uuid4().hex[:8]}"), password


def test_a_right_login_passes_before_the_first_run_creates_the_database(test_settings, clickhouse_url):
    uri, password = _uri_of_a_database_not_created_yet(test_settings)
    check_clickhouse(uri, password)


def test_a_wrong_password_is_refused_even_where_the_database_does_not_exist_yet(
    test_settings, clickhouse_url
):
    uri, password = _uri_of_a_database_not_created_yet(test_settings)
    with pytest.raises(BundleError, match=r"refused the dashboard's database login .*Authentication failed"):
        check_clickhouse(uri, password + "x")


def test_a_wrong_user_is_refused(test_settings, clickhouse_url):
    wrong = settings(
        {**test_settings.env, "TSHOP_CLICKHOUSE_URL": clickhouse_url.replace("default:", "nobody:", 1)}
    )
    uri, password = dashboard.clickhouse_uri(wrong)
    with pytest.raises(BundleError, match=r"\(nobody\)"):
        check_clickhouse(uri, password)
