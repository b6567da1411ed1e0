"""dlt's merge of landing files into RAW, for bench/bench_ingest.py: the well-kept loader measured against
our own `tshop ingest` (CONTRACT.md section 7). Runs in the dlt environment (`.venvs/dlt`, envs/dlt/), never
in Airflow's, as a subprocess of the benchmark:

    .venvs/dlt/bin/python bench/dlt_merge.py --dsn postgresql://... --format parquet \\
        --file customer=/landing/incoming/customer/2024-01-01/customer-2024-01-01-001.csv \\
        --file sales=s3://bucket/landing/incoming/sales/2024-01-01/sales-2024-01-01.parquet

The files are read into Arrow tables (dlt's fastest road: no row-by-row normalising), typed as RAW's columns
(CONTRACT.md 1.1: CSV by pyarrow's reader with RAW's types, Parquet as written), and loaded by one dlt
pipeline run into the schema `raw` of the database, whose RAW tables exist already (datagen/raw.sql):
dlt adds none of its columns to them, and RAW's constraints, triggers and defaults (loaded_at, loaded_xid)
apply as to any writer. Each table is a resource with write_disposition merge, strategy delete-insert (the
one that deduplicates), its key as primary_key and `updated_at` as dedup_sort desc: per key the incoming
row with the greatest updated_at replaces RAW's row. An optional boolean `deleted` column is dlt's
hard_delete hint. `--format`: dlt's load files, `parquet` (copied in by ADBC's PostgreSQL driver, binary
COPY) or `csv` (psycopg2's COPY FROM STDIN).

What of the contract dlt cannot say (reported in the output's `cannot`): see CANNOT below.

Prints one JSON object on stdout: rows read per table, seconds from the first read to the end of the load
(without this interpreter's start and dlt's import), rows/s, and the seconds of dlt's steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from urllib.parse import urlsplit

# no telemetry (this machine reaches no such service) and no progress bars on stdout
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

import dlt  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

TIMESTAMP = pa.timestamp("us")
# RAW's contract columns (CONTRACT.md 1.1, datagen/raw.sql) as Arrow types; the key first
TABLES: dict[str, dict[str, pa.DataType]] = {
    "customer": {"customer_id": pa.int64(), "first_name": pa.string(), "last_name": pa.string(),
                 "birth_date": pa.date32(), "updated_at": TIMESTAMP},
    "product": {"product_id": pa.int64(), "name": pa.string(), "category": pa.string(), "size": pa.string(),
                "price": pa.decimal128(12, 2), "updated_at": TIMESTAMP},
    "sales": {"sale_id": pa.int64(), "order_id": pa.int64(), "sold_at": TIMESTAMP, "customer_id": pa.int64(),
              "product_id": pa.int64(), "quantity": pa.int32(), "updated_at": TIMESTAMP},
}  # fmt: skip

CANNOT = [
    "an incoming row older than (or as old as) RAW's replaces it all the same: delete-insert replaces every "
    "key it loads, and upsert's skip_unchanged_rows/row_version compare for difference, not for greater",
    "a row that breaks a RAW rule fails the whole load (PostgreSQL's error, no line number); nothing goes "
    "to raw.rejected_row and the rest of the file does not load",
    "a file it cannot read fails the run; there is no sl.landing_file record (path, checksum, status, "
    "counts) and so no skipping of a file already ingested, nor re-ingesting of a changed one",
    "a deletion (hard_delete on `deleted`) removes the key but records nothing in raw.deleted_key, so the "
    "DDS never closes the key's version; the `deleted` column itself is added to the RAW table",
    "finding new files in the landing zone (incoming/<table>/ at any depth, by extension) is left to its "
    "filesystem source or to the caller; here the caller names the files",
]


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 client, pointed by the standard AWS_* variables (a local endpoint included)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {
        "access_key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "region": os.environ.get("AWS_REGION", "us-east-1"),
    }
    if endpoint:
        parts = urlsplit(endpoint)
        options |= {"endpoint_override": parts.netloc, "scheme": parts.scheme or "https"}
    return pafs.S3FileSystem(**{key: value for key, value in options.items() if value is not None})


def read(table: str, location: str) -> pa.Table:
    """One landing file as an Arrow table with RAW's types (columns by name; `deleted` kept if present)."""
    types = TABLES[table]
    if location.startswith(("s3://", "s3a://")):
        filesystem, path = s3_filesystem(), location.split("://", 1)[1]
    else:
        filesystem, path = pafs.LocalFileSystem(), location.removeprefix("file://")
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        frame = pq.read_table(path, filesystem=filesystem)
    elif name.endswith((".csv", ".csv.gz")):
        with filesystem.open_input_stream(path, compression="detect") as stream:
            frame = pacsv.read_csv(
                stream,
                convert_options=pacsv.ConvertOptions(
                    column_types={**types, "deleted": pa.bool_()},
                    strings_can_be_null=True,
                    timestamp_parsers=["%Y-%m-%d %H:%M:%S", pacsv.ISO8601],
                ),
            )
    else:
        raise SystemExit(f"{location}: only .csv, .csv.gz and .parquet are read here")
    columns = [column for column in (*types, "deleted") if column in frame.column_names]
    # not null, as RAW's columns are (a null fails here, as RAW would refuse it)
    return frame.select(columns).cast(
        pa.schema(
            [pa.field(column, types[column], nullable=False) if column in types else pa.field(column, pa.bool_())
             for column in columns]
        )
    )  # fmt: skip


def column_schema(dtype: pa.DataType) -> dict:
    """dlt's column schema for a RAW column of this Arrow type (RAW's contract columns are all not null)."""
    if pa.types.is_timestamp(dtype):
        schema = {"data_type": "timestamp", "timezone": False, "precision": 6}
    elif pa.types.is_decimal(dtype):
        schema = {"data_type": "decimal", "precision": dtype.precision, "scale": dtype.scale}
    elif pa.types.is_int32(dtype):
        schema = {"data_type": "bigint", "precision": 32}
    else:
        schema = {"data_type": {pa.int64(): "bigint", pa.string(): "text", pa.date32(): "date"}[dtype]}
    return {**schema, "nullable": False}


def has_deleted(location: str) -> bool:
    """Whether a landing file has the optional `deleted` column (its header or Parquet schema only)."""
    if location.startswith(("s3://", "s3a://")):
        filesystem, path = s3_filesystem(), location.split("://", 1)[1]
    else:
        filesystem, path = pafs.LocalFileSystem(), location.removeprefix("file://")
    if path.endswith(".parquet"):
        with filesystem.open_input_file(path) as file:
            return "deleted" in pq.read_schema(file).names
    with filesystem.open_input_stream(path, compression="detect") as stream:
        header = stream.read(65536).split(b"\n", 1)[0].decode()
    return "deleted" in [name.strip().strip('"') for name in header.split(",")]


def resource(table: str, locations: list[str], counts: dict[str, int]):
    key = next(iter(TABLES[table]))
    # every column's type as RAW has it (else dlt's staging tables take timestamptz and varchar)
    hints: dict = {column: column_schema(dtype) for column, dtype in TABLES[table].items()}
    hints["updated_at"]["dedup_sort"] = "desc"
    if any(has_deleted(location) for location in locations):
        hints["deleted"] = {"hard_delete": True}

    def frames():
        for location in locations:
            frame = read(table, location)
            counts[table] = counts.get(table, 0) + frame.num_rows
            yield frame

    return dlt.resource(
        frames,
        name=table,
        table_name=table,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=key,
        columns=hints,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="postgresql:// URL of the database holding RAW")
    parser.add_argument("--dataset", default="raw", help="the schema the tables are merged into")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="dlt's load files")
    parser.add_argument(
        "--file", action="append", required=True, metavar="TABLE=PATH", help="a landing file (repeatable)"
    )
    parser.add_argument("--pipelines-dir", help="dlt's working folder (default: a temporary one)")
    args = parser.parse_args(argv)

    files: dict[str, list[str]] = {}
    for item in args.file:
        table, _, location = item.partition("=")
        if table not in TABLES or not location:
            parser.error(f"--file {item!r}: give TABLE=PATH, TABLE one of {', '.join(TABLES)}")
        files.setdefault(table, []).append(location)

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="dlt-", dir=args.pipelines_dir) as workdir:
        pipeline = dlt.pipeline(
            pipeline_name="tshop_landing",
            pipelines_dir=workdir,
            destination=dlt.destinations.postgres(credentials=args.dsn),
            dataset_name=args.dataset,
            progress=None,
        )
        started = time.perf_counter()
        pipeline.run(
            [resource(table, locations, counts) for table, locations in files.items()],
            loader_file_format=args.format,
        )
        seconds = time.perf_counter() - started
        steps = {
            step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
            for step in pipeline.last_trace.steps
            if step.step in ("extract", "normalize", "load")
        }
    rows = sum(counts.values())
    json.dump(
        {
            "loader": f"dlt {dlt.__version__}, merge delete-insert, {args.format} load files",
            "rows": counts,
            "seconds": round(seconds, 3),
            "rows_per_second": round(rows / seconds),
            "steps": steps,
            "cannot": CANNOT,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
