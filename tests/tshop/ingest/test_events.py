"""The web events' load (CONTRACT.md section 8): JSON lines from the landing zone into ClickHouse's `events`
tables by ClickHouse's own readers, each document once, each bad line kept aside with its reason, each file
recorded in sl.landing_file; and the funnel and rating marts over them.

One small shop (PostgreSQL warehouse and ClickHouse marts, no events of its own) for the module; the tests
drop files of their own into its landing folder and load them with `tshop.ingest.events.load_events`, the
road `tshop load-events` and the DAG's three tasks take."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tshop.config import Settings, settings
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
from tshop.ingest.events import EVENT_MODELS, load_events, record, register

FIRST_DAY = dt.date(2024, 3, 4)  # a Monday
DAY = "2024-03-06"


def event(event_id: str, event_type: str, session: str, customer: int | None = None, **fields) -> dict:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": f"{DAY} 10:00:00",
        "session_id": session,
        "customer_id": customer,
        **fields,
    }


def review(review_id: str, product: int, rating, **fields) -> dict:
    return {
        "review_id": review_id,
        "order_id": 1,
        "customer_id": 1,
        "product_id": product,
        "rating": rating,
        "title": "Fits",
        "body": "As described.",
        "created_at": f"{DAY} 12:00:00",
        **fields,
    }


def lines(*documents: dict | str) -> bytes:
    return "".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in documents).encode()


@pytest.fixture(scope="module")
def shop(build_shop, tmp_path_factory) -> Settings:
    landing = tmp_path_factory.mktemp("events-landing")
    # build_shop drops ClickHouse's cdm and events first: this module's own files only
    return build_shop("tshop_events", FIRST_DAY, 5, 300, TSHOP_LANDING_URL=landing.as_uri())


class Books:
    """What the load left: ClickHouse's events tables and PostgreSQL's sl.landing_file."""

    def __init__(self, config: Settings, clickhouse_rows):
        self.config = config
        self.clickhouse_rows = clickhouse_rows

    def rows(self, query: str) -> list[tuple]:
        return self.clickhouse_rows(self.config, query)

    def landing_file(self, path: str) -> dict:
        with (
            psycopg.connect(self.config.pg_dsn()) as conn,
            conn.cursor(row_factory=psycopg.rows.dict_row) as cursor,
        ):
            found = cursor.execute(
                "select * from sl.landing_file where file_path = %s order by ingested_at", (path,)
            ).fetchall()
        assert len(found) == 1, found
        return found[0]

    def rejected(self, path: str) -> list[tuple[int, str]]:
        return self.rows(
            f"select line_number, reason from events.rejected_event where file_path = '{path}' order by line_number"
        )

    def snapshot(self) -> dict:
        return {
            "clickstream": self.rows(
                "select * except (loaded_at, run_id) from events.clickstream order by event_id"
            ),
            "review": self.rows("select * except (loaded_at, run_id) from events.review order by review_id"),
            "rejected": self.rows(
                "select * except (rejected_at, run_id) from events.rejected_event order by all"
            ),
            "funnel": self.rows("select * from cdm.conversion_funnel_daily order by event_date"),
            "rating": self.rows("select * from cdm.product_rating order by product_id"),
            "files": sorted(
                (row["file_path"], row["checksum"], row["status"], row["rows_read"], row["rows_loaded"])
                for row in self._all_files()
            ),
        }

    def _all_files(self) -> list[dict]:
        with (
            psycopg.connect(self.config.pg_dsn()) as conn,
            conn.cursor(row_factory=psycopg.rows.dict_row) as cursor,
        ):
            return cursor.execute(
                "select * from sl.landing_file where table_name in ('clickstream', 'review')"
            ).fetchall()


def drop(shop: Settings, path: str, data: bytes) -> None:
    target = Path(shop.landing_url.removeprefix("file://")) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


@pytest.fixture(scope="module")
def first_load(shop: Settings):
    """Every bad input of the issue in one landing, beside good events; one load."""
    good = [
        event("g1", "session_start", "s1", 1, device="mobile", referrer={"site": "search"}),
        event("g2", "product_view", "s1", 1, product_id=1),
        event("g3", "add_to_cart", "s1", 1, product_id=1),
        event("g4", "checkout", "s1", 1, order_id=1),
        event("g5", "session_start", "s2", None),
        event("g6", "product_view", "s2", None, product_id=2),
        event("g7", "session_start", "s3", 2),
        event("g8", "product_view", "s3", 2, product_id=3),
    ]
    drop(
        shop,
        f"incoming/clickstream/{DAY}/web-1.jsonl.gz",
        gzip.compress(
            lines(
                *good[:4],
                '{"event_id": "m1", "event_type": "session_start", "occurred_at": ',  # 5: cut short
                {"event_type": "session_start", "occurred_at": f"{DAY} 10:00:00", "session_id": "x"},  # 6
                {"event_id": "m3", "occurred_at": f"{DAY} 10:00:00", "session_id": "x"},  # 7
                {"event_id": "m4", "event_type": "session_start", "session_id": "x"},  # 8
                event("m5", "teleport", "x"),  # 9
                event("m6", "checkout", "x", 1),  # 10: no order
                event(
                    "g1", "session_start", "s1", 1, device="mobile", referrer={"site": "search"}
                ),  # 11: again
                event("m7", "session_start", "x", occurred_at="yesterday"),  # 12
                event("m8", "product_view", "x", customer_id="somebody", product_id=1),  # 13
                "",  # 14: a blank line is no document
                "[1, 2]",  # 15
                *good[4:],
            )
        ),
    )
    # the same file delivered again under another name: nothing new (in one load, the file first in path
    # order is the one an event is counted from)
    drop(shop, f"incoming/clickstream/{DAY}/web-9-again.jsonl", gzip.decompress(
        (Path(shop.landing_url.removeprefix("file://")) / f"incoming/clickstream/{DAY}/web-1.jsonl.gz").read_bytes()
    ))  # fmt: skip
    drop(
        shop,
        f"incoming/reviews/{DAY}/reviews.jsonl",
        lines(
            review("r1", 1, 5, verified=True),
            review("r2", 1, 3),
            review("r3", 2, 0),
            review("r4", 2, 6),
            review("r5", 2, 4.5),
            review("r6", 3, "five"),
            review("r1", 1, 5, verified=True),
            {"order_id": 1, "product_id": 1, "rating": 4, "created_at": f"{DAY} 12:00:00"},
        ),
    )
    drop(shop, f"incoming/clickstream/{DAY}/truncated.jsonl.gz", gzip.compress(lines(*good) * 50)[:60])
    drop(shop, f"incoming/clickstream/{DAY}/empty.jsonl.gz", b"")
    drop(shop, f"incoming/clickstream/{DAY}/nothing.jsonl", b"")
    drop(shop, f"incoming/clickstream/{DAY}/export.csv", b"event_id,event_type\n1,checkout\n")
    drop(
        shop, f"incoming/clickstream/{DAY}/.partial.jsonl", lines(event("t1", "checkout", "t", 1, order_id=1))
    )
    report = load_events(shop, run_id="events_test_1")
    return report


@pytest.fixture(scope="module")
def books(shop: Settings, first_load, clickhouse_rows) -> Books:
    return Books(shop, clickhouse_rows)


def test_valid_events_load_once_with_their_extra_fields(books: Books):
    rows = books.rows(
        "select event_id, event_type, session_id, customer_id, product_id, order_id, extra "
        "from events.clickstream order by event_id"
    )
    assert [row[0] for row in rows] == ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8"]
    g1 = rows[0]
    assert g1[3] == 1 and g1[6] == {"device": '"mobile"', "referrer": '{"site":"search"}'}
    assert rows[4][3] is None  # anonymous visitor
    assert rows[3][5] == 1  # the checkout's order


def test_every_bad_line_is_kept_aside_with_its_reason_and_line(books: Books):
    assert books.rejected(f"incoming/clickstream/{DAY}/web-1.jsonl.gz") == [
        (5, "malformed JSON"),
        (6, "missing event_id"),
        (7, "missing event_type"),
        (8, "missing occurred_at"),
        (9, "unknown event_type teleport"),
        (10, "checkout without order_id"),
        (12, "occurred_at is not a time: yesterday"),
        (13, "customer_id is not an integer"),
        (15, "not a JSON object"),
    ]
    document = books.rows(
        "select document from events.rejected_event where line_number = 9 and file_path like '%web-1.jsonl.gz'"
    )
    assert json.loads(document[0][0])["event_type"] == "teleport"


def test_reviews_outside_1_to_5_or_not_integers_are_refused(books: Books):
    assert books.rejected(f"incoming/reviews/{DAY}/reviews.jsonl") == [
        (3, "rating outside 1-5: 0"),
        (4, "rating outside 1-5: 6"),
        (5, "rating is not an integer: 4.5"),
        (6, "rating is not an integer: five"),
        (8, "missing review_id"),
    ]
    assert books.rows("select review_id, rating, extra from events.review order by review_id") == [
        ("r1", 5, {"verified": "true"}),
        ("r2", 3, {}),
    ]


def test_each_file_is_recorded_with_its_counts(books: Books):
    web = books.landing_file(f"incoming/clickstream/{DAY}/web-1.jsonl.gz")
    assert (web["status"], web["table_name"], web["rows_read"], web["rows_loaded"], web["rows_rejected"]) == (
        "loaded", "clickstream", 18, 8, 9,
    )  # fmt: skip
    # 18 lines read: 8 events, 9 refused, and g1 again, counted once
    copy = books.landing_file(f"incoming/clickstream/{DAY}/web-9-again.jsonl")
    assert (copy["status"], copy["rows_read"], copy["rows_loaded"]) == ("loaded", 18, 0)
    nothing = books.landing_file(f"incoming/clickstream/{DAY}/nothing.jsonl")
    assert (nothing["status"], nothing["rows_read"], nothing["rows_loaded"]) == ("loaded", 0, 0)


def test_unreadable_files_are_rejected_whole_and_the_rest_loads(books: Books, first_load):
    truncated = books.landing_file(f"incoming/clickstream/{DAY}/truncated.jsonl.gz")
    assert truncated["status"] == "rejected" and "gzip" in truncated["error"]
    assert books.landing_file(f"incoming/clickstream/{DAY}/empty.jsonl.gz")["status"] == "rejected"
    csv = books.landing_file(f"incoming/clickstream/{DAY}/export.csv")
    assert csv["status"] == "rejected" and ".jsonl" in csv["error"]
    assert not books.rows("select 1 from events.clickstream where event_id = 't1'")  # a temporary name
    assert len(first_load.rejected) == 3


def test_the_funnel_counts_the_days_events(books: Books):
    (funnel,) = books.rows(
        "select sessions, product_viewers, cart_adders, buyers, customers, conversion, expected_conversion "
        f"from cdm.conversion_funnel_daily where event_date = '{DAY}'"
    )
    sessions, viewers, adders, buyers, customers, conversion, expected = funnel
    # s1 (customer 1 buys), s2 (anonymous, views), s3 (customer 2, views)
    assert (sessions, viewers, adders, buyers) == (3, 3, 1, 1)
    # the shop's customers registered before the day, from the customer dimension
    (registered,) = books.rows(
        "select count() from (select customer_id, min(valid_from) as first from cdm.dim_customer "
        f"group by customer_id) where first < toDateTime64('{DAY}', 6, 'UTC')"
    )[0]
    assert customers == registered > 0
    assert conversion == pytest.approx(1 / customers)
    assert expected == 0.01  # a Wednesday


def test_product_rating_averages_each_products_valid_reviews(books: Books):
    assert books.rows("select product_id, reviews, average_rating from cdm.product_rating") == [(1, 2, 4.0)]
    (category,) = books.rows("select product_category from cdm.product_rating")[0]
    (current,) = books.rows("select category from cdm.dim_product final where product_id = 1 and is_current")[
        0
    ]
    assert category == current


def test_loading_again_changes_nothing(shop: Settings, books: Books):
    before = books.snapshot()
    report = load_events(shop, run_id="events_test_2")
    assert not report.registered and not report.loaded
    assert books.snapshot() == before


def test_a_full_refresh_of_the_project_keeps_every_event(shop: Settings, books: Books):
    """The events tables are the only copy of what was loaded (the files may be gone): `--full-refresh` of
    the ClickHouse project leaves them as they are, and the marts it rebuilds come out the same."""
    before = books.snapshot()
    run_dbt(shop, ["build", "--full-refresh", "--select", EVENT_MODELS], project=CLICKHOUSE_PROJECT)
    assert books.snapshot() == before


def test_a_load_that_died_before_recording_its_files_ends_like_a_clean_one(shop: Settings, books: Books):
    """Files loaded into ClickHouse but not recorded (the run died between the two): the next load takes
    them again, counts each event once, and records them."""
    drop(shop, "incoming/clickstream/2024-03-07/late.jsonl", lines(
        event("d1", "session_start", "s9", 3, occurred_at="2024-03-07 09:00:00"),
        event("d2", "checkout", "s9", 3, order_id=7, occurred_at="2024-03-07 09:05:00"),
    ))  # fmt: skip
    register(shop, run_id="events_test_3")
    run_dbt(shop, ["build", "--select", EVENT_MODELS], project=CLICKHOUSE_PROJECT)
    # ... killed here: nothing recorded
    with pytest.raises(AssertionError):
        books.landing_file("incoming/clickstream/2024-03-07/late.jsonl")
    report = load_events(shop, run_id="events_test_4")
    assert [file.path for file in report.loaded] == ["incoming/clickstream/2024-03-07/late.jsonl"]
    assert books.rows(
        "select event_id from events.clickstream where event_date = '2024-03-07' order by 1"
    ) == [
        ("d1",),
        ("d2",),
    ]
    late = books.landing_file("incoming/clickstream/2024-03-07/late.jsonl")
    assert (late["rows_read"], late["rows_rejected"]) == (2, 0)
    assert books.rows("select buyers from cdm.conversion_funnel_daily where event_date = '2024-03-07'") == [
        (1,)
    ]
    # and `record` again finds nothing left to record
    assert not record(shop, run_id="events_test_5").loaded


def test_events_load_from_an_s3_landing_zone(shop: Settings, s3_env: dict[str, str], clickhouse_rows):
    """The same models read an s3:// landing zone with ClickHouse's s3() and the standard AWS variables."""
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        key=s3_env["AWS_ACCESS_KEY_ID"],
        secret=s3_env["AWS_SECRET_ACCESS_KEY"],
    )
    if not fs.exists("tshop-events"):
        fs.mkdir("tshop-events")
    fs.pipe(
        "tshop-events/landing/incoming/clickstream/2024-03-08/web.jsonl.gz",
        gzip.compress(lines(
            event("s3-1", "session_start", "s3s", 4, occurred_at="2024-03-08 08:00:00"),
            "{not json",
            event("s3-2", "product_view", "s3s", 4, product_id=2, occurred_at="2024-03-08 08:01:00"),
        )),
    )  # fmt: skip
    s3_shop = settings({**shop.env, **s3_env, "TSHOP_LANDING_URL": "s3://tshop-events/landing"})
    report = load_events(s3_shop, run_id="events_test_s3")
    assert [(file.path, file.rows_read, file.rows_loaded, file.rows_rejected) for file in report.loaded] == [
        ("incoming/clickstream/2024-03-08/web.jsonl.gz", 3, 2, 1)
    ]
    books = Books(s3_shop, clickhouse_rows)
    assert books.rows(
        "select event_id from events.clickstream where event_date = '2024-03-08' order by 1"
    ) == [
        ("s3-1",),
        ("s3-2",),
    ]
    assert books.rejected("incoming/clickstream/2024-03-08/web.jsonl.gz") == [(2, "malformed JSON")]


def load_events_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tshop.cli", "load-events", "--run-id", "events_test_cli"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_prints_a_line_per_file_and_exits_0(shop: Settings, books: Books):
    drop(shop, "incoming/reviews/2024-03-09/one.jsonl", lines(review("c1", 1, 4), "{oops"))
    result = load_events_cli(shop.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[-2].startswith("loaded   incoming/reviews/2024-03-09/one.jsonl: read 2, loaded 1, rejected 1")
    assert out[-1].startswith("events: 1 files registered, 1 loaded (1 documents, 1 lines rejected)")


def test_the_command_exits_1_with_the_reason_when_a_server_refuses_it(shop: Settings):
    # its books are the loader's (CONTRACT.md section 10)
    result = load_events_cli({**shop.env, "TSHOP_PG_LOADER_PASSWORD": "wrong"})
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr and "Traceback" not in result.stderr
    ch = urlsplit(shop.clickhouse_url)
    wrong_ch = ch._replace(netloc=f"{ch.username or 'default'}:wrong@{ch.hostname}:{ch.port}").geturl()
    result = load_events_cli({**shop.env, "TSHOP_CLICKHOUSE_URL": wrong_ch})
    assert result.returncode == 1
    assert result.stderr.startswith("error: the events' load failed in ClickHouse"), result.stderr
    assert "Traceback" not in result.stderr
