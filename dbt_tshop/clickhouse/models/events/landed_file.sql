-- events.landed_file: the event files this run loads: what events.pending_file lists when the run starts
-- (`tshop.ingest.events.register` fills it). The landed models read these files only, and
-- `tshop.ingest.events.record` records these in sl.landing_file afterwards: a file registered while the run
-- loads waits for the next run.

{{ config(materialized='table', engine='MergeTree', order_by='file_path') }}

{%- set pending = adapter.get_relation(database=none, schema='events', identifier='pending_file') if execute else none %}

{% if pending %}

select
    file_path,
    source_path,
    table_name,
    checksum,
    size_bytes,
    file_stamp,
    registered_at
from {{ pending }} final

{% else %}

-- nothing was ever registered (the table does not exist yet): no file to load
select
    '' as file_path,
    '' as source_path,
    toLowCardinality('') as table_name,
    '' as checksum,
    toUInt64(0) as size_bytes,
    CAST(NULL, 'Nullable(String)') as file_stamp,
    toDateTime64(0, 6, 'UTC') as registered_at
where 0

{% endif %}
