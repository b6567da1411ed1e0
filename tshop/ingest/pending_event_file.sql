-- events.pending_file (ClickHouse): the event files of the landing zone registered for loading and not loaded
-- yet. `tshop.ingest.events.register` adds a file once its bytes were read whole (checksum) and found
-- readable; the ClickHouse project's events models load what it lists (events.landed_file is the list a run
-- took); `tshop.ingest.events.record` writes their sl.landing_file rows and removes them from here. A file
-- registered again with other bytes replaces its earlier row (ReplacingMergeTree by path: read with FINAL).
create table if not exists events.pending_file
(
    file_path String, -- relative to the landing URL: incoming/clickstream/... or incoming/reviews/...
    source_path String, -- the same file as ClickHouse's file()/s3() name it in `_path`
    table_name LowCardinality(String), -- clickstream or review
    checksum String, -- sha256 hex of the bytes registered
    size_bytes UInt64,
    file_stamp Nullable(String),
    registered_at DateTime64(6, 'UTC'),
    run_id String
)
engine = ReplacingMergeTree(registered_at)
order by file_path
