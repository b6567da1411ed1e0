"""Issue 20 benchmark: the web events of a shop, generated, loaded into ClickHouse, and the funnel tile.

The shop (seed 7, BENCH_EVENTS_CUSTOMERS initial customers, BENCH_EVENTS_DAYS days from 2024-01-01; default
the full scale, 5,000,000 x 90; `BENCH_EVENTS_SCALE=trial` or `--trial` for a quick 200,000 x 14) at the
default event rates, on a PostgreSQL and a ClickHouse endpoint of its own (free ports, under
.state/bench-events, stopped and deleted at the end; never the user's services):

1. Generation. The sales go to memory (`RecentSalesWriter`: a MemoryWriter that keeps only the sale lines
   the next days' reviews and corrections read, so a day costs the same on day 90 as on day 1), the events
   to the bench's landing folder (`LandingEventSink`). The same days are simulated twice with the same seed,
   in the same batches: without events (`events=None`), then with them; events/s generated is the events
   written over the difference of the two times.
2. The load, batch by batch as the pipeline runs it: the next BENCH_EVENTS_BATCH_DAYS (default 10) days are
   generated into the landing folder, which keeps every earlier day's files as a landing zone does, then
   `register` (Python: listing, sha256 and a full gunzip of each new file), `dbt run --select
   path:models/events` in the ClickHouse project (only the events models: the marts
   cdm.conversion_funnel_daily and cdm.product_rating need the warehouse's cdm.dim_customer / dim_product,
   which this bench does not build), then `record` (sl.landing_file). Per model: dbt's run_results.json.
   Physical references of the same run, over the same files: ClickHouse reading every line without parsing
   (`sum(length(line))` over `file(..., 'LineAsString')`), and a bare parse of the five contract strings
   (JSONExtract into a tuple).
3. Bytes on disk: events.clickstream's active parts (system.parts, per column system.columns) per event,
   against the gzipped JSON lines and the JSON text.
4. The funnel of the last 30 days (sessions, product viewers, cart adders, buyers; uniqExact per day as
   cdm.conversion_funnel_daily computes them, summed as the tile does): over events.clickstream, over the
   raw JSON files (file() with JSONExtract, only the 30 days' folders), and over a table of the daily
   funnel (what the dashboard's tile reads; built here from events.clickstream with the model's funnel
   columns, since the model itself needs cdm.dim_customer). Medians of 5 after a warm-up; same results
   checked.

Writes the section "events" of docs/benchmarks.md. Knobs: BENCH_EVENTS_CUSTOMERS, BENCH_EVENTS_DAYS,
BENCH_EVENTS_BATCH_DAYS, BENCH_EVENTS_SCALE (trial | full), BENCH_EVENTS_KEEP=1 (keep the state folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import resource
import shutil
import signal
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from bench.report import markdown_table, write_section
from bench.timing import timed
from datagen import ShopSimulation
from datagen import events as events_module
from datagen.landing import LandingEventSink
from datagen.memory import MemoryWriter
from tshop import clients
from tshop.config import REPO_ROOT, Settings, settings
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
from tshop.ingest.events import record, register
from tshop.services._process import free_port
from tshop.services.clickhouse import LocalClickHouse
from tshop.services.postgres import LocalPostgres

STATE = REPO_ROOT / ".state" / "bench-events"
FULL_SCALE = (5_000_000, 90)
TRIAL_SCALE = (200_000, 14)
SEED = 7
FIRST_DAY = dt.date(2024, 1, 1)
FUNNEL_DAYS = 30
REPEATS = 5
EVENTS_SELECT = "path:models/events"
TARGETS = {"load": 1_000_000, "tile": 0.5}  # events/s loaded; seconds of the funnel tile
# the settings of the machine's own services that must not leak into the benchmark's
FOREIGN = (
    "TSHOP_PG_DSN",
    "TSHOP_CLICKHOUSE_URL",
    "TSHOP_LANDING_URL",
    "TSHOP_STATE_DIR",
    "TSHOP_PG_PORT",
    "TSHOP_CLICKHOUSE_PORT",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
CONTRACT_TUPLE = (
    "Tuple(event_id Nullable(String), event_type Nullable(String), occurred_at Nullable(String), "
    "session_id Nullable(String), customer_id Nullable(String))"
)


# -- the shop in memory ----------------------------------------------------------------------------------------
class RecentSalesWriter(MemoryWriter):
    """A MemoryWriter that forgets sale lines older than what the next day reads (yesterday's lines for
    corrections, the last REVIEW_WINDOW days' for reviews), so a day's lookups do not grow with the shop."""

    @contextmanager
    def day(self, day: dt.date) -> Iterator[None]:
        with super().day(day):
            yield
        keep_from = dt.datetime.combine(day - dt.timedelta(days=events_module.REVIEW_WINDOW + 1), dt.time())
        self.tables["raw.sales"] = self.tables["raw.sales"].filter(pl.col("sold_at") >= keep_from)


# -- what was measured -------------------------------------------------------------------------------------------
@dataclass
class Batch:
    first: dt.date
    days: int
    without_events: float = 0.0  # seconds of the simulation with events=None
    with_events: float = 0.0  # seconds of the simulation writing the events
    events: int = 0  # clickstream events generated
    reviews: int = 0
    gz_bytes: int = 0  # the batch's clickstream files
    files: int = 0
    register: float = 0.0
    dbt: float = 0.0
    record: float = 0.0
    models: dict[str, float] = field(default_factory=dict)
    loaded: int = 0  # clickstream documents added (sl.landing_file.rows_loaded)
    reviews_loaded: int = 0
    rejected: int = 0  # lines or files rejected
    endpoint_rss: float = 0.0  # GiB, the endpoint's resident memory after the batch

    @property
    def last(self) -> dt.date:
        return self.first + dt.timedelta(days=self.days - 1)

    @property
    def load(self) -> float:
        return self.register + self.dbt + self.record


def gib(kib: float) -> float:
    return kib / 1024 / 1024


def process_memory(pid: int | None, field_name: str) -> float:
    """VmRSS / VmHWM of a process, GiB (0 when unknown)."""
    if pid is None:
        return 0.0
    with suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return gib(int(line.split()[1]))
    return 0.0


def available_memory() -> float:
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return gib(int(line.split()[1]))
    return 0.0


# -- servers -----------------------------------------------------------------------------------------------------
def bench_settings(pg_port: int, ch_port: int) -> Settings:
    base = {key: value for key, value in os.environ.items() if key not in FOREIGN}
    return settings(
        {**base, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(pg_port),
         "TSHOP_CLICKHOUSE_PORT": str(ch_port), "TSHOP_LANDING_URL": (STATE / "landing").as_uri()}
    )  # fmt: skip


def stop_leftovers() -> None:
    """Servers a killed earlier run left running in STATE (found by their pid files), then STATE itself."""
    if STATE.exists():
        leftover = bench_settings(free_port(), free_port())
        for server in (LocalClickHouse(leftover), LocalPostgres(leftover)):
            with suppress(Exception):
                server.stop()
        shutil.rmtree(STATE, ignore_errors=True)


@contextmanager
def servers() -> Iterator[tuple[Settings, LocalClickHouse]]:
    stop_leftovers()
    STATE.mkdir(parents=True)
    config = bench_settings(free_port(), free_port())
    postgres, endpoint = LocalPostgres(config), LocalClickHouse(config)
    # a `kill` (SIGTERM) of the bench still stops its servers and deletes its files
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    try:
        postgres.start()
        endpoint.start()
        yield config, endpoint
    finally:
        signal.signal(signal.SIGTERM, previous)
        for server in (endpoint, postgres):
            with suppress(Exception):
                server.stop()
        if os.environ.get("BENCH_EVENTS_KEEP") != "1":
            shutil.rmtree(STATE, ignore_errors=True)


# -- 1 and 2: generation and load ----------------------------------------------------------------------------
def batches(days: int, batch_days: int) -> list[Batch]:
    return [
        Batch(FIRST_DAY + dt.timedelta(days=offset), min(batch_days, days - offset))
        for offset in range(0, days, batch_days)
    ]


def simulate_without_events(customers: int, plan: list[Batch]) -> None:
    simulation = ShopSimulation(RecentSalesWriter(), seed=SEED, initial_customers=customers, events=None)
    for batch in plan:
        started = time.perf_counter()
        simulation.run(batch.first, batch.days)
        batch.without_events = time.perf_counter() - started
        print(f"  without events {batch.first}..{batch.last}: {batch.without_events:.1f} s", flush=True)
    del simulation
    gc.collect()


def model_seconds(target: Path) -> dict[str, float]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {result["unique_id"].rsplit(".", 1)[-1]: result["execution_time"] for result in results}


def generate_and_load(config: Settings, endpoint: LocalClickHouse, customers: int, plan: list[Batch]) -> None:
    landing = STATE / "landing"
    target = STATE / "dbt-target"
    simulation = ShopSimulation(
        RecentSalesWriter(), seed=SEED, initial_customers=customers, events=LandingEventSink(landing.as_uri())
    )
    for number, batch in enumerate(plan, 1):
        started = time.perf_counter()
        reports = simulation.run(batch.first, batch.days)
        batch.with_events = time.perf_counter() - started
        batch.events = sum(report.clickstream_events for report in reports)
        batch.reviews = sum(report.reviews for report in reports)
        files = [
            landing / events_module.file_path("clickstream", batch.first + dt.timedelta(days=offset))
            for offset in range(batch.days)
        ]
        batch.gz_bytes = sum(file.stat().st_size for file in files if file.exists())
        batch.files = sum(file.exists() for file in files)
        gc.collect()

        run_id = f"bench_events_{number:02d}"
        started = time.perf_counter()
        report = register(config, run_id)
        batch.register = time.perf_counter() - started
        started = time.perf_counter()
        run_dbt(
            config,
            [
                "run",
                "--select",
                EVENTS_SELECT,
                "--target-path",
                str(target),
                "--log-path",
                str(STATE / "dbt-logs"),
            ],
            project=CLICKHOUSE_PROJECT,
            extra_env={"TSHOP_RUN_ID": run_id},
        )
        batch.dbt = time.perf_counter() - started
        batch.models = model_seconds(target)
        started = time.perf_counter()
        report = record(config, report=report)
        batch.record = time.perf_counter() - started
        batch.loaded = sum(f.rows_loaded for f in report.loaded if f.table == "clickstream")
        batch.reviews_loaded = sum(f.rows_loaded for f in report.loaded if f.table == "review")
        batch.rejected = sum(f.rows_rejected for f in report.loaded) + len(report.rejected)
        batch.endpoint_rss = process_memory(endpoint.status().pid, "VmRSS")
        print(
            f"  batch {number} {batch.first}..{batch.last}: {batch.events:,} events generated in "
            f"{batch.with_events:.1f} s; loaded {batch.loaded:,} in {batch.load:.1f} s (register "
            f"{batch.register:.1f}, dbt {batch.dbt:.1f}, record {batch.record:.1f}): "
            f"{batch.loaded / batch.load:,.0f}/s; endpoint RSS {batch.endpoint_rss:.1f} GiB, "
            f"available {available_memory():.1f} GiB",
            flush=True,
        )
        if batch.loaded != batch.events or batch.rejected:
            raise SystemExit(
                f"batch {number}: {batch.loaded:,} events loaded of {batch.events:,} generated, "
                f"{batch.rejected} rejected"
            )


def references(ch, landing: Path) -> dict[str, tuple[float, int]]:
    """ClickHouse over every clickstream file: reading the lines, and parsing the contract's strings."""
    source = f"file('{landing}/incoming/clickstream/**', 'LineAsString')"
    found: dict[str, tuple[float, int]] = {}
    started = time.perf_counter()
    lines, text_bytes = ch.query(f"select count(), sum(length(line)) from {source}").result_rows[0]
    found["read"] = (time.perf_counter() - started, int(lines))
    found["text_bytes"] = (0.0, int(text_bytes) + int(lines))  # + the newlines
    started = time.perf_counter()
    parsed = ch.query(f"select count(JSONExtract(line, '{CONTRACT_TUPLE}').1) from {source}").result_rows[0][
        0
    ]
    found["parse"] = (time.perf_counter() - started, int(parsed))
    return found


# -- 3: bytes on disk --------------------------------------------------------------------------------------------
def disk(ch) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    parts = ch.query(
        "select count(), sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        "from system.parts where database = 'events' and table = 'clickstream' and active"
    ).result_rows[0]
    totals = dict(
        zip(("parts", "rows", "on_disk", "compressed", "uncompressed"), map(int, parts), strict=True)
    )
    columns = [
        (name, int(compressed), int(uncompressed))
        for name, compressed, uncompressed in ch.query(
            "select name, data_compressed_bytes, data_uncompressed_bytes from system.columns "
            "where database = 'events' and table = 'clickstream' order by data_compressed_bytes desc"
        ).result_rows
    ]
    return totals, columns


# -- 4: the funnel -------------------------------------------------------------------------------------------------
FUNNEL_PER_DAY = """
select
    event_date,
    uniqExact(session_id) as sessions,
    uniqExactIf(visitor, event_type = 'product_view') as product_viewers,
    uniqExactIf(visitor, event_type = 'add_to_cart') as cart_adders,
    uniqExactIf(assumeNotNull(customer_id), event_type = 'checkout') as buyers
from (
    select
        event_date, event_type, session_id, customer_id,
        if(customer_id is null, 'session ' || session_id, toString(customer_id)) as visitor
    from {source}
)
group by event_date
"""
# what the tile shows: the days' funnels summed
FUNNEL = "select sum(sessions), sum(product_viewers), sum(cart_adders), sum(buyers) from ({per_day})"


def funnel_queries(landing: Path, first: dt.date, last: dt.date) -> dict[str, str]:
    days = ",".join((first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1))
    table = f"events.clickstream where event_date between '{first}' and '{last}'"
    raw = (
        "(select toDate(left(tupleElement(d, 'occurred_at'), 10)) as event_date, tupleElement(d, 'event_type') "
        "as event_type, tupleElement(d, 'session_id') as session_id, tupleElement(d, 'customer_id') as "
        "customer_id from (select JSONExtract(line, 'Tuple(event_type String, occurred_at String, session_id "
        "String, customer_id Nullable(Int64))') as d "
        f"from file('{landing}/incoming/clickstream/{{{days}}}/*.jsonl.gz', 'LineAsString')))"
    )
    return {
        "events.clickstream": FUNNEL.format(per_day=FUNNEL_PER_DAY.format(source=f"(select * from {table})")),
        "raw JSON files": FUNNEL.format(per_day=FUNNEL_PER_DAY.format(source=raw)),
        "daily funnel table": (
            "select sum(sessions), sum(product_viewers), sum(cart_adders), sum(buyers) "
            f"from bench.conversion_funnel_daily where event_date between '{first}' and '{last}'"
        ),
    }


def build_funnel_table(ch) -> float:
    """bench.conversion_funnel_daily: the model's funnel columns of every day, from events.clickstream."""
    ch.command("create database if not exists bench")
    ch.command("drop table if exists bench.conversion_funnel_daily")
    per_day = FUNNEL_PER_DAY.format(source="events.clickstream")
    return timed(
        lambda: ch.command(
            f"create table bench.conversion_funnel_daily engine = MergeTree order by event_date as {per_day}"
        )
    )


def time_funnel(ch, queries: dict[str, str]) -> dict[str, tuple[float, list[float], tuple]]:
    timings = {}
    for name, query in queries.items():
        print(f"  funnel over {name}", flush=True)
        result = ch.query(query).result_rows[0]  # the warm-up
        seconds = [timed(lambda q=query: ch.query(q).result_rows) for _ in range(REPEATS)]
        timings[name] = (statistics.median(seconds), seconds, tuple(result))
    return timings


# -- the run ---------------------------------------------------------------------------------------------------------
def parse_scale() -> tuple[int, int, int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env_scale = os.environ.get("BENCH_EVENTS_SCALE", "full")
    customers, days = TRIAL_SCALE if env_scale == "trial" else FULL_SCALE
    parser.add_argument(
        "--customers", type=int, default=int(os.environ.get("BENCH_EVENTS_CUSTOMERS", customers))
    )
    parser.add_argument("--days", type=int, default=int(os.environ.get("BENCH_EVENTS_DAYS", days)))
    parser.add_argument(
        "--batch-days", type=int, default=int(os.environ.get("BENCH_EVENTS_BATCH_DAYS", "10"))
    )
    parser.add_argument(
        "--trial", action="store_true", help=f"{TRIAL_SCALE[0]:,} customers x {TRIAL_SCALE[1]} days"
    )
    parser.add_argument("--full-scale", action="store_true", help=f"{FULL_SCALE[0]:,} x {FULL_SCALE[1]} days")
    args = parser.parse_args()  # fmt: skip
    if args.trial:
        args.customers, args.days = TRIAL_SCALE
    if args.full_scale:
        args.customers, args.days = FULL_SCALE
    return args.customers, args.days, args.batch_days


def main() -> None:
    customers, days, batch_days = parse_scale()
    load_at_start = os.getloadavg()[0]
    plan = batches(days, batch_days)
    print(
        f"events benchmark: {customers:,} customers, {days} days in batches of {batch_days} days", flush=True
    )
    with servers() as (config, endpoint):
        print("generation without events (sales only, in memory)", flush=True)
        simulate_without_events(customers, plan)
        print("generation with events, and the load of each batch", flush=True)
        generate_and_load(config, endpoint, customers, plan)
        generator_peak = gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        landing = STATE / "landing"
        ch = clients.clickhouse(config, send_receive_timeout=3600)
        print("references: reading and parsing every file in ClickHouse", flush=True)
        refs = references(ch, landing)
        totals, columns = disk(ch)
        funnel_build = build_funnel_table(ch)
        last = plan[-1].last
        first = max(FIRST_DAY, last - dt.timedelta(days=FUNNEL_DAYS - 1))
        funnel = time_funnel(ch, funnel_queries(landing, first, last))
        events_in_window = ch.query(
            f"select count() from events.clickstream where event_date between '{first}' and '{last}'"
        ).result_rows[0][0]
        endpoint_peak = process_memory(endpoint.status().pid, "VmHWM")
        ch.close()
    load_at_end = os.getloadavg()[0]
    body = report(
        customers, days, batch_days, plan, refs, totals, columns, funnel, funnel_build, first, last,
        events_in_window, generator_peak, endpoint_peak, load_at_start, load_at_end,
    )  # fmt: skip
    write_section("events", "Web events: generation, load and the funnel (issue 20)", body)


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(customers, days, batch_days, plan, refs, totals, columns, funnel, funnel_build, first, last,
           events_in_window, generator_peak, endpoint_peak, load_at_start, load_at_end) -> str:  # fmt: skip
    events = sum(batch.events for batch in plan)
    reviews = sum(batch.reviews for batch in plan)
    loaded = sum(batch.loaded for batch in plan)
    gz = sum(batch.gz_bytes for batch in plan)
    files = sum(batch.files for batch in plan)
    without = sum(batch.without_events for batch in plan)
    with_events = sum(batch.with_events for batch in plan)
    extra = with_events - without
    busy = load_at_start > 1.5
    machine_note = f"load average {load_at_start:.2f} at the start, {load_at_end:.2f} at the end" + (
        " (**busy**: another workload shared the 2 cores)" if busy else ""
    )

    generation = markdown_table(
        ["simulation of the days (sales to memory)", "seconds", "events", "events/s"],
        [
            ("without events (`events=None`)", f"{without:.1f}", "", ""),
            ("with events (files written to the landing folder)", f"{with_events:.1f}", f"{events:,}", ""),
            ("**the events' own cost** (difference)", f"{extra:.1f}", f"{events:,}",
             f"**{events / extra:,.0f}**" if extra > 0 else "n/a"),
        ],
    )  # fmt: skip

    register_s = sum(batch.register for batch in plan)
    dbt_s = sum(batch.dbt for batch in plan)
    record_s = sum(batch.record for batch in plan)
    load_s = register_s + dbt_s + record_s
    model_names = sorted({name for batch in plan for name in batch.models})
    model_s = {name: sum(batch.models.get(name, 0.0) for batch in plan) for name in model_names}
    batch_rows = []
    for number, batch in enumerate(plan, 1):
        models = sum(batch.models.values())
        batch_rows.append((
            number, f"{batch.first}..{batch.last}", f"{batch.loaded:,}", f"{batch.gz_bytes / 2**20:,.0f}",
            f"{batch.register:.1f}", f"{batch.dbt:.1f}", f"{models:.1f}", f"{batch.record:.1f}",
            f"{batch.load:.1f}", f"**{batch.loaded / batch.load:,.0f}**", f"{batch.endpoint_rss:.1f}",
        ))  # fmt: skip
    batch_rows.append((
        "all", f"{plan[0].first}..{plan[-1].last}", f"{loaded:,}", f"{gz / 2**20:,.0f}", f"{register_s:.1f}",
        f"{dbt_s:.1f}", f"{sum(model_s.values()):.1f}", f"{record_s:.1f}", f"{load_s:.1f}",
        f"**{loaded / load_s:,.0f}**", "",
    ))  # fmt: skip
    load_table = markdown_table(
        ["batch", "days", "events loaded", "gzip MiB", "register s", "dbt run s", "of it models s",
         "record s", "load s", "events/s", "endpoint RSS GiB"],
        batch_rows,
    )  # fmt: skip
    read_s, read_lines = refs["read"]
    parse_s, parsed = refs["parse"]
    rate = loaded / load_s
    reference_table = markdown_table(
        ["over the same files, whole shop", "seconds", "events/s", "the load's rate against it"],
        [
            ("ClickHouse reads every line, no parse (`sum(length(line))`, LineAsString)", f"{read_s:.1f}",
             f"{read_lines / read_s:,.0f}", f"{rate / (read_lines / read_s):.0%}"),
            ("ClickHouse parses the five contract strings (JSONExtract into a tuple)", f"{parse_s:.1f}",
             f"{parsed / parse_s:,.0f}", f"{rate / (parsed / parse_s):.0%}"),
            ("the load: register + `dbt run` of the events models + record", f"{load_s:.1f}",
             f"{rate:,.0f}", "100%"),
        ],
    )  # fmt: skip
    model_table = markdown_table(
        ["model (all batches)", "seconds", "share of the load"],
        [(name, f"{seconds:.1f}", f"{seconds / load_s:.0%}") for name, seconds in
         sorted(model_s.items(), key=lambda item: -item[1])]
        + [("dbt's own overhead (start, parse, compile; `dbt run` wall less its models)",
            f"{dbt_s - sum(model_s.values()):.1f}", f"{(dbt_s - sum(model_s.values())) / load_s:.0%}"),
           ("register (Python: listing, sha256, gunzip check)", f"{register_s:.1f}", f"{register_s / load_s:.0%}"),
           ("record (sl.landing_file)", f"{record_s:.1f}", f"{record_s / load_s:.0%}")],
    )  # fmt: skip

    rows = totals["rows"]
    text_bytes = refs["text_bytes"][1]
    disk_table = markdown_table(
        ["form", "bytes", "bytes per event", "against ClickHouse's"],
        [
            ("JSON lines, uncompressed", f"{text_bytes:,}", f"{text_bytes / events:.1f}",
             f"{text_bytes / totals['on_disk']:.1f}x"),
            ("JSON lines, gzip (level 1, the landing files)", f"{gz:,}", f"{gz / events:.1f}",
             f"{gz / totals['on_disk']:.1f}x"),
            (f"events.clickstream on disk ({totals['parts']} active parts)", f"{totals['on_disk']:,}",
             f"**{totals['on_disk'] / rows:.1f}**", "1.0x"),
            ("of it, the contract's columns only (event_id .. order_id, event_date)",
             f"{contract_bytes(columns):,}", f"{contract_bytes(columns) / rows:.1f}",
             f"{contract_bytes(columns) / totals['on_disk']:.2f}x"),
        ],
    )  # fmt: skip
    column_table = markdown_table(
        ["column", "compressed bytes per event", "uncompressed bytes per event", "ratio"],
        [(name, f"{compressed / rows:.2f}", f"{uncompressed / rows:.2f}",
          f"{uncompressed / compressed:.1f}x" if compressed else "") for name, compressed, uncompressed in columns],
    )  # fmt: skip

    base = funnel["raw JSON files"][0]
    results = {name: timing[2] for name, timing in funnel.items()}
    same = len(set(results.values())) == 1
    funnel_rows = [
        (name, f"{median:.3f}", " ".join(f"{s:.3f}" for s in runs), f"{base / median:,.0f}x")
        for name, (median, runs, _) in funnel.items()
    ]
    funnel_table = markdown_table(["funnel of the last 30 days over", "median s", "runs s", "speed-up vs raw JSON"],
                                  funnel_rows)  # fmt: skip
    sessions, viewers, adders, buyers = funnel["events.clickstream"][2]

    events_tile = funnel["events.clickstream"][0]
    table_tile = funnel["daily funnel table"][0]
    body = [
        f"Shop: seed {SEED}, {customers:,} initial customers, {days} days from {plan[0].first} to "
        f"{plan[-1].last}, the default event rates: {events:,} clickstream events in {files} daily files "
        f"({gz / 2**30:.2f} GiB gzipped) and {reviews:,} reviews. Its own PostgreSQL and ClickHouse endpoint "
        f"(chDB) in .state/bench-events; {machine_note}.\n",
        "### 1. Generation\n",
        generation,
        "\nThe same days and seed simulated twice, in the same batches, the sales to memory both times "
        "(a MemoryWriter keeping only the last 12 days of sale lines); the sales are the same with or without "
        f"events. Peak RSS of the bench process {generator_peak:.1f} GiB.\n",
        f"### 2. The load, {len(plan)} batches of {batch_days} days\n",
        "Each batch: its days generated into the landing folder (which keeps the earlier batches' files), then "
        "`register`, `dbt run --select path:models/events` (ClickHouse project: landed_file, clickstream_landed, "
        "review_landed, clickstream, review, rejected_event) and `record`, as `tshop load-events` does short of "
        "the marts (cdm.conversion_funnel_daily and cdm.product_rating need the warehouse's cdm.dim_customer "
        "and cdm.dim_product, not built here). Every event generated was loaded once, none rejected.\n",
        load_table,
        "\nWhere the load's time goes:\n",
        model_table,
        "\nThe ceiling these 2 cores give, in the same run, over every clickstream file:\n",
        reference_table,
        "\n### 3. Bytes on disk per event\n",
        disk_table,
        f"\nevents.clickstream as loaded ({rows:,} rows, not optimized), per column:\n",
        column_table,
        f"\n### 4. The funnel tile: the last {(last - first).days + 1} days ({first}..{last}, "
        f"{events_in_window:,} events)\n",
        funnel_table,
        f"\nMedians of {REPEATS} runs after a warm-up; the same sums from all three "
        f"({sessions:,} sessions, {viewers:,} product viewers, {adders:,} cart adders, {buyers:,} buyers): "
        f"{'yes' if same else '**no**: ' + repr(results)}. Raw JSON: `file()` over only the 30 days' folders, "
        "LineAsString + one JSONExtract into a tuple per line. The daily funnel table holds "
        "cdm.conversion_funnel_daily's funnel columns, one row a day, built by the bench from "
        f"events.clickstream in {funnel_build:.1f} s (the dbt model itself also needs cdm.dim_customer); "
        "the dashboard's tile reads that mart.\n",
        "### Targets\n",
        f"- loading at least {TARGETS['load']:,} events/s on these 2 cores: {rate:,.0f} events/s over the "
        f"whole load, {met(rate >= TARGETS['load'])} (batches: "
        + ", ".join(f"{batch.loaded / batch.load:,.0f}" for batch in plan)
        + ")",
        f"- the funnel tile under {TARGETS['tile']} s: {table_tile:.3f} s over the daily funnel (what the tile "
        f"reads), {met(table_tile < TARGETS['tile'])}; computed from events.clickstream {events_tile:.3f} s, "
        f"{met(events_tile < TARGETS['tile'])}; the raw JSON files take {base:.1f} s, "
        f"{base / events_tile:,.0f}x the events table",
    ]
    return "\n".join(body)


CONTRACT_COLUMNS = ("event_id", "event_type", "occurred_at", "event_date", "session_id", "customer_id",
                    "product_id", "order_id")  # fmt: skip


def contract_bytes(columns: list[tuple[str, int, int]]) -> int:
    return sum(compressed for name, compressed, _ in columns if name in CONTRACT_COLUMNS)


if __name__ == "__main__":
    main()
