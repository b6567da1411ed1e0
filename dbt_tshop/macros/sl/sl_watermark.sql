{# SQL literal for the watermark of `table_name` ('dds.customer', ...): the greatest source timestamp
   already loaded into that target, or -infinity when the target must be built from scratch (it does not
   exist yet, or this is a --full-refresh run), so a stale SL row never hides history. The variable
   `unfiltered_snapshot_sources` reads the whole of RAW, as a dbt snapshot does by default: only the
   benchmark sets it, to measure what the watermark saves.
   The value is read when the node runs and written into its SQL as a literal, not as a subquery: PostgreSQL
   plans a subquery's value as unknown, guesses that a third of the table passes the filter, and then scans
   every current DDS row instead of looking the day's keys up by index. #}
{% macro sl_watermark(table_name) %}
    {%- set schema_name, identifier = table_name.split('.') -%}
    {%- set target_relation = adapter.get_relation(database=target.database, schema=schema_name, identifier=identifier) if execute else none -%}
    {%- set watermark = none -%}
    {%- if target_relation is not none and not flags.FULL_REFRESH and not var('unfiltered_snapshot_sources') -%}
        {%- set loaded = run_query(
            "select max_updated_at from " ~ source('sl', 'load_metadata') ~ " where table_name = '" ~ table_name ~ "'"
        ) -%}
        {%- set watermark = loaded.columns[0].values()[0] if loaded.rows | length > 0 else none -%}
    {%- endif -%}
    {%- if watermark is none -%}
        '-infinity'::timestamp
    {%- else -%}
        '{{ watermark }}'::timestamp
    {%- endif -%}
{% endmacro %}
