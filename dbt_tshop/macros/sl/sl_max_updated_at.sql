{# The watermark `max_updated_at` recorded for `table_name` in sl.load_metadata (a timestamp as text), or
   none when nothing was loaded yet. #}
{% macro sl_max_updated_at(table_name) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set loaded = run_query(
        "select max_updated_at from " ~ source('sl', 'load_metadata') ~ " where table_name = '" ~ table_name ~ "'"
    ) -%}
    {{ return(loaded.columns[0].values()[0] if loaded.rows | length > 0 else none) }}
{% endmacro %}
