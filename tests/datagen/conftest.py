"""Fresh PostgreSQL databases for the generator's tests."""

from __future__ import annotations

import hashlib
import re
import uuid

import psycopg
import pytest
from psycopg import sql

from tshop.config import Settings


@pytest.fixture(autouse=True)
def events_landing_zone(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """`tshop-datagen generate` writes web events into TSHOP_LANDING_URL by default, whatever --to: here
    into a folder of the test's own (the commands the tests run inherit it), never a real landing zone."""
    url = tmp_path_factory.mktemp("events-landing").as_uri()
    monkeypatch.setenv("TSHOP_LANDING_URL", url)
    return url


@pytest.fixture(scope="session")
def new_database(pg_dsn: str, test_settings: Settings):
    """A factory of empty databases, dropped at the end of the session."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"gen_{re.sub(r'[^a-z0-9]+', '_', label.lower())[:30]}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        made.append(name)
        return test_settings.pg_dsn(database=name)

    yield make
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def raw_digest():
    return _raw_digest


# the contract's columns: loaded_at / loaded_xid record when and by which transaction a row was written
RAW_COLUMNS = {
    "customer": "customer_id, first_name, last_name, birth_date, updated_at",
    "product": "product_id, name, category, size, price, updated_at",
    "sales": "sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at",
}


def _raw_digest(dsn: str) -> str:
    """One hash over every RAW row (the contract's columns), in key order."""
    digest = hashlib.sha256()
    with psycopg.connect(dsn) as conn:
        for table, columns in RAW_COLUMNS.items():
            key = columns.split(",")[0]
            for row in conn.execute(f"select {columns} from raw.{table} order by {key}"):
                digest.update(repr(row).encode())
    return digest.hexdigest()
