{# Post-hook of a ClickHouse model copied from PostgreSQL: records its watermark (the greatest `loaded_at`
   of the PostgreSQL rows it holds) and the rows this run loaded in PostgreSQL's sl.load_metadata, through
   the postgresql() table function. An insert there updates the existing row (a trigger of the SL table,
   see the PostgreSQL project's sl_create_tables), so this is an upsert. It runs after the insert, when
   sl.load_metadata still holds the watermark this run started from. #}
{% macro record_clickhouse_watermark() %}
    {%- set watermark = clickhouse_watermark() %}
    insert into function {{ postgresql_table('sl', 'load_metadata', role='transformer') }}
        (table_name, max_updated_at, rows_loaded, loaded_at, run_id)
    select
        '{{ clickhouse_watermark_name() }}',
        max(loaded_at),
        {% if watermark is none -%}
        count(),
        {%- else -%}
        countIf(loaded_at > toDateTime64('{{ watermark }}', 6, 'UTC')),
        {%- endif %}
        now64(6, 'UTC'),
        '{{ var("run_id") }}'
    from {{ this }} final
{% endmacro %}
