"""RAW freshness: a table no source has written for longer than its `error_after` (3 days) fails the check
by name and age; a late one (past `warn_after`, 1 day) warns and passes; fresh data and empty tables pass."""

from __future__ import annotations

import datetime as dt
import re

import psycopg
import pytest
from psycopg import sql

from datagen import ShopSimulation
from datagen.writer import create_raw_tables
from tshop.checks import RawFreshnessError, check_raw_freshness
from tshop.config import Settings, settings

RAW_TABLES = ("customer", "product", "sales")


def _new_database(pg_dsn: str, test_settings: Settings, name: str) -> Settings:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return settings({**test_settings.env, "TSHOP_PG_DSN": test_settings.pg_dsn(database=name)})


def _drop_database(pg_dsn: str, name: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def shop(pg_dsn: str, test_settings: Settings):
    """A warehouse whose RAW the generator filled (two business days, written now)."""
    config = _new_database(pg_dsn, test_settings, "fresh_shop")
    ShopSimulation(config.pg_dsn(), seed=11, initial_customers=400).run(dt.date(2024, 3, 4), 2)
    yield config
    _drop_database(pg_dsn, "fresh_shop")


def written_ago(config: Settings, age: str, *tables: str) -> None:
    """Make every row of `tables` look written `age` ago (RAW's trigger stamps loaded_at on every update, so
    it is switched off for this one statement's transaction)."""
    with psycopg.connect(config.pg_dsn()) as conn:
        for table in tables:
            conn.execute(f"alter table raw.{table} disable trigger {table}_mark_written")
            conn.execute(f"update raw.{table} set loaded_at = now() - interval '{age}'")
            conn.execute(f"alter table raw.{table} enable trigger {table}_mark_written")


@pytest.fixture
def fresh(shop: Settings) -> Settings:
    written_ago(shop, "0 seconds", *RAW_TABLES)
    return shop


def test_fresh_raw_passes_and_the_run_log_keeps_the_result(fresh: Settings, capsys):
    found = check_raw_freshness(fresh, run_id="freshness-fresh")
    assert [(source.table, source.status) for source in found] == [
        ("raw.customer", "pass"),
        ("raw.product", "pass"),
        ("raw.sales", "pass"),
    ]
    assert all(source.age < dt.timedelta(minutes=10) for source in found)
    assert "warning" not in capsys.readouterr().out
    with psycopg.connect(fresh.pg_dsn()) as conn:
        logged = conn.execute(
            "select node_id, status from sl.run_log where run_id = 'freshness-fresh' order by node_id"
        ).fetchall()
    assert logged == [(f"source.tshop.raw.{table}", "pass") for table in RAW_TABLES]


def test_tables_older_than_three_days_fail_the_check_by_name_and_age(fresh: Settings):
    written_ago(fresh, "4 days 2 hours", "customer", "sales")
    with pytest.raises(RawFreshnessError) as raised:
        check_raw_freshness(fresh)
    message = str(raised.value)
    assert message.startswith("2 RAW table(s) are stale")
    assert re.search(
        r"raw\.customer: stale, newest row written 4 days 2 hours ago .*the limit is 3 days", message
    )
    assert re.search(r"raw\.sales: stale, newest row written 4 days 2 hours ago", message)
    assert "raw.product" not in message  # written now: fresh


def test_a_day_and_a_half_old_table_warns_and_passes(fresh: Settings, capsys):
    written_ago(fresh, "36 hours", "product")
    found = {source.table: source for source in check_raw_freshness(fresh)}
    assert found["raw.product"].status == "warn"
    assert found["raw.customer"].status == found["raw.sales"].status == "pass"
    out = capsys.readouterr().out
    assert "warning: raw.product: late, newest row written 1 day 12 hours ago" in out
    assert "fails after 3 days" in out


@pytest.fixture
def empty_raw(pg_dsn: str, test_settings: Settings):
    config = _new_database(pg_dsn, test_settings, "empty_raw")
    with psycopg.connect(config.pg_dsn(), autocommit=True) as conn:
        create_raw_tables(conn)
    yield config
    _drop_database(pg_dsn, "empty_raw")


def test_empty_tables_warn_and_pass(empty_raw: Settings, capsys):
    """dbt calls a table with no rows infinitely stale; nothing in it is late, so it only warns."""
    found = check_raw_freshness(empty_raw)
    assert {source.table: source.status for source in found} == {
        "raw.customer": "empty",
        "raw.product": "empty",
        "raw.sales": "empty",
    }
    assert "warning: raw.sales: no rows yet" in capsys.readouterr().out


def test_a_missing_table_fails_the_check_with_dbts_reason(empty_raw: Settings):
    with psycopg.connect(empty_raw.pg_dsn(), autocommit=True) as conn:
        conn.execute("drop table raw.sales")
    with pytest.raises(
        RawFreshnessError,
        match=r'raw\.sales: freshness could not be measured: relation "raw\.sales" does not exist',
    ):
        check_raw_freshness(empty_raw)
