{# Creates the SL schema and its tables when missing (on-run-start), so the watermarks can be read by the
   first snapshot of a fresh warehouse. #}
{% macro sl_create_tables() %}
    do $$ begin if to_regnamespace('sl') is null then create schema sl; end if; end $$;

    create table if not exists sl.load_metadata (
        table_name text primary key,
        max_updated_at timestamp,
        rows_loaded bigint not null default 0,
        loaded_at timestamptz not null default clock_timestamp(),
        run_id text,
        read_from_xid bigint
    );

    -- the horizon the next load reads its source from (see sl_note_read_horizon); added to an older SL
    alter table sl.load_metadata add column if not exists read_from_xid bigint;

    -- An insert of a known table_name updates its row instead, with the same never-backwards rule as
    -- sl_advance_watermark: ClickHouse records its own watermark through the postgresql() table
    -- function, which can only insert (COPY fires this trigger).
    create or replace function sl.load_metadata_upsert() returns trigger language plpgsql as $$
    begin
        update sl.load_metadata set
            max_updated_at = greatest(max_updated_at, new.max_updated_at),
            rows_loaded = new.rows_loaded,
            loaded_at = new.loaded_at,
            run_id = new.run_id,
            read_from_xid = greatest(read_from_xid, new.read_from_xid)
        where table_name = new.table_name;
        if found then
            return null;
        end if;
        return new;
    end
    $$;

    create or replace trigger load_metadata_upsert
        before insert on sl.load_metadata
        for each row execute function sl.load_metadata_upsert();

    create table if not exists sl.run_log (
        run_id text not null,
        invocation_id text not null,
        node_id text not null,
        resource_type text not null,
        status text not null,
        rows_affected bigint,
        execution_seconds double precision,
        started_at timestamptz,
        completed_at timestamptz,
        message text,
        logged_at timestamptz not null default clock_timestamp(),
        primary key (invocation_id, node_id)
    );
    alter table sl.run_log add column if not exists stale_changes bigint;

    -- RAW rows older than their key's current DDS version: they change nothing (CONTRACT 1.5), and each
    -- is kept here once, so none is ignored without a trace
    create table if not exists sl.stale_change (
        table_name text not null,
        key_value bigint not null,
        updated_at timestamp not null,
        current_valid_from timestamp not null,
        run_id text,
        seen_at timestamptz not null default clock_timestamp(),
        primary key (table_name, key_value, updated_at)
    );
{% endmacro %}
