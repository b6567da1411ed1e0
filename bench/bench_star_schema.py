"""Issue 18 benchmark: what the star schema and the customer mart add to the warehouse's builds.

On a generated shop (default the full scale: 5,000,000 customers, 90 days), in a PostgreSQL of its own and
a fresh local ClickHouse endpoint: the initial build of both projects (`dbt build` without tests, one
per project as the pipeline runs them), with dbt's own seconds for the nodes that existed before and for the
new ones (`cdm.dim_date`, `cdm.dim_customer`, `cdm.dim_product`, `cdm.fct_sales`, `cdm.customer_monthly`);
then the next two business days (a Sunday, a Monday), each generated and built the same way. On the last day the new PostgreSQL models
are also rebuilt whole (`--full-refresh`): what a daily run would cost if it read the history, and a check
that the incremental path ends with the same rows. Target: the new models add at most 30% to the initial
build and at most 30% to a daily run.

Knobs: BENCH_STAR_CUSTOMERS (default 5,000,000), BENCH_STAR_DAYS (default 90). The shop is in
`.state/bench/star` while it runs and removed after.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import psycopg

from bench.report import markdown_table, write_section
from bench.shop import BUILD
from bench.timing import timed
from datagen import ShopSimulation
from tshop.config import REPO_ROOT, settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT, run_dbt
from tshop.services._process import free_port
from tshop.services.clickhouse import LocalClickHouse
from tshop.services.postgres import LocalPostgres

CUSTOMERS = int(os.environ.get("BENCH_STAR_CUSTOMERS", "5000000"))
DAYS = int(os.environ.get("BENCH_STAR_DAYS", "90"))
FIRST_DAY = dt.date(2024, 1, 1)
STATE = REPO_ROOT / ".state" / "bench" / "star"
# {node: seconds of each build}, for the table of the new nodes
NODE_TIMES: dict[str, list[float]] = {}
NEW_MODELS = ["dim_date", "dim_customer", "dim_product", "fct_sales", "customer_monthly"]
# what the incremental and the full rebuild must agree on
CHECKSUM = """
select
    (select count(*) from cdm.fct_sales), (select sum(total_cost) from cdm.fct_sales),
    (select sum(customer_key::numeric + product_key::numeric) from cdm.fct_sales),
    (select count(*) from cdm.customer_monthly), (select sum(monetary) from cdm.customer_monthly),
    (select count(distinct coupon_code) from cdm.customer_monthly),
    (select string_agg(segment || ':' || n, ',' order by segment)
     from (select segment, count(*) as n from cdm.customer_monthly group by 1) as segments),
    (select count(*) from cdm.dim_customer), (select count(*) from cdm.dim_product), (select count(*) from cdm.dim_date)
"""


def node_seconds(config, project, target: Path, *extra: str) -> tuple[float, float, float]:
    """One `dbt build` (no tests) of `project`: its wall time, and the seconds dbt reports for the nodes that
    existed before and for the new ones (run_results.json). One build, as the pipeline runs it, so the new
    models are measured without a dbt start of their own; the nodes run on the project's threads, so node
    seconds add up to more than the wall time."""
    wall = timed(lambda: run_dbt(config, [*BUILD, "--target-path", str(target), *extra], project=project))
    results = json.loads((target / "run_results.json").read_text())["results"]
    for result in results:
        if result["unique_id"].split(".")[-1] in NEW_MODELS:
            NODE_TIMES.setdefault(result["unique_id"], []).append(round(result["execution_time"], 1))
    new = sum(r["execution_time"] for r in results if r["unique_id"].split(".")[-1] in NEW_MODELS)
    before = sum(r["execution_time"] for r in results if r["unique_id"].split(".")[-1] not in NEW_MODELS)
    return wall, before, new


def builds(config) -> dict[str, tuple[float, float, float]]:
    """(wall, nodes before, new nodes) seconds of one build of each project."""
    return {
        "postgres": node_seconds(config, POSTGRES_PROJECT, STATE / "target-postgres"),
        "clickhouse": node_seconds(config, CLICKHOUSE_PROJECT, STATE / "target-clickhouse"),
    }


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    config = settings(
        {
            **os.environ,
            "TSHOP_STATE_DIR": str(STATE),
            "TSHOP_PG_PORT": str(free_port()),
            "TSHOP_CLICKHOUSE_PORT": str(free_port()),
        }
    )
    postgres, clickhouse = LocalPostgres(config), LocalClickHouse(config)
    postgres.start()
    clickhouse.start()
    try:
        warehouse = settings({**config.env, "TSHOP_PG_DSN": config.pg_dsn()})
        simulation = ShopSimulation(config.pg_dsn(), seed=7, initial_customers=CUSTOMERS)
        generated = timed(lambda: simulation.run(FIRST_DAY, DAYS))
        print(f"generated {DAYS} days in {generated:.0f} s", flush=True)
        runs = [("initial build", f"{DAYS} days", builds(warehouse))]
        for offset in (0, 1):
            day = FIRST_DAY + dt.timedelta(days=DAYS + offset)
            simulation.run(day, 1)
            runs.append((f"daily run, {day:%a %Y-%m-%d}", "1 day", builds(warehouse)))
            print(f"built {day}", flush=True)
        with psycopg.connect(warehouse.pg_dsn()) as conn:
            incremental = conn.execute(CHECKSUM).fetchone()
            mart_rows = conn.execute("select count(*) from cdm.sales_datamart").fetchone()[0]
            monthly_rows = conn.execute("select count(*) from cdm.customer_monthly").fetchone()[0]
        _, _, rebuilt = node_seconds(
            warehouse, POSTGRES_PROJECT, STATE / "target-postgres", "--full-refresh", "--select", *NEW_MODELS
        )
        with psycopg.connect(warehouse.pg_dsn()) as conn:
            if conn.execute(CHECKSUM).fetchone() != incremental:
                raise SystemExit("the incremental path and the full rebuild of the new models disagree")
    finally:
        clickhouse.stop()
        postgres.stop()
        shutil.rmtree(STATE, ignore_errors=True)

    rows = []
    for name, read, seconds in runs:
        (pg_wall, pg_before, pg_new), (ch_wall, ch_before, ch_new) = (
            seconds["postgres"],
            seconds["clickhouse"],
        )
        rows.append(
            (name, read, f"{pg_wall:.1f}", f"{pg_before:.1f}", f"{pg_new:.1f}", f"{pg_new / pg_before:.0%}",
             f"{ch_wall:.1f}", f"{ch_before:.1f}", f"{ch_new:.1f}",
             f"{(pg_new + ch_new) / (pg_before + ch_before):.0%}")
        )  # fmt: skip
    last_day = runs[-1][2]["postgres"][2]
    shares = [
        (
            name,
            (seconds["postgres"][2] + seconds["clickhouse"][2])
            / (seconds["postgres"][1] + seconds["clickhouse"][1]),
        )
        for name, _, seconds in runs
    ]
    heaviest = max(NODE_TIMES, key=lambda node: NODE_TIMES[node][0])
    body = "\n".join(
        [
            f"Shop: {CUSTOMERS:,} initial customers, {DAYS} days from {FIRST_DAY} (generated in "
            f"{generated / 60:.1f} min), then a Sunday and a Monday, each generated and built on its own; "
            f"after them `cdm.sales_datamart` holds {mart_rows:,} rows and `cdm.customer_monthly` "
            f"{monthly_rows:,}. Each run is one `dbt build` per project (no tests), as the pipeline runs them; "
            "the node seconds are dbt's own (run_results.json) for the nodes that existed before this issue and "
            "for the new ones (`dim_date`, `dim_customer`, `dim_product`, `fct_sales`, `customer_monthly`; the "
            "mart's two new key columns count as before). Nodes run on 4 threads in PostgreSQL, so node seconds "
            "add up to more than the build's wall time.\n",
            markdown_table(
                [
                    "run",
                    "RAW read",
                    "PostgreSQL build s",
                    "its nodes before s",
                    "its new nodes s",
                    "new / before",
                    "ClickHouse build s",
                    "its nodes before s",
                    "its new nodes s",
                    "new / before, both engines",
                ],
                rows,
            ),  # fmt: skip
            "\nThe new nodes one by one (dbt's seconds):\n",
            markdown_table(
                ["node", "initial build", "Sunday", "Monday", "full rebuild on Monday"],
                [
                    (node.split(".", 1)[1], *times, *[""] * (4 - len(times)))
                    for node, times in NODE_TIMES.items()
                ],
            ),
            f"\nThe new PostgreSQL models rebuilt whole on the last day (`--full-refresh`, what a daily run "
            f"reading the history would cost): {rebuilt:.1f} s of node time, {rebuilt / last_day:.1f}x the "
            f"{last_day:.1f} s of the day's incremental run; both end with the same rows (checked).",
            "\nTarget: the new models add at most 30% to the initial build and to a daily run (both engines): "
            + "; ".join(
                f"{name}: {share:.0%}, {'met' if share <= 0.30 else '**missed**'}" for name, share in shares
            )
            + f". The largest new node is `{heaviest.split('.', 1)[1]}`: {NODE_TIMES[heaviest][0]:.0f} s of the initial build's "
            f"{sum(times[0] for times in NODE_TIMES.values()):.0f} s of new node time.",
        ]
    )
    print(NODE_TIMES, flush=True)
    write_section("star_schema", "Star schema and customer mart: what they add (issue 18)", body)


if __name__ == "__main__":
    main()
