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
    {%- set loaded = run_query(
        "select read_from_xid from " ~ source('sl', 'load_metadata') ~ " where table_name = '" ~ table_name ~ "'"
    ) -%}
    {{ return(loaded.columns[0].values()[0] if loaded.rows | length > 0 else none) }}
{% endmacro %}
