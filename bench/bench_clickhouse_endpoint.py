"""Issue 3 benchmark: the ClickHouse HTTP endpoint against chDB in-process, on the same queries and inserts.

Both sides use clickhouse-connect (its HTTP client against the endpoint, its chDB backend in-process), so
the difference is the endpoint: HTTP, the request handling and the extra process. Target: the endpoint
within 1.5x of in-process on inserts and on queries returning up to 10,000 rows.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from decimal import Decimal

import clickhouse_connect

from bench.report import markdown_table, write_section
from bench.timing import median_seconds
from tshop import clients
from tshop.config import REPO_ROOT, settings
from tshop.services._process import free_port
from tshop.services.clickhouse import LocalClickHouse

STATE = REPO_ROOT / ".state" / "bench" / "clickhouse-endpoint"
QUERIES = {
    "10 rows": "select number, toString(number) from numbers(10)",
    "1,000 rows": "select number, toString(number), toDate('2024-01-01') + number % 90 from numbers(1000)",
    "10,000 rows": "select number, toString(number), toDate('2024-01-01') + number % 90 from numbers(10000)",
    "aggregate over 1M rows (1 row)": "select sum(id), avg(price), uniqExact(name) from default.bench_rows",
    "1,000,000 rows": "select id, name, price from default.bench_rows",
}
TABLE = (
    "create table if not exists default.bench_rows (id Int64, name String, at DateTime64(6, 'UTC'), "
    "price Decimal(12, 2)) engine = MergeTree order by id"
)


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    config = settings(
        {**os.environ, "TSHOP_STATE_DIR": str(STATE), "TSHOP_CLICKHOUSE_PORT": str(free_port())}
    )
    endpoint = LocalClickHouse(config)
    endpoint.start()
    try:
        http = clients.clickhouse(config, autogenerate_session_id=False)
        http_plain = clients.clickhouse(config, autogenerate_session_id=False, compress=False)
        local = clickhouse_connect.get_client(interface="chdb", path=str(STATE / "in-process"))
        rows = [
            (i, f"name-{i % 5000}", datetime(2024, 3, 4, tzinfo=UTC), Decimal("19.99"))
            for i in range(1_000_000)
        ]
        columns = ["id", "name", "at", "price"]

        insert_rows = []
        for label, client in (
            ("endpoint (HTTP, uncompressed)", http_plain),
            ("endpoint (HTTP, lz4: clickhouse-connect's default)", http),
            ("chDB in-process", local),
        ):
            client.command("drop table if exists default.bench_rows")
            client.command(TABLE)

            def insert(client=client):
                client.command("truncate table default.bench_rows")
                client.insert("default.bench_rows", rows, column_names=columns)

            seconds = median_seconds(insert, repeats=3)
            insert_rows.append((label, seconds))
        endpoint_insert, inprocess_insert = insert_rows[0][1], insert_rows[-1][1]

        query_rows = []
        for name, query in QUERIES.items():
            repeats = 5 if "1,000,000" in name else 30
            over_http = median_seconds(lambda query=query: http.query(query), repeats)
            in_process = median_seconds(lambda query=query: local.query(query), repeats)
            query_rows.append(
                (
                    name,
                    f"{in_process * 1000:.1f}",
                    f"{over_http * 1000:.1f}",
                    f"{over_http / in_process:.2f}x",
                )
            )
        http.close()
        http_plain.close()
    finally:
        endpoint.stop()

    insert_table = markdown_table(
        ["1,000,000-row insert (clickhouse-connect)", "median s", "rows/s", "vs in-process"],
        [
            (label, f"{seconds:.2f}", f"{1_000_000 / seconds:,.0f}", f"{seconds / inprocess_insert:.2f}x")
            for label, seconds in insert_rows
        ],
    )
    query_table = markdown_table(
        ["query", "in-process ms (median)", "endpoint ms (median)", "endpoint / in-process"], query_rows
    )
    verdict = (
        f"Target (endpoint within 1.5x of in-process on inserts and on queries up to 10,000 rows): "
        f"uncompressed inserts {endpoint_insert / inprocess_insert:.2f}x; queries up to 10,000 rows "
        + ", ".join(row[3] for row in query_rows[:3])
        + "."
    )
    write_section(
        "clickhouse_endpoint",
        "ClickHouse endpoint vs chDB in-process (issue 3)",
        f"{insert_table}\n\n{query_table}\n\n{verdict}\n\n"
        "Both sides parse results with clickhouse-connect (Native format); the endpoint adds HTTP, lz4 and one "
        "process hop. On loopback lz4 only costs CPU on both sides of a 2-core machine. Medians of 30 runs (5 for the 1M-row read, 3 for inserts) after a warm-up.",
    )


if __name__ == "__main__":
    main()
