{# The PostgreSQL rows of `schema_name.table_name` a ClickHouse copy has not loaded yet: those whose
   `loaded_at` (the start of the PostgreSQL run that last wrote them) is past the copy's watermark. The
   filter is a constant ClickHouse pushes down to PostgreSQL, so a daily run moves the day. loaded_at is one
   value per PostgreSQL run and runs are sequential (max_active_runs=1), so every row of the last copied run
   is at the watermark and every later one past it. #}
{% macro copied_from_postgres(schema_name, table_name) %}
    {%- set watermark = clickhouse_watermark() %}
    select *
    from {{ postgresql_table(schema_name, table_name) }}
    {%- if watermark %}
    where loaded_at > '{{ watermark }}'
    {%- endif %}
{% endmacro %}
