{# The watermark of the ClickHouse mart, read from PostgreSQL's sl.load_metadata when the model compiles,
   so the filter on the PostgreSQL mart is a constant ClickHouse can push down. None means "load all":
   the table does not exist yet, this is a --full-refresh, or no load was recorded. #}
{% macro clickhouse_watermark() %}
    {%- if not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select toString(max_updated_at)
        from {{ postgresql_table('sl', 'load_metadata') }}
        where table_name = '{{ var("watermark_table_name") }}'
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {{ return(rows[0][0] if rows and rows[0][0] not in (none, '', '1970-01-01 00:00:00.000000') else none) }}
{% endmacro %}
