{# The horizon recorded for `table_name` in sl.load_metadata (an integer transaction id), or none when the
   next load must read its whole source (see sl_read_from_xid). #}
{% macro sl_read_horizon(table_name) %}
    {%- if not execute or flags.FULL_REFRESH or var('unfiltered_snapshot_sources') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set schema_name, identifier = table_name.split('.') -%}
    {%- if adapter.get_relation(database=target.database, schema=schema_name, identifier=identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(sl_recorded(table_name, 'read_from_xid')) }}
{% endmacro %}
