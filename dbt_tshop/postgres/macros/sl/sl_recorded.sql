{# The value of `column` ('max_updated_at', 'read_from_xid') that sl.load_metadata records for
   `table_name` ('dds.customer', ...), or none when no load of it was recorded (or at parse time). #}
{% macro sl_recorded(table_name, column) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set loaded = run_query(
        "select " ~ column ~ " from " ~ source('sl', 'load_metadata') ~ " where table_name = '" ~ table_name ~ "'"
    ) -%}
    {{ return(loaded.columns[0].values()[0] if loaded.rows | length > 0 else none) }}
{% endmacro %}
