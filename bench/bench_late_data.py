"""Issue 16 benchmark: the cost of the safety. The warehouse's daily increment with the late-data path
(DDS increments read RAW by the writing transaction, the mart reads DDS the same way, stale changes kept)
against the same increment with the previous path (reads by `updated_at >= watermark`), at full scale.

The previous PostgreSQL project is taken from git at BASELINE_COMMIT (`git archive`), so both run in this
one benchmark on the same machine and data. One shop is generated (default 5,000,000 customers, 90 days),
copied into a second database before any build (with the `updated_at` indexes RAW had for the old read),
and each database is built by its own project; then the next two business days (a Sunday, the busiest
kind, and a Monday) are generated into both, and each day is built and timed in both. Both must end with
the same DDS and CDM rows. Target: the late-data path at most 10% slower.

The built shop is kept in `.state/bench/late_data` (`built.json` records its scale, its initial builds and
its last day): a later run with the same scale builds the two business days after it instead of starting
over, and resumes that way after an interruption. Knobs: BENCH_LATE_CUSTOMERS (default 5,000,000),
BENCH_LATE_DAYS (default 90), BENCH_LATE_INCREMENTS (days per run, default 2), BENCH_LATE_FRESH=1 to start
over; BENCH_LATE_WEEKENDS_ONLY=1 builds weekdays untimed (to reach the busy days sooner). Each timed
build starts from cold caches (PostgreSQL restarted, the OS page cache dropped when root).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from bench.report import markdown_table, write_section
from bench.timing import timed
from datagen import ShopSimulation
from tshop.config import REPO_ROOT, settings
from tshop.dbt import run_dbt
from tshop.services._process import free_port
from tshop.services.postgres import LocalPostgres

CUSTOMERS = int(os.environ.get("BENCH_LATE_CUSTOMERS", "5000000"))
DAYS = int(os.environ.get("BENCH_LATE_DAYS", "90"))
# the last commit whose warehouse read RAW by updated_at >= watermark
BASELINE_COMMIT = "a324edc"
FIRST_DAY = dt.date(2024, 1, 1)
STATE = REPO_ROOT / ".state" / "bench" / "late_data"
BUILD = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
# what a reader sees, the same in both: every version's values, not load times or transaction ids
CHECKS = {
    "dds.customer": "select count(*), sum(hashtext(customer_id || last_name || valid_from || coalesce(valid_to::text, ''))::bigint) from dds.customer",
    "dds.product": "select count(*), sum(hashtext(product_id || price::text || valid_from || coalesce(valid_to::text, ''))::bigint) from dds.product",
    "dds.sales": "select count(*), sum(quantity), count(*) filter (where valid_to is null) from dds.sales",
    "cdm.sales_datamart": "select count(*), sum(total_cost), count(*) filter (where is_current), sum(customer_age) from cdm.sales_datamart",
}
BASELINE_RAW_INDEXES = """
create index if not exists customer_updated_at_idx on raw.customer (updated_at);
create index if not exists product_updated_at_idx on raw.product (updated_at);
create index if not exists sales_updated_at_idx on raw.sales (updated_at);
"""


def baseline_project(into: Path) -> Path:
    """The PostgreSQL dbt project as it was at BASELINE_COMMIT, extracted into `into`."""
    with tempfile.TemporaryFile() as archive:
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", BASELINE_COMMIT, "dbt_tshop"], stdout=archive, check=True
        )
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(into, filter="data")
    return into / "dbt_tshop"


def cold(server: LocalPostgres) -> None:
    """Start a timed build from cold caches: the two databases (about 18 GB each at full scale) do not both
    fit in this machine's page cache, so whichever was written last would otherwise start warm."""
    server.stop()
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass  # not root: PostgreSQL's own buffers are still emptied by the restart
    server.start()


def state_of(dsn: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchone() for name, query in CHECKS.items()}


def build_shop(late_path, previous_path, previous_project: Path, admin_dsn: str) -> dict:
    """Generate the shop, copy it for the previous path, build both; returns what built.json records."""
    print(f"generating {CUSTOMERS:,} customers x {DAYS} days", flush=True)
    ShopSimulation(late_path.pg_dsn(), seed=7, initial_customers=CUSTOMERS).run(FIRST_DAY, DAYS)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        template = sql.Identifier(late_path.pg_dsn().rsplit("/", 1)[1])
        conn.execute(sql.SQL("create database previous template {}").format(template))
    with psycopg.connect(previous_path.pg_dsn(), autocommit=True) as conn:
        conn.execute(BASELINE_RAW_INDEXES)
    print("initial builds", flush=True)
    return {
        "customers": CUSTOMERS,
        "days": DAYS,
        "last_day": (FIRST_DAY + dt.timedelta(days=DAYS - 1)).isoformat(),
        "initial": {
            "late": timed(lambda: run_dbt(late_path, BUILD)),
            "previous": timed(lambda: run_dbt(previous_path, BUILD, project=previous_project)),
        },
    }


def main() -> None:
    marker = STATE / "built.json"
    built = json.loads(marker.read_text()) if marker.exists() else {}
    fresh = os.environ.get("BENCH_LATE_FRESH") == "1" or (built.get("customers"), built.get("days")) != (
        CUSTOMERS,
        DAYS,
    )
    if fresh:
        shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True, exist_ok=True)
    config = settings({**os.environ, "TSHOP_STATE_DIR": str(STATE), "TSHOP_PG_PORT": str(free_port())})
    server = LocalPostgres(config)
    server.start()
    try:
        late_path = settings({**config.env, "TSHOP_PG_DSN": config.pg_dsn()})
        previous_path = settings({**config.env, "TSHOP_PG_DSN": config.pg_dsn(database="previous")})
        previous_project = baseline_project(STATE / "baseline")
        if fresh:
            built = build_shop(late_path, previous_path, previous_project, config.pg_dsn(database="postgres"))
            marker.write_text(json.dumps(built))
        for _ in range(int(os.environ.get("BENCH_LATE_INCREMENTS", "2"))):
            day = dt.date.fromisoformat(built["last_day"]) + dt.timedelta(days=1)
            print(f"increment {day}", flush=True)
            for dsn in (late_path.pg_dsn(), previous_path.pg_dsn()):
                ShopSimulation(dsn, seed=7, initial_customers=CUSTOMERS).run(day, 1, skip_loaded=True)
            with psycopg.connect(late_path.pg_dsn()) as conn:
                lines = conn.execute(
                    "select count(*) from raw.sales where sold_at >= %s and sold_at < %s",
                    (day, day + dt.timedelta(days=1)),
                ).fetchone()[0]
            if os.environ.get("BENCH_LATE_WEEKENDS_ONLY") == "1" and day.weekday() < 5:
                # built by both, untimed: on to the busy days
                run_dbt(late_path, BUILD)
                run_dbt(previous_path, BUILD, project=previous_project)
                built["last_day"] = day.isoformat()
                marker.write_text(json.dumps(built))
                continue
            seconds = {}
            # each build starts cold, and the two take turns going first
            for path in ("late", "previous") if day.toordinal() % 2 else ("previous", "late"):
                cold(server)
                if path == "late":
                    seconds[path] = timed(lambda: run_dbt(late_path, BUILD))
                else:
                    seconds[path] = timed(lambda: run_dbt(previous_path, BUILD, project=previous_project))
            previous, late = seconds["previous"], seconds["late"]
            built.setdefault("increments", []).append([day.isoformat(), lines, previous, late])
            built["last_day"] = day.isoformat()
            marker.write_text(json.dumps(built))
        if state_of(late_path.pg_dsn()) != state_of(previous_path.pg_dsn()):
            raise SystemExit(
                f"the two paths disagree after {day}: {state_of(late_path.pg_dsn())} vs "
                f"{state_of(previous_path.pg_dsn())}"
            )
    finally:
        server.stop()

    initial = built["initial"]
    rows = [("initial build", "", f"{initial['previous']:.1f}", f"{initial['late']:.1f}",
             f"{initial['late'] / initial['previous']:.2f}x")]  # fmt: skip
    for day, lines, previous, late in built.get("increments", []):
        rows.append((f"daily increment, {dt.date.fromisoformat(day):%a %Y-%m-%d}", f"{lines:,}", f"{previous:.1f}",
                     f"{late:.1f}", f"{late / previous:.2f}x"))  # fmt: skip
    body = "\n".join(
        [
            f"Shop: {CUSTOMERS:,} initial customers, {DAYS} days, then the business days after them, two per run "
            "of this benchmark (every day it measured on this shop is listed), each generated "
            "into two copies of the same database and built by each project (`dbt build`, no tests). "
            f"The previous path is the PostgreSQL project at commit `{BASELINE_COMMIT}` (`git archive`), "
            "reading RAW by `updated_at >= watermark` through RAW's `updated_at` indexes; the late-data path "
            "reads RAW by `loaded_xid` through its index, records stale changes and checks for late "
            "dimension versions. Every timed build starts from cold caches (PostgreSQL restarted, the OS page "
            "cache dropped: the two databases do not both fit in memory), and the two take turns going first. "
            "Both end with the same DDS and CDM rows (checked).\n",
            markdown_table(
                [
                    "`dbt build`",
                    "sale lines that day",
                    "previous path s",
                    "late-data path s",
                    "late / previous",
                ],
                rows,
            ),
            "\nTarget: a daily increment with the late-data path at most 10% slower than the previous one.",
        ]
    )
    print(write_section("late_data", "The cost of the late-data path (issue 16)", body))


if __name__ == "__main__":
    main()
