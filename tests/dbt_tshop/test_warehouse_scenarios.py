"""Scripted histories written into RAW, with the dbt project run between the steps (CONTRACT 1.2-1.4).

Each test starts from an empty warehouse. `dbt build` runs the snapshots, the mart and every data test
(the SCD2 invariants included) and unit test, so every step is also checked against those.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from tshop.checks import WaitingSalesError, check_waiting_sales

pytestmark = pytest.mark.slow

CUSTOMERS = "insert into raw.customer values (%s, %s, %s, %s, %s)"
PRODUCTS = "insert into raw.product values (%s, %s, %s, %s, %s, %s)"
SALES = "insert into raw.sales values (%s, %s, %s, %s, %s, %s, %s)"


def seed_shop(warehouse) -> None:
    """Two customers, two products, and a cheque of two lines on 2 January."""
    warehouse.execute(CUSTOMERS, (1, "Ann", "Lee", "1990-05-10", "2024-01-01 10:00"))
    warehouse.execute(CUSTOMERS, (2, "Bob", "Ray", "2006-03-01", "2024-01-01 10:00"))
    warehouse.execute(PRODUCTS, (10, "Oxford shirt", "Shirts", "M", "20.00", "2024-01-01 09:00"))
    warehouse.execute(PRODUCTS, (11, "Slim jeans", "Jeans", "32", "60.00", "2024-01-01 09:00"))
    warehouse.execute(SALES, (100, 1000, "2024-01-02 12:00", 1, 10, 2, "2024-01-02 12:00"))
    warehouse.execute(SALES, (101, 1000, "2024-01-02 12:00", 1, 11, 1, "2024-01-02 12:00"))


def mart(warehouse, sale_id: int) -> list[tuple]:
    return warehouse.rows(
        """select customer_name, product_price, quantity, total_cost, valid_from::text,
                  valid_to::text, is_current
           from cdm.sales_datamart where sale_id = %s order by valid_from""",
        (sale_id,),
    )


def watermark(warehouse, table_name: str):
    return warehouse.rows(
        "select max_updated_at::text, rows_loaded from sl.load_metadata where table_name = %s", (table_name,)
    )[0]


MART_VALUES = (
    "sale_id, order_id, sale_date, sold_at, customer_id, customer_name, customer_age, product_id, product_name, "
    "product_category, product_size, product_price, quantity, total_cost, valid_from, valid_to, is_current"
)


def state(warehouse) -> dict[str, list[tuple]]:
    """Everything a reader sees in DDS, CDM and the watermarks (not the run ids and load times)."""
    tables = {
        "dds.customer": "select customer_id, first_name, last_name, birth_date, valid_from, valid_to from dds.customer",
        "dds.product": "select product_id, name, price, valid_from, valid_to from dds.product",
        "dds.sales": "select sale_id, quantity, valid_from, valid_to from dds.sales",
        # all but loaded_at, the time of the run
        "cdm.sales_datamart": f"select {MART_VALUES} from cdm.sales_datamart",
        "cdm.sales_rejected": "select sale_id, reason from cdm.sales_rejected",
        # the customer mart's watermark is a run time (the mart's loaded_at), not data
        "raw.deleted_key": "select table_name, key_value, deleted_at from raw.deleted_key",
        "sl.load_metadata": (
            "select table_name, max_updated_at from sl.load_metadata where table_name <> 'cdm.customer_monthly'"
        ),
    }
    return {name: sorted(warehouse.rows(query), key=repr) for name, query in tables.items()}


def test_the_first_build_loads_every_layer_and_records_the_watermarks(warehouse):
    seed_shop(warehouse)
    warehouse.build()

    assert mart(warehouse, 100) == [("Ann Lee", 20, 2, 40, "2024-01-02 12:00:00", None, True)]
    assert watermark(warehouse, "dds.customer") == ("2024-01-01 10:00:00", 2)
    assert watermark(warehouse, "dds.product") == ("2024-01-01 09:00:00", 2)
    assert watermark(warehouse, "dds.sales") == ("2024-01-02 12:00:00", 2)
    assert watermark(warehouse, "cdm.sales_datamart") == ("2024-01-02 12:00:00", 2)
    logged = warehouse.rows(
        "select node_id, status from sl.run_log where node_id like 'snapshot.%' order by 1"
    )
    assert logged == [("snapshot.tshop.customer", "success"), ("snapshot.tshop.product", "success"),
                      ("snapshot.tshop.sales", "success")]  # fmt: skip


def test_a_name_change_after_a_sale_leaves_the_sale_with_the_name_it_had(warehouse):
    seed_shop(warehouse)
    warehouse.build()
    warehouse.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-03 09:00' where customer_id = 1"
    )
    warehouse.execute(SALES, (102, 1001, "2024-01-04 15:00", 1, 10, 1, "2024-01-04 15:00"))
    warehouse.build()

    assert warehouse.rows(
        "select last_name, valid_to::text from dds.customer where customer_id = 1 order by valid_from"
    ) == [
        ("Lee", "2024-01-03 09:00:00"),
        ("Kim", None),
    ]
    assert mart(warehouse, 100)[0][0] == "Ann Lee"
    assert mart(warehouse, 102)[0][0] == "Ann Kim"
    assert len(mart(warehouse, 100)) == 1, "a new customer version never makes a new mart version"


def test_a_price_change_prices_earlier_sales_as_they_were(warehouse):
    seed_shop(warehouse)
    warehouse.build()
    warehouse.execute(
        "update raw.product set price = 25.00, updated_at = '2024-01-03 00:00' where product_id = 10"
    )
    warehouse.execute(SALES, (102, 1001, "2024-01-03 00:00", 2, 10, 3, "2024-01-03 00:00"))
    warehouse.build()

    assert mart(warehouse, 100)[0][1:4] == (20, 2, 40)
    # a sale at the very moment the new price starts pays the new price
    assert mart(warehouse, 102)[0][1:4] == (25, 3, 75)


def test_a_corrected_sale_line_closes_its_previous_version(warehouse):
    seed_shop(warehouse)
    warehouse.build()
    warehouse.execute(
        "update raw.sales set quantity = 3, updated_at = '2024-01-03 10:00' where sale_id = 100"
    )
    warehouse.build()

    assert mart(warehouse, 100) == [
        ("Ann Lee", 20, 2, 40, "2024-01-02 12:00:00", "2024-01-03 10:00:00", False),
        ("Ann Lee", 20, 3, 60, "2024-01-03 10:00:00", None, True),
    ]
    assert watermark(warehouse, "cdm.sales_datamart")[0] == "2024-01-03 10:00:00"


def delete_in_raw(warehouse, table: str, key: str, key_value: int, deleted_at: str) -> None:
    """A deletion as `tshop ingest` applies one (CONTRACT.md section 7): the key leaves RAW and is kept in
    raw.deleted_key, in one transaction."""
    warehouse.execute(
        f"""begin;
            delete from raw.{table} where {key} = {key_value};
            insert into raw.deleted_key (table_name, key_value, deleted_at) values ('{table}', {key_value}, '{deleted_at}');
            commit;"""
    )


def test_a_deleted_sale_line_customer_and_product_close_their_current_versions_and_keep_their_history(
    warehouse,
):
    seed_shop(warehouse)
    warehouse.build()
    delete_in_raw(warehouse, "sales", "sale_id", 101, "2024-01-03 08:00")
    delete_in_raw(warehouse, "customer", "customer_id", 2, "2024-01-03 09:00")
    delete_in_raw(warehouse, "product", "product_id", 11, "2024-01-03 10:00")
    warehouse.build()  # every SCD2 data test runs too: a deleted key may have no current version

    versions = "select {key}, valid_from::text, valid_to::text from dds.{table} where {key} = %s"
    assert warehouse.rows(versions.format(key="sale_id", table="sales"), (101,)) == [
        (101, "2024-01-02 12:00:00", "2024-01-03 08:00:00")
    ]
    assert warehouse.rows(versions.format(key="customer_id", table="customer"), (2,)) == [
        (2, "2024-01-01 10:00:00", "2024-01-03 09:00:00")
    ]
    assert warehouse.rows(versions.format(key="product_id", table="product"), (11,)) == [
        (11, "2024-01-01 09:00:00", "2024-01-03 10:00:00")
    ]
    # the deleted line leaves the current mart, its history stays; the other line keeps the deleted product
    # as it was when sold
    assert mart(warehouse, 101) == [
        ("Ann Lee", 60, 1, 60, "2024-01-02 12:00:00", "2024-01-03 08:00:00", False)
    ]
    assert mart(warehouse, 100) == [("Ann Lee", 20, 2, 40, "2024-01-02 12:00:00", None, True)]
    assert warehouse.rows("select sale_id from cdm.fct_sales order by 1") == [(100,)]
    assert warehouse.rows("select customer_id, is_current from cdm.dim_customer order by 1") == [
        (1, True),
        (2, False),
    ]
    assert warehouse.rows("select product_id, is_current from cdm.dim_product order by 1") == [
        (10, True),
        (11, False),
    ]

    before = state(warehouse)
    warehouse.build()
    assert state(warehouse) == before, "a re-run after the deletions changes nothing"


def test_a_key_that_comes_back_after_its_deletion_gets_a_new_current_version(warehouse):
    seed_shop(warehouse)
    warehouse.build()
    delete_in_raw(warehouse, "customer", "customer_id", 2, "2024-01-03 09:00")
    warehouse.build()
    warehouse.execute(CUSTOMERS, (2, "Bob", "Ray-Lee", "2006-03-01", "2024-01-05 10:00"))
    warehouse.build()

    assert warehouse.rows(
        "select last_name, valid_from::text, valid_to::text from dds.customer where customer_id = 2 "
        "order by valid_from"
    ) == [("Ray", "2024-01-01 10:00:00", "2024-01-03 09:00:00"), ("Ray-Lee", "2024-01-05 10:00:00", None)]


def test_two_changes_to_one_row_between_runs_make_one_version_with_the_latest_values(warehouse):
    seed_shop(warehouse)
    warehouse.build()
    warehouse.execute(
        "update raw.sales set quantity = 3, updated_at = '2024-01-03 10:00' where sale_id = 100"
    )
    warehouse.execute(
        "update raw.sales set quantity = 4, updated_at = '2024-01-03 11:00' where sale_id = 100"
    )
    warehouse.build()

    assert warehouse.rows("select quantity from dds.sales where sale_id = 100 order by valid_from") == [
        (2,),
        (4,),
    ]
    assert [row[2:4] for row in mart(warehouse, 100)] == [(2, 40), (4, 80)]


def test_rows_sharing_the_watermark_timestamp_are_not_lost_when_they_arrive_later(warehouse):
    """A row written after a load with the same timestamp as that load's maximum is read by the next load
    (it reads by the writing transaction, not by updated_at), and nothing is loaded twice."""
    seed_shop(warehouse)
    warehouse.execute(CUSTOMERS, (3, "Cid", "Moe", "1970-01-02", "2024-01-01 10:00"))
    warehouse.build()
    assert warehouse.value("select count(*) from dds.customer") == 3

    # a late writer uses the very timestamp the watermark holds
    warehouse.execute(CUSTOMERS, (4, "Dee", "Fox", "1985-07-07", "2024-01-01 10:00"))
    warehouse.execute(SALES, (102, 1001, "2024-01-02 12:00", 4, 11, 1, "2024-01-02 12:00"))
    warehouse.build()

    assert warehouse.value("select count(*) from dds.customer") == 4, "the late row was read"
    assert warehouse.value("select count(*) from dds.customer where valid_to is not null") == 0, (
        "re-reading the tied rows made no new versions"
    )
    assert mart(warehouse, 102)[0][0] == "Dee Fox"
    assert watermark(warehouse, "dds.customer") == ("2024-01-01 10:00:00", 1), "one row read: the new one"


def test_a_sale_whose_customer_arrives_later_waits_in_rejected_then_enters_the_mart(warehouse):
    seed_shop(warehouse)
    warehouse.execute(SALES, (102, 1001, "2024-01-02 13:00", 3, 10, 1, "2024-01-02 13:00"))
    warehouse.build()
    assert mart(warehouse, 102) == []
    first = warehouse.rows(
        "select reason, first_seen_at, last_tried_at from cdm.sales_rejected where sale_id = 102"
    )
    assert first[0][0] == "customer 3 not in dds.customer"

    warehouse.build()  # still missing: retried, first_seen_at kept
    second = warehouse.rows(
        "select reason, first_seen_at, last_tried_at from cdm.sales_rejected where sale_id = 102"
    )
    assert second[0][1] == first[0][1]
    assert second[0][2] > first[0][2]

    warehouse.execute(CUSTOMERS, (3, "Cid", "Moe", "1970-01-02", "2024-01-05 08:00"))
    warehouse.build()
    assert warehouse.value("select count(*) from cdm.sales_rejected") == 0
    # the sale predates the customer's first version: that first version is used
    assert mart(warehouse, 102) == [("Cid Moe", 20, 1, 20, "2024-01-02 13:00:00", None, True)]


def test_the_run_reports_how_many_lines_it_set_aside_and_why(warehouse):
    seed_shop(warehouse)
    warehouse.execute(SALES, (102, 1001, "2024-01-02 13:00", 3, 10, 1, "2024-01-02 13:00"))
    warehouse.execute(SALES, (103, 1001, "2024-01-02 13:00", 3, 99, 1, "2024-01-02 13:00"))
    result = warehouse.build()
    assert "cdm.sales_rejected: 2 sale line(s) set aside" in result.stdout
    assert "(2 missing their customer, 1 missing their product)" in result.stdout
    assert warehouse.rows(
        "select sale_id, is_missing_customer, is_missing_product from cdm.sales_rejected order by 1"
    ) == [(102, True, False), (103, True, True)]


def test_a_rerun_with_nothing_new_changes_nothing(warehouse):
    seed_shop(warehouse)
    warehouse.execute(
        "update raw.sales set quantity = 5, updated_at = '2024-01-02 18:00' where sale_id = 101"
    )
    warehouse.build()
    before = state(warehouse)
    warehouse.build()
    assert state(warehouse) == before


def test_a_change_older_than_the_current_version_changes_nothing_and_is_counted(warehouse):
    seed_shop(warehouse)
    warehouse.build()
    # a writer moves updated_at backwards: older than the version DDS holds (CONTRACT 1.5)
    warehouse.execute(
        "update raw.customer set last_name = 'Backdated', updated_at = '2023-12-31 00:00' where customer_id = 2"
    )
    warehouse.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-03 09:00' where customer_id = 1"
    )
    warehouse.build()

    assert watermark(warehouse, "dds.customer")[0] == "2024-01-03 09:00:00"
    assert warehouse.rows("select last_name from dds.customer where customer_id = 2") == [("Ray",)]
    assert warehouse.rows(
        "select table_name, key_value, updated_at::text, current_valid_from::text from sl.stale_change"
    ) == [("dds.customer", 2, "2023-12-31 00:00:00", "2024-01-01 10:00:00")]
    assert warehouse.rows(
        """select stale_changes from sl.run_log where node_id = 'snapshot.tshop.customer'
           order by logged_at desc limit 1"""
    ) == [(1,)], "the run log says how many there were"

    warehouse.build()  # read again by no load: counted once
    assert warehouse.value("select count(*) from sl.stale_change") == 1


def test_a_sale_line_written_late_behind_the_watermark_enters_dds_and_the_mart(warehouse):
    """A line uploaded a day after it happened: its updated_at (= sold_at) is behind every watermark."""
    seed_shop(warehouse)
    warehouse.execute(SALES, (102, 1001, "2024-01-04 12:00", 2, 10, 1, "2024-01-04 12:00"))
    warehouse.build()
    assert watermark(warehouse, "dds.sales")[0] == "2024-01-04 12:00:00"

    warehouse.execute(SALES, (103, 1002, "2024-01-03 09:30", 2, 11, 2, "2024-01-03 09:30"))
    warehouse.build()

    assert warehouse.rows("select valid_from::text, valid_to from dds.sales where sale_id = 103") == [
        ("2024-01-03 09:30:00", None)
    ]
    assert mart(warehouse, 103) == [("Bob Ray", 60, 2, 120, "2024-01-03 09:30:00", None, True)]
    assert watermark(warehouse, "dds.sales") == ("2024-01-04 12:00:00", 1), "the watermark keeps its meaning"


def test_a_row_of_a_transaction_still_open_during_a_load_is_read_by_the_next_load(warehouse):
    """A writer whose transaction began before a load read RAW and committed after it: its rows carry an
    earlier transaction than the load saw, and an updated_at behind the watermark the load recorded."""
    seed_shop(warehouse)
    with psycopg.connect(warehouse.dsn) as writer:
        writer.execute(SALES, (102, 1001, "2024-01-02 13:00", 2, 10, 1, "2024-01-02 13:00"))
        warehouse.execute(SALES, (103, 1002, "2024-01-02 14:00", 1, 11, 1, "2024-01-02 14:00"))
        warehouse.build()  # reads while the writer's transaction is open
        assert mart(warehouse, 102) == []
        writer.commit()
    warehouse.build()

    assert mart(warehouse, 102) == [("Bob Ray", 20, 1, 20, "2024-01-02 13:00:00", None, True)]
    assert warehouse.value("select count(*) from dds.sales") == 4


def test_a_row_stamped_by_a_clock_ahead_hides_no_later_row(warehouse):
    """RAW accepts an updated_at up to 5 minutes ahead of its clock (and refuses more). Such a row moves the
    watermark to the wall clock, past every simulated day still to come; those days are loaded all the same."""
    seed_shop(warehouse)
    warehouse.execute(
        CUSTOMERS,
        (
            3,
            "Cid",
            "Moe",
            "1970-01-02",
            dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=4),
        ),
    )
    warehouse.build()
    assert watermark(warehouse, "dds.customer")[0] > "2026"

    warehouse.execute(CUSTOMERS, (4, "Dee", "Fox", "1985-07-07", "2024-01-03 08:00"))
    warehouse.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-03 09:00' where customer_id = 1"
    )
    warehouse.execute(SALES, (102, 1001, "2024-01-03 12:00", 4, 10, 1, "2024-01-03 12:00"))
    warehouse.build()

    assert warehouse.rows(
        "select last_name from dds.customer where customer_id = 1 and valid_to is null"
    ) == [("Kim",)]
    assert mart(warehouse, 102) == [("Dee Fox", 20, 1, 20, "2024-01-03 12:00:00", None, True)]
    assert warehouse.value("select count(*) from cdm.sales_rejected") == 0


def test_a_late_customer_version_valid_at_a_built_sale_rebuilds_that_line_in_place(warehouse):
    """Point in time holds for late dimension data too: a rename stamped before a sale already in the mart,
    but written after it was built, is the version valid at that sale. The line keeps its one version."""
    seed_shop(warehouse)
    warehouse.execute(SALES, (102, 1001, "2024-01-05 12:00", 1, 10, 1, "2024-01-05 12:00"))
    warehouse.build()
    assert mart(warehouse, 102)[0][0] == "Ann Lee"

    warehouse.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-04 09:00' where customer_id = 1"
    )
    warehouse.build()

    assert mart(warehouse, 100)[0][0] == "Ann Lee", "sold before the rename: as it was"
    assert mart(warehouse, 102) == [("Ann Kim", 20, 1, 20, "2024-01-05 12:00:00", None, True)]


def test_a_failed_run_moves_no_watermark_and_its_rerun_ends_as_a_clean_run_does(warehouse, request):
    seed_shop(warehouse)
    warehouse.build()
    warehouse.execute(
        "update raw.sales set quantity = 3, updated_at = '2024-01-03 10:00' where sale_id = 100"
    )
    warehouse.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-03 09:00' where customer_id = 1"
    )
    before = watermark(warehouse, "dds.sales")

    # another session holds dds.sales: its snapshot times out and fails, the others go on
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(warehouse.dsn) as conn:
            conn.execute("lock table dds.sales in access exclusive mode")
            locked.set()
            release.wait(120)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    try:
        failed = warehouse.build(check=False, extra_env={"PGOPTIONS": "-c lock_timeout=3s"})
    finally:
        release.set()
        holder.join()
    assert failed.returncode != 0
    assert "dds.sales" in failed.stdout
    assert watermark(warehouse, "dds.sales") == before, "the failed load left its watermark where it was"

    warehouse.build()
    assert mart(warehouse, 100)[-1][2:4] == (3, 60)
    rerun_state = state(warehouse)

    # the same history in one clean run gives the same state
    clean = request.getfixturevalue("clean_warehouse")
    seed_shop(clean)
    clean.build()
    clean.execute("update raw.sales set quantity = 3, updated_at = '2024-01-03 10:00' where sale_id = 100")
    clean.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-03 09:00' where customer_id = 1"
    )
    clean.build()
    assert state(clean) == rerun_state


def test_a_line_waiting_more_than_a_day_fails_the_waiting_sales_check(warehouse):
    seed_shop(warehouse)
    warehouse.execute(SALES, (102, 1001, "2024-01-02 13:00", 3, 10, 1, "2024-01-02 13:00"))
    warehouse.build()
    check_waiting_sales(warehouse.config)  # set aside by this run: not late yet

    # the line was first set aside two days before the last run that tried it
    warehouse.execute("update cdm.sales_rejected set first_seen_at = last_tried_at - interval '2 days'")
    with pytest.raises(WaitingSalesError, match=r"1 sale line\(s\) have waited .* 1 missing their customer"):
        check_waiting_sales(warehouse.config)

    warehouse.execute(CUSTOMERS, (3, "Cid", "Moe", "1970-01-02", "2024-01-05 08:00"))
    warehouse.build()
    check_waiting_sales(warehouse.config)


# A full disk, for real: a tablespace on a 1 MB tmpfs, which the failing run's sessions write their new tables and
# temporary tables into (`default_tablespace`, `temp_tablespaces`), so PostgreSQL itself answers "No space left
# on device" in the middle of the load.
@pytest.fixture
def tiny_tablespace(warehouse, test_settings):
    """A tablespace on a 1 MB tmpfs, owned by the system user that runs the local PostgreSQL."""
    if test_settings.external_pg_dsn:
        pytest.skip("needs the local PostgreSQL: a tablespace lives on the server's own disk")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs as a full disk needs root")
    owner = pwd.getpwnam(test_settings.pg_os_user)
    mount_point = Path("/tmp") / f"tshop-full-disk-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=1m,uid={owner.pw_uid},gid={owner.pw_gid},mode=0700",
         "tmpfs", str(mount_point)],
        check=True,
    )  # fmt: skip
    name = f"full_disk_{uuid.uuid4().hex[:8]}"
    warehouse.execute(f"create tablespace {name} location '{mount_point}'")
    # dbt writes as the transformer (CONTRACT.md section 10), which may create there
    warehouse.execute(f"grant create on tablespace {name} to {test_settings.pg_role_user('transformer')}")
    yield name
    # whatever the failed run left there is gone with the transaction that failed; drop what remains
    for (relation,) in warehouse.rows(
        "select oid::regclass::text from pg_class where reltablespace = "
        "(select oid from pg_tablespace where spcname = %s)",
        (name,),
    ):
        warehouse.execute(f"drop table if exists {relation}")
    warehouse.execute(f"drop tablespace if exists {name}")
    subprocess.run(["umount", str(mount_point)], check=False)
    shutil.rmtree(mount_point, ignore_errors=True)


def a_busy_day(warehouse) -> None:
    """A correction, a rename and 20,000 new sale lines: more than 1 MB of new versions."""
    warehouse.execute(
        "update raw.sales set quantity = 3, updated_at = '2024-01-03 10:00' where sale_id = 100"
    )
    warehouse.execute(
        "update raw.customer set last_name = 'Kim', updated_at = '2024-01-03 09:00' where customer_id = 1"
    )
    warehouse.execute(
        "insert into raw.sales (sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at) "
        "select 1000 + line, 5000 + line / 3, '2024-01-03 12:00', 1 + line % 2, 10 + line % 2, 1, "
        "'2024-01-03 12:00' from generate_series(1, 20000) as line"
    )


def test_a_full_disk_fails_the_run_leaves_every_layer_as_it_was_and_the_rerun_matches_a_clean_run(
    warehouse, tiny_tablespace, request
):
    seed_shop(warehouse)
    warehouse.build()
    a_busy_day(warehouse)
    before = state(warehouse)

    failed = warehouse.build(
        check=False,
        extra_env={
            "PGOPTIONS": f"-c default_tablespace={tiny_tablespace} -c temp_tablespaces={tiny_tablespace}"
        },
    )
    assert failed.returncode != 0
    assert "No space left on device" in failed.stdout, failed.stdout[-2000:]
    # each load is one transaction with its watermark: the sale lines' loads died half-way and left nothing;
    # a load that fit (the customers' one rename) committed whole, with its own watermark
    after = state(warehouse)
    for table in ("dds.sales", "cdm.sales_datamart", "cdm.sales_rejected"):
        assert after[table] == before[table], table
    moved = dict(after["sl.load_metadata"]).items() - dict(before["sl.load_metadata"]).items()
    # (the star schema's dimensions follow the customers' and products' loads that committed)
    assert {name for name, _ in moved} <= {
        "dds.customer",
        "dds.product",
        "cdm.dim_customer",
        "cdm.dim_product",
    }, "no sale line watermark moved"

    warehouse.build()
    assert warehouse.value("select count(*) from cdm.sales_datamart where is_current") == 20002

    clean = request.getfixturevalue("clean_warehouse")
    seed_shop(clean)
    clean.build()
    a_busy_day(clean)
    clean.build()
    assert state(warehouse) == state(clean)
