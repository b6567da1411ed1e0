"""A fresh warehouse database per test, with RAW as the contract defines it, and dbt run against it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from tshop.config import Settings, settings
from tshop.dbt import run_dbt

RAW_DDL = """
create schema if not exists raw;
create table raw.customer (
    customer_id bigint primary key,
    first_name text not null check (btrim(first_name) <> ''),
    last_name text not null check (btrim(last_name) <> ''),
    birth_date date not null,
    updated_at timestamp not null
);
create table raw.product (
    product_id bigint primary key,
    name text not null,
    category text not null,
    size text not null,
    price numeric(12, 2) not null check (price > 0),
    updated_at timestamp not null
);
create table raw.sales (
    sale_id bigint primary key,
    order_id bigint not null,
    sold_at timestamp not null,
    customer_id bigint not null,
    product_id bigint not null,
    quantity integer not null check (quantity > 0),
    updated_at timestamp not null
);
"""


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
        conn.execute(RAW_DDL)
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
