"""`ingest` end to end against the test PostgreSQL, from a local landing folder: what each kind of file leaves in
RAW, raw.rejected_row, raw.deleted_key and sl.landing_file. Every test also keeps the baseline rows already in
RAW (checked by the `warehouse` fixture)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import polars as pl
import psycopg
import pytest
from psycopg import sql

from tshop.config import settings
from tshop.ingest import ingest
from tshop.ingest.landing import LandingZone

CUSTOMER_HEADER = "customer_id,first_name,last_name,birth_date,updated_at"
PRODUCT_HEADER = "product_id,name,category,size,price,updated_at"
SALES_HEADER = "sale_id,order_id,sold_at,customer_id,product_id,quantity,updated_at"


def T(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_customer_rules_keep_good_rows_and_refuse_bad_ones(config, landing, warehouse):
    """Kept: good rows in every timestamp spelling. Refused, each with its reason, 1-based data line and
    values as read: blank names (Unicode white space too), a birth date today or later, an unparseable
    timestamp, an updated_at far in the future, a missing or non-integer key."""
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    landing.drop(
        "incoming/customer/2024/03/05/customers.csv",
        landing.csv(
            CUSTOMER_HEADER,
            "100,Ann,Lee,1990-05-01,2024-03-05 10:00:00",  # 1 kept
            "101,Bob,Ray,1991-06-02,2024-03-05T10:00:00.123456",  # 2 kept: T and a fraction
            "102,Cid,Poe,1992-07-03,2024-03-05T10:00:00Z",  # 3 kept: Z
            '103,"  ",Lee,1990-05-01,2024-03-05 10:00:00',  # 4 blank first name
            "104,Dan,\u00a0\u3000,1990-05-01,2024-03-05 10:00:00",  # 5 blank last name (Unicode spaces)
            f"105,Eve,Fox,{tomorrow},2024-03-05 10:00:00",  # 6 birth date not in the past
            "106,Gus,Hay,1990-05-01,05/03/2024 10:00",  # 7 unparseable timestamp
            f"107,Ida,Ivy,1990-05-01,{future}",  # 8 more than 5 minutes ahead
            ",Jon,Kay,1990-05-01,2024-03-05 10:00:00",  # 9 missing key
            "x1,Kim,Lim,1990-05-01,2024-03-05 10:00:00",  # 10 key not an integer
            "108,Liv,Moe,1990-02-30,2024-03-05 10:00:00",  # 11 not a date
        ),
    )
    report = ingest(config, "run-1")
    [file] = report.files
    assert (file.status, file.rows_read, file.rows_loaded, file.rows_rejected) == ("loaded", 11, 3, 8)
    assert [row[0] for row in warehouse.rows("customer")] == [1, 2, 3, 100, 101, 102]
    assert warehouse.row("customer", 101)[4] == T("2024-03-05 10:00:00.123456")
    rejected = {line: (reason, data) for _, _, line, reason, data in warehouse.rejected()}
    assert set(rejected) == {4, 5, 6, 7, 8, 9, 10, 11}
    assert rejected[4][0] == "first_name is blank"
    assert rejected[4][1] == {
        "customer_id": "103",
        "first_name": "  ",
        "last_name": "Lee",
        "birth_date": "1990-05-01",
        "updated_at": "2024-03-05 10:00:00",
    }
    assert rejected[5][0] == "last_name is blank"
    assert rejected[6][0] == "birth_date is not in the past"
    assert rejected[7][0] == "updated_at is not an ISO 8601 UTC timestamp"
    assert rejected[8][0] == "updated_at is more than 5 minutes in the future"
    assert rejected[9][0] == "customer_id is missing"
    assert rejected[9][1]["customer_id"] is None
    assert rejected[10][0] == "customer_id is not an integer"
    assert rejected[11][0] == "birth_date is not a date (YYYY-MM-DD)"
    [recorded] = warehouse.landing_files()
    assert recorded["file_path"] == "incoming/customer/2024/03/05/customers.csv"
    assert (
        recorded["status"],
        recorded["rows_read"],
        recorded["rows_loaded"],
        recorded["rows_rejected"],
    ) == (
        "loaded",
        11,
        3,
        8,
    )
    assert recorded["run_id"] == "run-1" and recorded["error"] is None and len(recorded["checksum"]) == 64


def test_product_and_sales_rules(config, landing, warehouse):
    """Kept: positive prices (rounded to cents as numeric(12,2) rounds) and quantities. Refused: a price of 0,
    a negative one, one that rounds to 0.00, one too large for numeric(12,2), a quantity of 0 or below."""
    landing.drop(
        "incoming/product/p.csv",
        landing.csv(
            PRODUCT_HEADER,
            "100,Boot,shoes,42,19.99,2024-03-05 10:00:00",
            "101,Sock,socks,M,0.005,2024-03-05 10:00:00",  # rounds to 0.01: kept
            "102,Hat,hats,L,0,2024-03-05 10:00:00",
            "103,Cap,hats,L,-5.00,2024-03-05 10:00:00",
            "104,Pin,misc,S,0.004,2024-03-05 10:00:00",  # rounds to 0.00
            "105,Car,misc,S,12345678901.00,2024-03-05 10:00:00",
            "106,Bag,misc,S,ten,2024-03-05 10:00:00",
        ),
    )
    landing.drop(
        "incoming/sales/s.csv",
        landing.csv(
            SALES_HEADER,
            "100,7,2024-03-05 09:00:00,1,1,2,2024-03-05 09:00:00",
            "101,7,2024-03-05 09:00:00,1,1,0,2024-03-05 09:00:00",
            "102,7,2024-03-05 09:00:00,1,1,-1,2024-03-05 09:00:00",
            "103,7,2024-03-05 09:00:00,1,1,1.5,2024-03-05 09:00:00",
            "104,7,not a time,1,1,1,2024-03-05 09:00:00",
        ),
    )
    report = ingest(config)
    assert [(f.path, f.rows_loaded, f.rows_rejected) for f in report.files] == [
        ("incoming/product/p.csv", 2, 5),
        ("incoming/sales/s.csv", 1, 4),
    ]
    assert warehouse.row("product", 100)[4] == Decimal("19.99")
    assert warehouse.row("product", 101)[4] == Decimal("0.01")
    reasons = {(table, line): reason for table, _, line, reason, _ in warehouse.rejected()}
    assert reasons == {
        ("product", 3): "price is not greater than 0",
        ("product", 4): "price is not greater than 0",
        ("product", 5): "price is not greater than 0",
        ("product", 6): "price is out of range for numeric(12,2)",
        ("product", 7): "price is not a decimal number",
        ("sales", 2): "quantity is not greater than 0",
        ("sales", 3): "quantity is not greater than 0",
        ("sales", 4): "quantity is not an integer",
        ("sales", 5): "sold_at is not an ISO 8601 UTC timestamp",
    }
    assert warehouse.row("sales", 100) == (100, 7, T("2024-03-05 09:00"), 1, 1, 2, T("2024-03-05 09:00"))


def test_unknown_columns_are_ignored_and_reported_columns_in_any_order(config, landing, warehouse):
    """Kept: the RAW columns, found by name in any order and any case. Ignored and reported: the others."""
    landing.drop(
        "incoming/customer/c.csv",
        landing.csv(
            "Updated_At,last_name,email,customer_id,birth_date,first_name,loyalty",
            "2024-03-05 10:00:00,Lee,ann@example.com,100,1990-05-01,Ann,gold",
        ),
    )
    [file] = ingest(config).files
    assert file.ignored_columns == ["email", "loyalty"]
    assert "ignored columns: email, loyalty" in file.line()
    assert warehouse.row("customer", 100) == (100, "Ann", "Lee", dt.date(1990, 5, 1), T("2024-03-05 10:00"))
    assert warehouse.landing_files()[0]["ignored_columns"] == ["email", "loyalty"]


def test_files_that_cannot_be_read_are_rejected_whole(config, landing, warehouse):
    """Refused whole, each with its error and nothing of it loaded: a header without the key column, a
    truncated gzip, a corrupt Parquet file, a 0-byte file, a name of no landing format. A good file beside
    them still loads."""
    good = landing.csv(CUSTOMER_HEADER, "100,Ann,Lee,1990-05-01,2024-03-05 10:00:00")
    landing.drop("incoming/customer/a_no_key.csv", landing.csv("first_name,last_name", "Ann,Lee"))
    landing.drop("incoming/customer/b_truncated.csv.gz", landing.gzip(good * 50)[:-30])
    landing.drop("incoming/customer/c_corrupt.parquet", b"PAR1" + b"\x00" * 100 + b"PAR1")
    landing.drop("incoming/customer/d_empty.csv", b"")
    landing.drop("incoming/customer/e_notes.txt", "not data")
    landing.drop("incoming/customer/f_good.csv.gz", landing.gzip(good))
    report = ingest(config)
    statuses = {f.path.rsplit("/", 1)[1]: (f.status, f.error) for f in report.files}
    assert statuses["f_good.csv.gz"] == ("loaded", None)
    assert statuses["a_no_key.csv"] == (
        "rejected",
        "the file has no customer_id column (the key of raw.customer): nothing loaded",
    )
    assert statuses["b_truncated.csv.gz"][0] == "rejected" and "gzip" in statuses["b_truncated.csv.gz"][1]
    assert statuses["c_corrupt.parquet"][0] == "rejected" and "Parquet" in statuses["c_corrupt.parquet"][1]
    assert statuses["d_empty.csv"] == ("rejected", "the file is empty (0 bytes)")
    assert statuses["e_notes.txt"][0] == "rejected" and "not a landing format" in statuses["e_notes.txt"][1]
    assert [row[0] for row in warehouse.rows("customer")] == [1, 2, 3, 100]
    recorded = {row["file_path"].rsplit("/", 1)[1]: row for row in warehouse.landing_files()}
    assert recorded["a_no_key.csv"]["status"] == "rejected" and recorded["a_no_key.csv"]["rows_loaded"] == 0
    assert recorded["d_empty.csv"]["size_bytes"] == 0 and recorded["d_empty.csv"]["rows_read"] is None
    assert warehouse.rejected() == []  # a file rejected whole puts no rows aside


def test_the_same_file_twice_is_skipped_and_a_changed_one_is_ingested_again(config, landing, warehouse):
    """Skipped: a (path, checksum) already recorded, even by another run. Ingested again: new bytes at the
    same path; both versions are recorded."""
    path = "incoming/customer/daily.csv"
    landing.drop(path, landing.csv(CUSTOMER_HEADER, "100,Ann,Lee,1990-05-01,2024-03-05 10:00:00"))
    assert len(ingest(config, "first").files) == 1
    second = ingest(config, "second")
    assert (second.files, second.skipped) == ([], 1)
    landing.drop(path, landing.csv(CUSTOMER_HEADER, "100,Ann,Lim,1990-05-01,2024-03-06 10:00:00"))
    third = ingest(config, "third")
    assert [(f.path, f.rows_loaded) for f in third.files] == [(path, 1)]
    assert warehouse.row("customer", 100)[2] == "Lim"
    assert [(row["run_id"], row["rows_loaded"]) for row in warehouse.landing_files()] == [
        ("first", 1),
        ("third", 1),
    ]


def test_a_file_listed_as_it_was_ingested_is_not_read_again(config, landing, warehouse, monkeypatch):
    """The listing's size and stamp (modification time and inode here, the ETag on S3) of a version already
    ingested skip the file before its bytes are read; a file replaced at the same path is read again."""
    path = "incoming/customer/daily.csv"
    landing.drop(path, landing.csv(CUSTOMER_HEADER, "100,Ann,Lee,1990-05-01,2024-03-05 10:00:00"))
    ingest(config, "first")
    read = []
    original = LandingZone.read
    monkeypatch.setattr(
        LandingZone, "read", lambda zone, landed: read.append(landed.path) or original(zone, landed)
    )

    second = ingest(config, "second")
    assert (second.files, second.skipped, read) == ([], 1, [])
    landing.drop(path, landing.csv(CUSTOMER_HEADER, "100,Ann,Lim,1990-05-01,2024-03-06 10:00:00"))
    third = ingest(config, "third")
    assert (read, [f.rows_loaded for f in third.files]) == ([path], [1])
    assert warehouse.row("customer", 100)[2] == "Lim"


def test_ten_thousand_rows_with_one_bad(config, landing, warehouse):
    """Kept: 9,999 rows. Refused: the one with a blank last name, by its data line number."""
    frame = pl.DataFrame(
        {
            "customer_id": range(1000, 11000),
            "first_name": ["Ann"] * 10000,
            "last_name": ["Lee"] * 4999 + [" \t "] + ["Lee"] * 5000,
            "birth_date": ["1990-05-01"] * 10000,
            "updated_at": ["2024-03-05 10:00:00"] * 10000,
        }
    )
    landing.drop("incoming/customer/big.csv", frame.write_csv())
    [file] = ingest(config).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (10000, 9999, 1)
    assert warehouse.query("select count(*) from raw.customer where customer_id >= 1000") == [(9999,)]
    assert [(line, reason) for _, _, line, reason, _ in warehouse.rejected()] == [
        (5000, "last_name is blank")
    ]


def test_an_older_or_equal_row_changes_nothing(config, landing, warehouse):
    """Refused by the merge (accepted, not loaded): a version of a baseline key older than RAW's, and one as
    old with other values. RAW keeps its row, loaded_xid included."""
    before = warehouse.query("select loaded_xid::text from raw.customer where customer_id = 1")
    landing.drop(
        "incoming/customer/old.csv",
        landing.csv(
            CUSTOMER_HEADER,
            "1,Old,Name,1970-01-01,2023-12-31 23:59:59",
            "2,Same,Time,1970-01-01,2024-01-01 00:00:00",
        ),
    )
    [file] = ingest(config).files
    assert (file.status, file.rows_read, file.rows_loaded, file.rows_rejected) == ("loaded", 2, 0, 0)
    assert warehouse.query("select loaded_xid::text from raw.customer where customer_id = 1") == before


def test_duplicates_within_a_file_and_across_files_latest_wins(config, landing, warehouse):
    """Kept: per key the row with the greatest updated_at, whatever the order of lines and files (a tie in a
    file: its later line). A newer version of a baseline key replaces it."""
    warehouse.touched.add(("product", 1))
    landing.drop(
        "incoming/product/a.csv",
        landing.csv(
            PRODUCT_HEADER,
            "100,Boot,shoes,42,30.00,2024-03-06 10:00:00",
            "100,Boot,shoes,42,10.00,2024-03-05 10:00:00",
            "100,Boot,shoes,42,20.00,2024-03-05 12:00:00",
            "101,Sock,socks,M,1.00,2024-03-05 10:00:00",
            "101,Sock,socks,M,2.00,2024-03-05 10:00:00",  # a tie: the later line
            "1,Item 1,shoes,42,11.00,2024-02-01 00:00:00",  # newer than the baseline's
        ),
    )
    landing.drop(
        "incoming/product/b.csv",
        landing.csv(
            PRODUCT_HEADER,
            "100,Boot,shoes,42,99.00,2024-03-05 23:00:00",  # older than a.csv's 2024-03-06: nothing
            "101,Sock,socks,M,3.00,2024-03-07 10:00:00",  # newer: replaces
        ),
    )
    report = ingest(config)
    assert [(f.rows_read, f.rows_loaded) for f in report.files] == [(6, 3), (2, 1)]
    prices = {row[0]: (row[4], row[5]) for row in warehouse.rows("product")}
    assert prices[100] == (Decimal("30.00"), T("2024-03-06 10:00"))
    assert prices[101] == (Decimal("3.00"), T("2024-03-07 10:00"))
    assert prices[1] == (Decimal("11.00"), T("2024-02-01 00:00"))


def test_a_deletion_removes_the_key_and_is_kept(config, landing, warehouse):
    """A deletion newer than RAW's row: the key leaves RAW and lands in raw.deleted_key at its updated_at. One
    older than RAW's row: nothing. One for a key RAW never had: kept in raw.deleted_key. A later file with an
    older version of a deleted key does not bring it back; a newer version does."""
    warehouse.touched.update({("sales", 1), ("sales", 2)})
    landing.drop(
        "incoming/sales/a_deletions.csv",
        landing.csv(
            "sale_id,updated_at,deleted",
            "1,2024-03-05 10:00:00,true",
            "2,2023-06-01 00:00:00,true",  # older than RAW's 2024-01-01: nothing
            "500,2024-03-05 10:00:00,true",
            "3,2024-03-05 10:00:00,false",  # not a deletion, and no values: rejected
        ),
    )
    landing.drop(
        "incoming/sales/b_later.csv",
        landing.csv(
            SALES_HEADER,
            "1,1,2024-01-01 00:00:00,1,1,5,2024-03-01 00:00:00",  # older than its deletion: stays deleted
            "500,9,2024-03-06 00:00:00,1,1,1,2024-03-06 00:00:00",  # newer than its deletion: back
        ),
    )
    report = ingest(config)
    assert [(f.rows_loaded, f.rows_rejected, f.rows_removed) for f in report.files] == [(2, 1, 1), (1, 0, 0)]
    assert [row[0] for row in warehouse.rows("sales")] == [2, 3, 500]
    assert warehouse.deleted() == [("sales", 1, T("2024-03-05 10:00")), ("sales", 500, T("2024-03-05 10:00"))]
    [(_, _, line, reason, _)] = warehouse.rejected()
    assert (line, reason.split("; ")[0]) == (4, "order_id is missing")


def test_jsonl_and_parquet_with_their_own_types(config, landing, warehouse):
    """Kept: typed values (Parquet integers, dates, timestamps with a time zone, decimals; JSON numbers and
    booleans). Refused: a JSON line that is not an object, by its line, the rest of the file loading."""
    frame = pl.DataFrame(
        {
            "product_id": [100, 101],
            "name": ["Boot", "Sock"],
            "category": ["shoes", "socks"],
            "size": ["42", "M"],
            "price": [Decimal("19.99"), Decimal("0.00")],
            "updated_at": [dt.datetime(2024, 3, 5, 12), dt.datetime(2024, 3, 5, 12)],
        },
        schema_overrides={"price": pl.Decimal(10, 2)},
    ).with_columns(pl.col("updated_at").dt.replace_time_zone("Europe/Berlin"))
    landing.drop("incoming/product/p.parquet", landing.parquet(frame))
    lines = [
        json.dumps({"customer_id": 100, "first_name": "Ann", "last_name": "Lee", "birth_date": "1990-05-01",
                    "updated_at": "2024-03-05T10:00:00Z", "tags": ["a"]}),
        "[1, 2]",
        json.dumps({"customer_id": "101", "first_name": "Bob", "last_name": "Ray", "birth_date": "1990-05-01",
                    "updated_at": "2024-03-05 10:00:00"}),
        json.dumps({"customer_id": 2, "updated_at": "2024-03-05 10:00:00", "deleted": True}),
    ]  # fmt: skip
    landing.drop("incoming/customer/c.jsonl.gz", landing.gzip("\n".join(lines) + "\n"))
    warehouse.touched.add(("customer", 2))
    report = ingest(config)
    assert [(f.path, f.rows_read, f.rows_loaded, f.rows_rejected) for f in report.files] == [
        ("incoming/customer/c.jsonl.gz", 4, 3, 1),
        ("incoming/product/p.parquet", 2, 1, 1),
    ]
    assert warehouse.row("product", 100)[4:] == (Decimal("19.99"), T("2024-03-05 11:00"))  # 12:00 in Berlin
    assert [row[0] for row in warehouse.rows("customer")] == [1, 3, 100, 101]
    reasons = {(table, line): reason for table, _, line, reason, _ in warehouse.rejected()}
    assert reasons == {("customer", 2): "not a JSON object", ("product", 2): "price is not greater than 0"}


def test_event_folders_and_hidden_files_are_left_alone(config, landing, warehouse):
    """Not ingested, not recorded: clickstream and reviews (the events' ingest), other folders, files still
    being written under a hidden name. Files at any depth under a table's folder are, in path order."""
    row = landing.csv(CUSTOMER_HEADER, "100,Ann,Lee,1990-05-01,2024-03-05 10:00:00")
    landing.drop("incoming/clickstream/e.jsonl", '{"event_id": "1"}\n')
    landing.drop("incoming/reviews/r.jsonl", '{"review_id": "1"}\n')
    landing.drop("incoming/orders/o.csv", row)
    landing.drop("incoming/customer/.in-progress.csv", row)
    landing.drop("incoming/customer/_SUCCESS", "")
    landing.drop("incoming/customer/z.csv", row)
    landing.drop("incoming/customer/a/b/c/deep.csv", row)
    report = ingest(config)
    assert [f.path for f in report.files] == ["incoming/customer/a/b/c/deep.csv", "incoming/customer/z.csv"]
    assert [row["file_path"] for row in warehouse.landing_files()] == [f.path for f in report.files]


def test_a_csv_row_with_too_many_fields_is_rejected_alone(config, landing, warehouse):
    """Refused: a row with more fields than the header, by its line. Kept: the rest (the slow path)."""
    landing.drop(
        "incoming/customer/c.csv",
        landing.csv(
            CUSTOMER_HEADER,
            "100,Ann,Lee,1990-05-01,2024-03-05 10:00:00",
            "101,Bob,Ray,1990-05-01,2024-03-05 10:00:00,extra",
            '102,"Cid, Jr.",Poe,1990-05-01,2024-03-05 10:00:00',
        ),
    )
    [file] = ingest(config).files
    assert (file.rows_read, file.rows_loaded, file.rows_rejected) == (3, 2, 1)
    [(_, _, line, reason, data)] = warehouse.rejected()
    assert (line, reason) == (2, "the row has 6 fields; the header has 5")
    assert data["fields"][-1] == "extra"
    assert warehouse.row("customer", 102)[1] == "Cid, Jr."


def test_two_ingests_at_once_take_turns(config, landing, warehouse):
    """Each file is ingested once although two ingests start together: the second waits for the first's
    advisory lock, then finds every file recorded and skips it."""
    for day in range(1, 5):
        landing.drop(
            f"incoming/customer/2024-03-0{day}.csv",
            landing.csv(CUSTOMER_HEADER, f"{100 + day},Ann,Lee,1990-05-01,2024-03-0{day} 10:00:00"),
        )
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda run: ingest(config, run), ["one", "two"]))
    assert sorted((len(r.files), r.skipped) for r in reports) == [(0, 4), (4, 0)]
    assert len(warehouse.landing_files()) == 4


@pytest.mark.slow
def test_the_generators_landing_files_ingest_to_the_rows_it_writes_into_raw(test_settings, pg_dsn, landing):
    """`tshop-datagen generate --to landing`, ingested, gives RAW exactly what `generate` into RAW gives for
    the same seed and days (CONTRACT.md section 7: an outside export's whole road)."""
    args = ["generate", "--customers", "3000", "--days", "3", "--seed", "7", "--start-date", "2024-03-04"]
    dsns = {}
    for name in ("tshop_ingest_generated_raw", "tshop_ingest_generated_landing"):
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        dsns[name] = test_settings.pg_dsn(database=name)
    generate = [sys.executable, "-m", "datagen.cli", *args]
    subprocess.run([*generate, "--dsn", dsns["tshop_ingest_generated_raw"]], check=True, capture_output=True)
    url = landing.root.as_uri()
    subprocess.run([*generate, "--to", "landing", "--landing-url", url], check=True, capture_output=True)
    config = settings(
        {
            **test_settings.env,
            "TSHOP_PG_DSN": dsns["tshop_ingest_generated_landing"],
            "TSHOP_LANDING_URL": url,
        }
    )
    report = ingest(config, "generated")
    assert report.files and not report.rejected and not any(f.rows_rejected for f in report.files)
    states = []
    for dsn in dsns.values():
        with psycopg.connect(dsn) as conn:
            states.append(
                [
                    conn.execute(
                        f"select count(*), sum(hashtext(row({columns})::text)) from raw.{table}"
                    ).fetchone()
                    for table, columns in (
                        ("customer", "customer_id, first_name, last_name, birth_date, updated_at"),
                        ("product", "product_id, name, category, size, price, updated_at"),
                        (
                            "sales",
                            "sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at",
                        ),
                    )
                ]
            )
    assert states[0] == states[1] and states[0][2][0] > 0
