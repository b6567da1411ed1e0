"""RAW's own rules (CONTRACT 1.1 and 1.5), enforced by the database for every writer: the clock, the birth
date, white space; the columns it sets itself; and an older RAW upgraded in place."""

from __future__ import annotations

import psycopg
import pytest

from datagen.writer import create_raw_tables

CUSTOMER = "insert into raw.customer (customer_id, first_name, last_name, birth_date, updated_at) values "
SALE = (
    "insert into raw.sales (sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at) "
    "values (1, 1, '2024-01-01', 1, 1, 1, {updated_at})"
)
PRODUCT = (
    "insert into raw.product (product_id, name, category, size, price, updated_at) "
    "values (1, 'Tee', 'T-shirts', 'S', 10, {updated_at})"
)
IN_SIX_MINUTES = "(clock_timestamp() at time zone 'UTC') + interval '6 minutes'"
IN_FOUR_MINUTES = "(clock_timestamp() at time zone 'UTC') + interval '4 minutes'"
TODAY = "(clock_timestamp() at time zone 'UTC')::date"


@pytest.fixture(scope="module")
def raw(new_database):
    dsn = new_database("raw_rules")
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
    return dsn


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (CUSTOMER + "(1, e'\\t\\n ', 'Lee', '1990-01-01', '2024-01-01')", "customer_first_name_not_blank"),
        (
            CUSTOMER + "(1, 'Ann', e'\\u00a0\\u3000', '1990-01-01', '2024-01-01')",
            "customer_last_name_not_blank",
        ),
        (CUSTOMER + f"(1, 'Ann', 'Lee', {TODAY}, '2024-01-01')", "customer_birth_date_in_the_past"),
        (CUSTOMER + "(1, 'Ann', 'Lee', '2100-01-01', '2024-01-01')", "customer_birth_date_in_the_past"),
        (
            CUSTOMER + f"(1, 'Ann', 'Lee', '1990-01-01', {IN_SIX_MINUTES})",
            "customer_updated_at_not_in_the_future",
        ),
        (PRODUCT.format(updated_at=IN_SIX_MINUTES), "product_updated_at_not_in_the_future"),
        (SALE.format(updated_at="'2100-01-01'"), "sales_updated_at_not_in_the_future"),
    ],
    ids=[
        "tab-newline first name",
        "unicode-space last name",
        "born today",
        "born in 2100",
        "customer from the future",
        "product from the future",
        "sale in 2100",
    ],  # fmt: skip
)
def test_raw_refuses_what_section_1_5_forbids_naming_the_rule(raw, statement, constraint):
    with psycopg.connect(raw, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
            conn.execute(statement)
        assert conn.execute("select count(*) from raw.customer").fetchone() == (0,)


def test_raw_accepts_a_clock_a_few_minutes_ahead_and_names_with_inner_spaces(raw):
    with psycopg.connect(raw) as conn:
        conn.execute(CUSTOMER + f"(1, ' Ann Marie ', 'de la Cruz', '1990-01-01', {IN_FOUR_MINUTES})")
        conn.execute(SALE.format(updated_at=IN_FOUR_MINUTES))
        conn.rollback()


def test_raw_sets_when_and_by_which_transaction_each_row_was_written_whatever_the_writer_says(raw):
    with psycopg.connect(raw) as conn:
        conn.execute(CUSTOMER + "(7, 'Ann', 'Lee', '1990-01-01', '2024-01-01')")
        first = conn.execute(
            "select loaded_at, loaded_xid, pg_current_xact_id() from raw.customer"
        ).fetchone()
        conn.commit()
        assert first[1] == first[2], "written by the inserting transaction"
        # an update, even one that tries to keep the old values, is marked as a new write
        conn.execute(
            "update raw.customer set last_name = 'Kim', loaded_xid = '1', loaded_at = '2000-01-01' "
            "where customer_id = 7"
        )
        second = conn.execute(
            "select loaded_at, loaded_xid, pg_current_xact_id() from raw.customer"
        ).fetchone()
        conn.rollback()
    assert second[1] == second[2] and second[1] > first[1]
    assert second[0] >= first[0]


OLD_RAW = """
-- every new database has the schema already, with its owner (tshop/services/postgres_roles.py)
create schema if not exists raw;
create table raw.customer (customer_id bigint primary key, first_name text not null
    constraint customer_first_name_not_blank check (btrim(first_name) <> ''), last_name text not null,
    birth_date date not null constraint customer_birth_date_in_the_past check (birth_date < updated_at),
    updated_at timestamp not null);
create table raw.product (product_id bigint primary key, name text not null, category text not null,
    size text not null, price numeric(12, 2) not null, updated_at timestamp not null);
create table raw.sales (sale_id bigint primary key, order_id bigint not null, sold_at timestamp not null,
    customer_id bigint not null, product_id bigint not null, quantity integer not null,
    updated_at timestamp not null);
create index customer_updated_at_idx on raw.customer (updated_at);
insert into raw.customer values (1, 'Ann', 'Lee', '1990-01-01', '2024-01-01');
"""


def test_a_raw_made_by_an_earlier_version_is_upgraded_in_place_keeping_its_rows(new_database):
    dsn = new_database("raw_upgrade")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(OLD_RAW)
        create_raw_tables(conn)
        create_raw_tables(conn)  # the same version again: nothing to do
        assert conn.execute("select customer_id, last_name from raw.customer").fetchall() == [(1, "Lee")]
        assert conn.execute("select loaded_xid > '0'::xid8 from raw.customer").fetchone() == (True,)
        with pytest.raises(psycopg.errors.CheckViolation, match="customer_first_name_not_blank"):
            conn.execute(CUSTOMER + "(2, e'\\t', 'Lee', '1990-01-01', '2024-01-01')")
        assert conn.execute("select count(*) from raw.ddl_version").fetchone() == (1,)
