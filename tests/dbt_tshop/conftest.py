"""A fresh warehouse database per test, with RAW as the contract defines it, and dbt run against it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from datagen.writer import create_raw_tables
from tshop.config import Settings, settings
from tshop.dbt import run_dbt


@dataclass
class Warehouse:
    """One test's warehouse: run SQL in it, run dbt against it."""

    config: Settings
    dsn: str

    def execute(self, query: str, params: tuple | None = None) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(query, params)

    def rows(self, query: str, params: tuple | None = None) -> list[tuple]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()

    def value(self, query: str, params: tuple | None = None):
        return self.rows(query, params)[0][0]

    def build(self, *args: str, check: bool = True, extra_env: dict[str, str] | None = None):
        """`dbt build`: snapshots, the mart, and every data and unit test."""
        return run_dbt(self.config, ["build", *args], check=check, extra_env=extra_env)


def _fresh_warehouse(pg_dsn: str, test_settings: Settings, name: str) -> Iterator[Warehouse]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = test_settings.pg_dsn(database=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)  # RAW exactly as the generator makes it
    yield Warehouse(settings({**test_settings.env, "TSHOP_PG_DSN": dsn}), dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _name(request, prefix: str) -> str:
    return prefix + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:48]


@pytest.fixture
def warehouse(pg_dsn: str, test_settings: Settings, request) -> Iterator[Warehouse]:
    yield from _fresh_warehouse(pg_dsn, test_settings, _name(request, "wh_"))


@pytest.fixture
def clean_warehouse(pg_dsn: str, test_settings: Settings, request) -> Iterator[Warehouse]:
    """A second empty warehouse, to replay a history without the faults of the first."""
    yield from _fresh_warehouse(pg_dsn, test_settings, _name(request, "wc_"))
