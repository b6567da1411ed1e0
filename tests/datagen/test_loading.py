"""Loading RAW: determinism, continuing a shop, one transaction per day, refused re-runs, and RAW's
constraints refusing bad rows with a clear error."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from datagen import DayAlreadyLoaded, ShopSimulation
from datagen.writer import create_raw_tables

pytestmark = pytest.mark.slow

START = dt.date(2024, 3, 4)


def simulate(dsn: str, days: int, start: dt.date = START, **kwargs):
    return ShopSimulation(dsn, seed=kwargs.pop("seed", 5), initial_customers=3_000).run(start, days, **kwargs)


def test_the_same_seed_and_arguments_give_the_same_rows(new_database, raw_digest):
    first, second, other_seed = new_database("det_a"), new_database("det_b"), new_database("det_c")
    simulate(first, 6)
    simulate(second, 6)
    simulate(other_seed, 6, seed=6)
    assert raw_digest(first) == raw_digest(second)
    assert raw_digest(first) != raw_digest(other_seed)


def test_a_later_start_date_continues_the_same_shop(new_database, raw_digest):
    whole, split = new_database("whole"), new_database("split")
    simulate(whole, 6)
    simulate(split, 3)
    simulate(split, 3, start=START + dt.timedelta(days=3))
    assert raw_digest(split) == raw_digest(whole), "days split over runs give the same shop"
    with psycopg.connect(split) as conn:
        buyers_later = conn.execute(
            "select count(distinct customer_id) from raw.sales where sold_at >= %s and customer_id <= 3000",
            (START + dt.timedelta(days=3),),
        ).fetchone()[0]
    assert buyers_later > 0, "customers of the first run keep buying"


def test_a_loaded_day_is_refused_and_nothing_is_written(new_database, raw_digest):
    dsn = new_database("refused")
    simulate(dsn, 2)
    before = raw_digest(dsn)
    with pytest.raises(DayAlreadyLoaded, match="2024-03-05 already loaded"):
        simulate(dsn, 2, start=START + dt.timedelta(days=1))
    with pytest.raises(DayAlreadyLoaded, match="before the last loaded day"):
        simulate(dsn, 1, start=START - dt.timedelta(days=1))
    assert raw_digest(dsn) == before
    reports = simulate(dsn, 2, start=START + dt.timedelta(days=1), skip_loaded=True)
    assert [report.skipped for report in reports] == [True, False]


def test_a_failed_day_leaves_raw_unchanged_and_can_be_run_again(new_database, raw_digest):
    dsn, clean = new_database("failed"), new_database("clean")
    simulate(dsn, 2)
    before = raw_digest(dsn)
    # a real failure in the middle of day 3: PostgreSQL refuses its sale lines
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "alter table raw.sales add constraint no_sales_on_day_three check (sold_at < '2024-03-06')"
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        simulate(dsn, 1, start=START + dt.timedelta(days=2))
    assert raw_digest(dsn) == before, "the failed day left no row behind"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("select count(*) from raw.generated_day").fetchone() == (2,)
        conn.execute("alter table raw.sales drop constraint no_sales_on_day_three")
    simulate(dsn, 1, start=START + dt.timedelta(days=2))
    simulate(clean, 3)
    assert raw_digest(dsn) == raw_digest(clean), "the re-run ends as a clean run does"


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (
            "insert into raw.customer values (1, ' ', 'Lee', '1990-01-01', '2024-01-01')",
            "customer_first_name_not_blank",
        ),
        ("insert into raw.customer values (1, 'Ann', null, '1990-01-01', '2024-01-01')", "last_name"),
        (
            "insert into raw.customer values (1, 'Ann', 'Lee', '2030-01-01', '2024-01-01')",
            "customer_birth_date_in_the_past",
        ),
        (
            "insert into raw.product values (1, 'Tee', 'T-shirts', 'M', 0, '2024-01-01')",
            "product_price_positive",
        ),
        (
            "insert into raw.sales values (1, 1, '2024-01-01', 1, 1, 0, '2024-01-01')",
            "sales_quantity_positive",
        ),
        ("insert into raw.sales values (1, 1, null, 1, 1, 1, '2024-01-01')", "sold_at"),
    ],
)
def test_raw_refuses_a_bad_row_with_an_error_naming_what_was_wrong(new_database, statement, named):
    dsn = new_database("constraints")
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
        conn.execute("insert into raw.customer values (2, 'Bob', 'Ray', '1980-01-01', '2024-01-01')")
        with pytest.raises(psycopg.errors.IntegrityError, match=named):
            conn.execute(statement)
        # the row accepted before is still there
        assert conn.execute("select count(*) from raw.customer").fetchone() == (1,)


def test_a_bad_row_in_a_copy_batch_names_the_constraint_and_the_batch_is_not_half_loaded(new_database):
    dsn = new_database("copy_batch")
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_raw_tables(conn)
        with (
            pytest.raises(psycopg.errors.CheckViolation, match="sales_quantity_positive"),
            conn.transaction(),
            conn.cursor().copy(
                "copy raw.sales (sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at) "
                "from stdin"
            ) as copy,
        ):
            copy.write_row((1, 1, "2024-01-01 10:00", 1, 1, 2, "2024-01-01 10:00"))
            copy.write_row((2, 1, "2024-01-01 10:00", 1, 2, -1, "2024-01-01 10:00"))
        assert conn.execute("select count(*) from raw.sales").fetchone() == (0,)
