{# Creates the SL schema and its tables when missing (on-run-start), so the watermarks can be read by the
   first snapshot of a fresh warehouse. #}
{% macro sl_create_tables() %}
    create schema if not exists sl;

    create table if not exists sl.load_metadata (
        table_name text primary key,
        max_updated_at timestamp,
        rows_loaded bigint not null default 0,
        loaded_at timestamptz not null default clock_timestamp(),
        run_id text
    );

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
{% endmacro %}
