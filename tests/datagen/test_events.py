"""The web events the simulator emits (CONTRACT.md section 8, `datagen/events.py`): the clickstream agrees
with the day's sales (one checkout per cheque, with its order, customer and time; none without one), other
customers and anonymous visitors browse without buying, reviews are of lines bought, days later; the files
are byte-identical for a seed, and the sales are the same with events or without. The fast tests run in
memory and on local files; the ones marked slow need PostgreSQL."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from datagen import ShopSimulation, events
from datagen.cli import app
from datagen.events import EventRates
from datagen.landing import LandingEventSink, LandingWriter
from datagen.memory import MemoryEventSink, MemoryWriter
from datagen.record import IdRanges

START = dt.date(2024, 3, 4)  # a Monday
DAYS = 14
TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)
TIMESTAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$"


def simulate(writer, sink, days: int = DAYS, start: dt.date = START, **kwargs):
    arguments = {"seed": 5, "initial_customers": 3_000, **kwargs}
    return ShopSimulation(writer, events=sink, **arguments).run(start, days)


def event_files(url: str) -> dict[str, bytes]:
    root = Path(url.removeprefix("file://"))
    return {
        str(path.relative_to(root)): path.read_bytes()
        for kind in events.KINDS
        for path in sorted((root / "incoming" / kind).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def shop() -> tuple[MemoryWriter, MemoryEventSink]:
    writer, sink = MemoryWriter(), MemoryEventSink()
    simulate(writer, sink)
    return writer, sink


@pytest.fixture(scope="module")
def clicks(shop) -> pl.DataFrame:
    return (
        shop[1]
        .frame("clickstream")
        .with_columns(
            pl.col("occurred_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us").alias("moment")
        )
    )


@pytest.fixture(scope="module")
def sales(shop) -> pl.DataFrame:
    return shop[0].rows("raw.sales").with_columns(pl.col("sold_at").dt.date().alias("day"))


def test_documents_hold_the_contract_fields_and_two_more(clicks, shop):
    assert clicks.drop("moment").schema == events.CLICKSTREAM_SCHEMA
    assert set(clicks["event_type"].unique()) == set(events.EVENT_TYPES)
    assert clicks["event_id"].is_unique().all(), "event ids are unique across days"
    assert clicks["occurred_at"].str.contains(TIMESTAMP).all()
    starts = clicks.filter(pl.col("event_type") == "session_start")
    assert starts["device"].is_in(list(events.DEVICES)).all() and starts["referrer"].null_count() == 0
    assert (
        clicks.filter(pl.col("event_type") != "session_start")["referrer"].null_count()
        == clicks.height - starts.height
    )
    products = clicks.filter(pl.col("event_type").is_in(["product_view", "add_to_cart"]))
    assert products["product_id"].null_count() == 0
    assert products["product_id"].is_in(shop[0].rows("raw.product")["product_id"].implode()).all()
    others = clicks.filter(~pl.col("event_type").is_in(["product_view", "add_to_cart"]))
    assert others["product_id"].null_count() == others.height
    # every day's events lie within the day, and each day's file holds its own day only
    for (kind, day), frame in shop[1].documents.items():
        moments = frame["created_at" if kind == "reviews" else "occurred_at"].str.slice(0, 10)
        assert (moments == day.isoformat()).all(), (kind, day)


def test_every_cheque_has_one_checkout_with_its_order_customer_and_moment(clicks, sales):
    checkouts = clicks.filter(pl.col("event_type") == "checkout")
    assert checkouts["order_id"].null_count() == 0 and checkouts["order_id"].is_unique().all()
    assert clicks.filter(pl.col("event_type") != "checkout")["order_id"].null_count() == (
        clicks.height - checkouts.height
    ), "order_id only on checkouts"
    cheques = sales.group_by("order_id").agg(pl.col("customer_id").first(), pl.col("sold_at").first())
    assert cheques.height > 100
    assert_frame_equal(
        checkouts.select("order_id", "customer_id", pl.col("moment").alias("sold_at")).sort("order_id"),
        cheques.sort("order_id"),
    )


def test_a_buyers_session_views_and_carts_each_product_bought_before_the_checkout(clicks, sales):
    buying = clicks.filter(
        pl.col("session_id").is_in(clicks.filter(pl.col("event_type") == "checkout")["session_id"].implode())
    )
    sessions = buying.group_by("session_id").agg(
        pl.col("customer_id").n_unique().alias("customers"),
        pl.col("order_id").drop_nulls().first(),
        pl.col("moment").filter(pl.col("event_type") == "session_start").first().alias("started"),
        pl.col("moment").filter(pl.col("event_type") == "checkout").first().alias("checkout"),
        pl.col("moment").min().alias("first"),
        pl.col("moment").max().alias("last"),
        pl.col("product_id").filter(pl.col("event_type") == "product_view").alias("viewed"),
        pl.col("product_id").filter(pl.col("event_type") == "add_to_cart").sort().alias("carted"),
        (pl.col("event_type") == "session_start").sum().alias("starts"),
    )
    bought = sales.group_by("order_id").agg(pl.col("product_id").sort().alias("bought"))
    joined = sessions.join(bought, on="order_id", validate="1:1")
    assert joined.height == bought.height
    assert (joined["customers"] == 1).all() and (joined["starts"] == 1).all()
    assert (joined["started"] == joined["first"]).all() and (joined["checkout"] == joined["last"]).all()
    assert (joined["checkout"] - joined["started"] <= dt.timedelta(hours=2)).all(), "a few minutes"
    assert (joined["started"].dt.date() == joined["checkout"].dt.date()).all(), "clamped to the day's start"
    for row in joined.iter_rows(named=True):
        assert row["carted"] == row["bought"], row["order_id"]
        assert set(row["bought"]) <= set(row["viewed"]), row["order_id"]
    assert sum(len(row) for row in joined["viewed"]) > sum(len(row) for row in joined["bought"]), (
        "extra views"
    )


def test_others_browse_without_buying_and_anonymous_visitors_have_no_customer(clicks, sales, shop):
    per_session = clicks.group_by("session_id").agg(
        pl.col("customer_id").first(),
        pl.col("customer_id").null_count().alias("nulls"),
        pl.len().alias("events"),
        (pl.col("event_type") == "checkout").any().alias("bought"),
        (pl.col("event_type") == "add_to_cart").any().alias("carted"),
        pl.col("moment").first().dt.date().alias("day"),
    )
    anonymous = per_session.filter(pl.col("customer_id").is_null())
    assert anonymous.height > 100 and (anonymous["nulls"] == anonymous["events"]).all()
    assert not anonymous["bought"].any(), "an anonymous visitor never checks out"
    browsing = per_session.filter(~pl.col("bought"))
    assert browsing["carted"].any(), "some carts are abandoned"
    registered = browsing.filter(pl.col("customer_id").is_not_null())
    assert registered.height > 100
    buyers = sales.select("day", "customer_id").unique()
    assert registered.join(buyers, on=["day", "customer_id"]).is_empty(), "a browser is no buyer that day"
    # buyers per day: the distinct customers of the day's sales
    checkout_buyers = (
        clicks.filter(pl.col("event_type") == "checkout")
        .group_by(pl.col("moment").dt.date().alias("day"))
        .agg(pl.col("customer_id").n_unique())
    )
    assert_frame_equal(
        checkout_buyers.sort("day"), buyers.group_by("day").agg(pl.col("customer_id").n_unique()).sort("day")
    )
    assert registered["customer_id"].is_in(shop[0].rows("raw.customer")["customer_id"].implode()).all()


def test_traffic_follows_the_days_buyers_and_the_volume_knob(shop):
    writer, sink = shop
    per_buyer = [
        sink.documents[("clickstream", day)].height / counts["orders"] for day, counts in writer.days.items()
    ]
    assert all(9 < ratio < 14.5 for ratio in per_buyer), per_buyer  # about 7.8 + 3.8 per buyer
    quiet, busy = MemoryEventSink(), MemoryEventSink()
    simulate(MemoryWriter(), quiet, days=2, event_rates=EventRates(browsing_sessions_per_buyer=0))
    simulate(MemoryWriter(), busy, days=2, event_rates=EventRates(browsing_sessions_per_buyer=3))
    for day in (START, START + dt.timedelta(days=1)):
        only_buyers = quiet.documents[("clickstream", day)]
        sessions = only_buyers["session_id"].n_unique()
        assert sessions == only_buyers.filter(pl.col("event_type") == "checkout").height, (
            "only buyers' sessions"
        )
        assert busy.documents[("clickstream", day)].height > 2 * only_buyers.height


def test_reviews_are_of_lines_bought_two_to_ten_days_before(shop, sales):
    writer, sink = shop
    reviews = sink.frame("reviews")
    assert reviews.schema == events.REVIEW_SCHEMA
    assert reviews.height >= 20 and reviews["review_id"].is_unique().all()
    assert reviews["rating"].is_between(1, 5).all() and reviews["created_at"].str.contains(TIMESTAMP).all()
    assert (reviews["title"].str.len_chars() > 0).all() and (reviews["body"].str.len_chars() > 0).all()
    lines = reviews.with_columns(
        pl.col("review_id").str.strip_prefix("r-").cast(pl.Int64).alias("sale_id")
    ).join(sales, on="sale_id", how="left", suffix="_sold")
    assert lines["sold_at"].null_count() == 0, "a review is of a line sold"
    for column in ("order_id", "customer_id", "product_id"):
        assert (lines[column] == lines[f"{column}_sold"]).all(), column
    created = lines["created_at"].str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
    gap = (created.dt.date() - lines["day"]).dt.total_days()
    assert gap.min() >= 2 and gap.max() <= 10, gap.describe()
    first_reviews = min(
        day for (kind, day), frame in sink.documents.items() if kind == "reviews" and frame.height
    )
    assert first_reviews >= START + dt.timedelta(days=2)


def test_ratings_are_j_shaped_and_a_purchase_days_reviews_are_the_same_whenever_drawn():
    plan = events.review_plan(5, START, 200_000)
    assert 0.025 < plan.height / 200_000 < 0.035, "3% of lines"
    shares = plan["rating"].value_counts(normalize=True).sort("rating")["proportion"].to_list()
    assert shares[4] > 0.5 and shares[4] > shares[3] > shares[0] > shares[1], shares
    assert_frame_equal(events.review_plan(5, START, 200_000), plan)


def test_reviews_are_the_same_however_the_days_are_split_and_whichever_writer(tmp_path, shop):
    split_writer, split = MemoryWriter(), MemoryEventSink()
    simulate(split_writer, split, days=5)
    simulate(
        split_writer,
        split,
        days=DAYS - 5,
        start=START + dt.timedelta(days=5),
        seed=None,
        initial_customers=None,
    )
    assert_frame_equal(split.frame("reviews"), shop[1].frame("reviews"))
    assert_frame_equal(split.frame("clickstream"), shop[1].frame("clickstream"))
    # the landing zone reads earlier days' lines back from its own sales files
    landed = MemoryEventSink()
    simulate(LandingWriter((tmp_path / "landing").as_uri()), landed)
    assert_frame_equal(landed.frame("reviews"), shop[1].frame("reviews"))


def test_the_sales_are_the_same_with_events_or_without(shop):
    without = MemoryWriter()
    simulate(without, None)
    for table in without.tables:
        assert_frame_equal(without.rows(table), shop[0].rows(table))
    assert without.days == shop[0].days and without.record == shop[0].record


def test_files_are_gzipped_json_lines_named_by_day_and_byte_identical_for_a_seed(tmp_path, shop):
    first, second = (tmp_path / "first").as_uri(), (tmp_path / "second").as_uri()
    simulate(MemoryWriter(), LandingEventSink(first), days=4)
    split = MemoryWriter()
    simulate(split, LandingEventSink(second), days=2)
    simulate(split, LandingEventSink(second), days=2, start=START + dt.timedelta(days=2))
    files = event_files(first)
    assert files and files == event_files(second)
    days = [(START + dt.timedelta(days=offset)).isoformat() for offset in range(4)]
    assert sorted(name for name in files if name.startswith("incoming/clickstream/")) == [
        f"incoming/clickstream/{day}/clickstream-{day}.jsonl.gz" for day in days
    ]
    assert all(name == f"incoming/reviews/{name.split('/')[2]}/reviews-{name.split('/')[2]}.jsonl.gz"
               for name in files if name.startswith("incoming/reviews/"))  # fmt: skip
    data = files[f"incoming/clickstream/{days[0]}/clickstream-{days[0]}.jsonl.gz"]
    assert data[4:8] == b"\0\0\0\0", "gzip mtime 0"
    documents = [json.loads(line) for line in gzip.decompress(data).decode().splitlines()]
    assert all(
        isinstance(value, (str, int, type(None))) for document in documents for value in document.values()
    )
    assert pl.DataFrame(documents, schema=events.CLICKSTREAM_SCHEMA, orient="row").equals(
        shop[1].documents[("clickstream", START)]
    )
    assert data == shop[1].encoded("clickstream", START), "the same bytes from memory"
    assert not list(Path(first.removeprefix("file://")).rglob("*.tmp")), "no temporary file is left"


def test_a_day_without_a_sale_has_no_clickstream_file(tmp_path):
    url = (tmp_path / "landing").as_uri()
    reports = simulate(MemoryWriter(), LandingEventSink(url), days=3, initial_customers=20)
    quiet = [report.day.isoformat() for report in reports if not report.orders]
    assert quiet, reports
    assert not [name for name in event_files(url) if name.split("/")[2] in quiet]


def test_a_catch_up_writes_each_days_files_once_and_loaded_days_are_skipped():
    writer, sink = MemoryWriter(), MemoryEventSink()
    simulation = ShopSimulation(writer, seed=5, initial_customers=2_000, events=sink)
    simulation.catch_up(YESTERDAY, new_shop_days=3)
    assert simulation.catch_up(YESTERDAY) == []
    simulation.run(YESTERDAY - dt.timedelta(days=2), 3, skip_loaded=True)
    days = [YESTERDAY - dt.timedelta(days=offset) for offset in (2, 1, 0)]
    assert sink.writes == [(kind, day) for day in days for kind in events.KINDS], "each day's files once"


def test_the_command_line_writes_events_by_default_and_none_with_no_events(tmp_path, monkeypatch):
    with_events, without = (tmp_path / "with").as_uri(), (tmp_path / "without").as_uri()

    def generate(url: str, *arguments: str) -> None:
        monkeypatch.setenv("TSHOP_LANDING_URL", url)
        result = CliRunner().invoke(
            app, ["generate", "--to", "landing", "--customers", "1500", "--days", "2", *arguments]
        )
        assert result.exit_code == 0, result.output

    generate(with_events, "--browsing-sessions-per-buyer", "0.5")
    generate(without, "--no-events")
    names = event_files(with_events)
    assert [name for name in names if "clickstream" in name] == [
        "incoming/clickstream/2024-03-04/clickstream-2024-03-04.jsonl.gz",
        "incoming/clickstream/2024-03-05/clickstream-2024-03-05.jsonl.gz",
    ]
    assert event_files(without) == {}
    assert (
        Path(without.removeprefix("file://")) / "incoming/sales/2024-03-05/sales-2024-03-05.parquet"
    ).exists()


@pytest.mark.slow
def test_raw_gets_the_same_sales_with_events_and_the_same_events_as_memory(
    new_database, raw_digest, tmp_path, shop
):
    with_events, without = new_database("events_on"), new_database("events_off")
    url = (tmp_path / "landing").as_uri()
    simulate(with_events, LandingEventSink(url))
    simulate(without, None)
    assert raw_digest(with_events) == raw_digest(without)
    expected = {
        events.file_path(kind, day): shop[1].encoded(kind, day)
        for (kind, day), frame in shop[1].documents.items()
        if frame.height
    }
    assert event_files(url) == expected, "RAW's reviews read the same lines back"


@pytest.mark.slow
def test_the_command_line_sends_the_events_of_to_raw_to_the_landing_url(new_database, tmp_path, monkeypatch):
    dsn, url = new_database("events_cli"), (tmp_path / "landing").as_uri()
    monkeypatch.setenv("TSHOP_LANDING_URL", url)
    arguments = ["generate", "--customers", "1500", "--days", "2", "--dsn", dsn]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert len([name for name in event_files(url) if "clickstream" in name]) == 2
    again = CliRunner().invoke(app, [*arguments, "--skip-loaded"])
    assert again.exit_code == 0 and "already loaded, skipped" in again.output, again.output


def test_browsing_customers_are_drawn_from_the_registered_ones_only():
    customers = IdRanges.run(1, 50)
    lines = pl.DataFrame(
        {"sale_id": [1, 2], "order_id": [1, 1], "sold_at": [dt.datetime(2024, 3, 4, 0, 1)] * 2,
         "customer_id": [7, 7], "product_id": [3, 4]},
        schema={"sale_id": pl.Int64, "order_id": pl.Int64, "sold_at": pl.Datetime("us"),
                "customer_id": pl.Int64, "product_id": pl.Int64},
    )  # fmt: skip
    rng = np.random.default_rng(1)
    clicks = events.clickstream(
        rng,
        START,
        lines,
        customers,
        np.arange(1, 11),
        np.full(10, 0.1),
        EventRates(browsing_sessions_per_buyer=200),
    )
    registered = clicks["customer_id"].drop_nulls()
    assert registered.is_between(1, 50).all()
    assert clicks.filter(pl.col("customer_id") == 7)["session_id"].n_unique() == 1, "the buyer only buys"
    start = clicks.filter(pl.col("session_id") == clicks.filter(pl.col("customer_id") == 7)["session_id"][0])
    assert start["occurred_at"][0] == "2024-03-04 00:00:00.000000", "clamped to the day's start"
    assert start["occurred_at"][-1] == "2024-03-04 00:01:00.000000"
