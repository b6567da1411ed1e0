"""PostgreSQL's roles of least privilege (CONTRACT.md section 10): each role's grants as a table of allowed and
refused statements, run for real on a built warehouse, each in a transaction rolled back."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, urlsplit

import psycopg
import pytest

from tshop.config import PG_ROLES, Settings

# (role, statement, allowed)
GRANTS = [
    ("loader", "select count(*) from raw.customer", True),
    (
        "loader",
        "insert into raw.product (product_id, name, category, size, price, updated_at) "
        "values (999999, 'Coat', 'Coats', 'M', 10, now())",
        True,
    ),
    ("loader", "create table raw.loader_made (x int)", True),
    ("loader", "create table if not exists sl.landing_file_probe (x int)", True),
    ("loader", "select count(*) from cdm.sales_datamart", False),
    ("loader", "select count(*) from dds.customer", False),
    ("loader", "select count(*) from sl.load_metadata", False),
    ("loader", "create table cdm.loader_made (x int)", False),
    ("loader", "create schema loader_made", False),
    ("transformer", "select count(*) from raw.customer", True),
    ("transformer", "select count(*) from dds.customer", True),
    ("transformer", "update raw.customer set first_name = 'erased' where customer_id = 1", True),
    ("transformer", "create table cdm.transformer_made (x int)", True),
    ("transformer", "create table dds.transformer_made (x int)", True),
    ("transformer", "insert into sl.load_metadata (table_name) values ('probe')", True),
    (
        "transformer",
        "insert into raw.product (product_id, name, category, size, price, updated_at) "
        "values (999999, 'Coat', 'Coats', 'M', 10, now())",
        False,
    ),
    ("transformer", "update raw.customer set updated_at = now() where customer_id = 1", False),
    ("transformer", "delete from raw.sales where sale_id = 1", False),
    ("transformer", "drop table raw.customer", False),
    ("transformer", "create schema transformer_made", False),
    ("reader", "select count(*) from cdm.sales_datamart", True),
    ("reader", "select count(*) from cdm.dim_customer", True),
    ("reader", "select count(*) from dds.customer", False),
    ("reader", "select count(*) from raw.customer", False),
    ("reader", "select count(*) from sl.load_metadata", False),
    ("reader", "delete from cdm.sales_datamart", False),
    ("reader", "create table cdm.reader_made (x int)", False),
    ("airflow", "select count(*) from raw.customer", False),
    ("airflow", "select count(*) from cdm.sales_datamart", False),
    ("superset", "select count(*) from cdm.sales_datamart", False),
]


@pytest.fixture(scope="module")
def warehouse(build_shop) -> Settings:
    return build_shop("tshop_roles", dt.date(2024, 3, 4), 2, 300)


def _run_as(config: Settings, role: str, statement: str) -> None:
    with psycopg.connect(config.pg_dsn_as(role), connect_timeout=10) as conn:
        try:
            conn.execute(statement)
        finally:
            conn.rollback()


@pytest.mark.parametrize(
    ("role", "statement", "allowed"), GRANTS, ids=[f"{r}: {s[:50]}" for r, s, _ in GRANTS]
)
def test_each_role_may_do_what_it_needs_and_nothing_more(warehouse: Settings, role, statement, allowed):
    if allowed:
        _run_as(warehouse, role, statement)
    else:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _run_as(warehouse, role, statement)


def test_every_part_has_its_own_role_and_password(warehouse: Settings):
    users = {warehouse.pg_role_user(role) for role in PG_ROLES}
    passwords = {warehouse.pg_role_password(role) for role in PG_ROLES}
    assert len(users) == len(PG_ROLES) and warehouse.pg_user not in users
    assert None not in passwords and len(passwords) == len(PG_ROLES)
    for role in PG_ROLES:
        with psycopg.connect(warehouse.pg_dsn_as(role)) as conn:
            current, superuser = conn.execute(
                "select current_user, usesuper from pg_user where usename = current_user"
            ).fetchone()
        assert (current, superuser) == (warehouse.pg_role_user(role), False)


@pytest.mark.parametrize("role", PG_ROLES)
@pytest.mark.parametrize("password", ["wrong-password", ""])
def test_a_wrong_or_missing_password_is_refused(warehouse: Settings, role: str, password: str):
    parts = urlsplit(warehouse.pg_dsn_as(role))
    login = quote(warehouse.pg_role_user(role), safe="") + (f":{password}" if password else "")
    dsn = parts._replace(netloc=f"{login}@{parts.netloc.rpartition('@')[2]}").geturl()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(dsn, connect_timeout=10, passfile="/dev/null").close()


def test_what_dbt_creates_in_cdm_is_readable_by_the_reader_and_nothing_in_dds_is(warehouse: Settings):
    with psycopg.connect(warehouse.pg_dsn_as("transformer"), autocommit=True) as conn:
        conn.execute("create table cdm.new_mart as select 1 as x")
        conn.execute("create table dds.new_history as select 1 as x")
    try:
        with psycopg.connect(warehouse.pg_dsn_as("reader"), autocommit=True) as conn:
            assert conn.execute("select x from cdm.new_mart").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select x from dds.new_history")
    finally:
        with psycopg.connect(warehouse.pg_dsn_as("transformer"), autocommit=True) as conn:
            conn.execute("drop table cdm.new_mart; drop table dds.new_history")


def test_the_warehouse_belongs_to_the_roles_not_the_superuser(warehouse: Settings):
    with psycopg.connect(warehouse.pg_dsn()) as conn:
        owners = dict(
            conn.execute(
                "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname in ('raw', 'sl', 'dds', 'cdm')"
            ).fetchall()
        )
        dbt_tables = conn.execute(
            "select count(*) from pg_tables where schemaname in ('dds', 'cdm') and tableowner <> %s",
            (warehouse.pg_role_user("transformer"),),
        ).fetchone()[0]
    assert owners == {
        "raw": warehouse.pg_role_user("loader"),
        "sl": warehouse.pg_role_user("transformer"),
        "dds": warehouse.pg_role_user("transformer"),
        "cdm": warehouse.pg_role_user("transformer"),
    }
    assert dbt_tables == 0
