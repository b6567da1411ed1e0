-- sl.landing_file: every file the landing zone's ingest saw (CONTRACT.md section 7), one row per version of
-- a file: a (file_path, checksum) recorded here is never ingested again; a changed file at the same path is.
-- Written in the same transaction as the file's rows in RAW, so a file is either recorded and merged or
-- neither. Run by `tshop ingest` before every ingest: idempotent.
do $$ begin if to_regnamespace('sl') is null then create schema sl; end if; end $$;

create table if not exists sl.landing_file (
    file_path text not null, -- relative to the landing URL: incoming/<table>/...
    checksum text not null, -- sha256 hex of the bytes
    table_name text not null, -- customer, product or sales
    size_bytes bigint not null,
    status text not null check (status in ('loaded', 'rejected')),
    rows_read bigint, -- data rows read; null when the file could not be read at all
    rows_loaded bigint not null default 0, -- rows that changed RAW: keys inserted or replaced, deletions kept
    rows_rejected bigint not null default 0, -- rows put in raw.rejected_row
    ingested_at timestamptz not null default clock_timestamp(),
    run_id text not null,
    error text, -- why the whole file was rejected; null otherwise
    primary key (file_path, checksum)
);

-- widenings of the contract's columns
alter table sl.landing_file add column if not exists rows_removed bigint; -- keys its deletions took out of RAW
alter table sl.landing_file add column if not exists ignored_columns text[]; -- columns not of its RAW table
alter table sl.landing_file add column if not exists file_stamp text; -- the listing's ETag or mtime of it
create index if not exists landing_file_path_idx on sl.landing_file (file_path);
