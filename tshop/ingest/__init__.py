"""The landing zone's ingest (CONTRACT.md section 7): files that outside systems drop under
`<TSHOP_LANDING_URL>/incoming/<table>/` merged into RAW by SCD1, each file once.

Modules, one job each:
- `tables`: the three RAW tables fed (customer, product, sales): key, columns, kind of each column;
- `landing`: the landing zone through fsspec (`file://`, `s3://`): listing, bytes, sha256;
- `read`: a file's bytes as a Polars frame by its format (CSV, gzip'd CSV, JSON lines, Parquet);
- `validate`: each row checked against RAW's rules, vectorised: accepted in RAW's types, or rejected with why;
- `merge`: duplicates collapsed, binary COPY into staging tables, the set-based SCD1 upsert and deletions;
- `run`: the ingest itself: lock, order, one transaction per file with its `sl.landing_file` row, the report;
- `events`: the books of the web events' load into ClickHouse (CONTRACT.md section 8): which clickstream and
  review files are new and readable, and their counts once the ClickHouse project's events models loaded them.

Airflow and `tshop ingest` call `ingest(config, run_id)`; `tshop load-events` calls `events.load_events`.
"""

from tshop.ingest.run import FileReport, IngestError, IngestReport, ingest

__all__ = ["FileReport", "IngestError", "IngestReport", "ingest"]
