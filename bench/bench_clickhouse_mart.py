"""Issue 6 benchmark: the ClickHouse mart on the full-scale shop.

1. Transfer, PostgreSQL's `cdm.sales_datamart` into ClickHouse: the dbt-clickhouse project's full load
   (`dbt run`: ClickHouse reads PostgreSQL through `postgresql()`) against a Python baseline that fetches the
   same rows with psycopg (server-side cursor, 100,000 rows a batch) and inserts them with clickhouse-connect
   into a table of the same engine and columns. Rows per second.
2. The nine dashboard metrics of CONTRACT section 3 (`tshop/metrics.py`), each timed in ClickHouse as the
   dashboard asks it (`cdm.sales_daily_summary` or `cdm.sales_datamart_current`) and in PostgreSQL as its
   reference definition on the mart's current rows, with their results compared.
   Targets: ClickHouse at least 20x faster in total, and every tile under 0.5 s.

The shop comes from bench/shop.py (kept between runs); ClickHouse is a fresh local endpoint.
"""

from __future__ import annotations

import json
import shutil

import psycopg

from bench.report import markdown_table, write_section
from bench.shop import CUSTOMERS, beside_shop, built_shop
from bench.shop import STATE as SHOP_STATE
from bench.timing import median_seconds, timed
from tshop import clients, metrics
from tshop.config import REPO_ROOT
from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt
from tshop.services.clickhouse import LocalClickHouse

STATE = REPO_ROOT / ".state" / "bench" / "clickhouse-mart"
BATCH = 100_000
COLUMNS = [
    "sale_id", "order_id", "sale_date", "sold_at", "customer_id", "customer_name", "customer_age", "product_id",
    "product_name", "product_category", "product_size", "product_price", "quantity", "total_cost", "valid_from",
    "valid_to", "is_current", "loaded_at",
]  # fmt: skip


def python_transfer(config, ch) -> None:
    """The baseline: fetch with psycopg, insert with clickhouse-connect, batch by batch."""
    ch.command("drop table if exists default.transfer_baseline")
    ch.command("create table default.transfer_baseline as cdm.sales_datamart")
    select = (
        f"select {', '.join(COLUMNS)}, (extract(epoch from loaded_at) * 1000000)::bigint as row_version "
        "from cdm.sales_datamart"
    )
    with psycopg.connect(config.pg_dsn()) as conn, conn.cursor(name="transfer") as cursor:
        cursor.itersize = BATCH
        cursor.execute(select)
        while rows := cursor.fetchmany(BATCH):
            ch.insert("default.transfer_baseline", rows, column_names=[*COLUMNS, "row_version"])


def reads(metric: str) -> str:
    return (
        "`sales_daily_summary`" if metrics.SUMMARY in metrics.query(metric, "clickhouse") else "current lines"
    )


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    with built_shop() as shop:
        config = beside_shop(shop, STATE, "TSHOP_CLICKHOUSE_PORT")
        endpoint = LocalClickHouse(config)
        endpoint.start()
        try:
            with psycopg.connect(config.pg_dsn()) as conn:
                conn.execute("delete from sl.load_metadata where table_name like 'clickhouse.%'")
                conn.commit()
                mart_rows = conn.execute("select count(*) from cdm.sales_datamart").fetchone()[0]
            ch = clients.clickhouse(config)
            ch.command("drop database if exists cdm")
            ours = timed(lambda: run_dbt(config, ["run"], project=CLICKHOUSE_PROJECT))
            ch.command("optimize table cdm.sales_datamart final")  # as after the background merges
            baseline = timed(lambda: python_transfer(config, ch))
            loaded = ch.query("select count() from default.transfer_baseline").result_rows[0][0]
            if loaded != mart_rows:
                raise SystemExit(f"the baseline loaded {loaded:,} rows of {mart_rows:,}")
            ch.command("drop table default.transfer_baseline")

            tiles = []
            with psycopg.connect(config.pg_dsn()) as conn:
                for metric in metrics.METRICS:
                    pg_query, ch_query = (
                        metrics.query(metric, "postgres"),
                        metrics.query(metric, "clickhouse"),
                    )
                    in_postgres = median_seconds(lambda q=pg_query: conn.execute(q).fetchall(), 3)
                    in_clickhouse = median_seconds(lambda q=ch_query: ch.query(q).result_rows, 5)
                    same = metrics.normalised(conn.execute(pg_query).fetchall()) == metrics.normalised(
                        ch.query(ch_query).result_rows
                    )
                    tiles.append((metric, in_postgres, in_clickhouse, same))
            current = ch.query("select count() from cdm.sales_datamart_current").result_rows[0][0]
            days = json.loads((SHOP_STATE / "shop.json").read_text())["days"]
            ch.close()
        finally:
            endpoint.stop()
            shutil.rmtree(STATE, ignore_errors=True)

    transfer = markdown_table(
        ["PostgreSQL mart -> ClickHouse", "seconds", "rows/s", "vs baseline"],
        [
            ("Python: psycopg fetch + clickhouse-connect insert", f"{baseline:.1f}", f"{mart_rows / baseline:,.0f}", "1.0x"),
            ("dbt-clickhouse full load (`postgresql()`)", f"{ours:.1f}", f"{mart_rows / ours:,.0f}", f"{baseline / ours:.1f}x"),
        ],
    )  # fmt: skip
    total_pg = sum(tile[1] for tile in tiles)
    total_ch = sum(tile[2] for tile in tiles)
    tile_table = markdown_table(
        ["tile", "ClickHouse reads", "PostgreSQL s", "ClickHouse s", "speed-up", "same result"],
        [
            (name, reads(name), f"{pg:.3f}", f"{chs:.3f}", f"{pg / chs:.0f}x", "yes" if same else "**no**")
            for name, pg, chs, same in tiles
        ]
        + [("**all nine**", "", f"{total_pg:.2f}", f"{total_ch:.2f}", f"{total_pg / total_ch:.0f}x", "")],
    )
    slowest = max(tiles, key=lambda tile: tile[2])
    body = (
        f"Shop: {CUSTOMERS:,} initial customers, {days} days; the mart holds {mart_rows:,} rows, "
        f"{current:,} of them current. ClickHouse's full load includes `cdm.sales_daily_summary`.\n\n### 1. Transfer\n\n{transfer}\n\n"
        f"### 2. The nine dashboard tiles (medians: 5 runs in ClickHouse, 3 in PostgreSQL, after a warm-up)\n\n"
        f"{tile_table}\n\nTargets: ClickHouse at least 20x faster over the nine tiles "
        f"({total_pg / total_ch:.0f}x), every tile under 0.5 s (slowest: {slowest[0]}, {slowest[2]:.3f} s)."
    )
    write_section("clickhouse_mart", "ClickHouse mart: transfer and dashboard tiles (issue 6)", body)


if __name__ == "__main__":
    main()
