{# SQL expression for the watermark of `table_name` ('dds.customer', ...): the greatest source timestamp
   already loaded into that target, or -infinity when the target must be built from scratch (it does not
   exist yet, or this is a --full-refresh run), so a stale SL row never hides history. The variable
   `unfiltered_snapshot_sources` reads the whole of RAW, as a dbt snapshot does by default: only the
   benchmark sets it, to measure what the watermark saves. #}
{% macro sl_watermark(table_name) %}
    {%- set schema_name, identifier = table_name.split('.') -%}
    {%- set target_relation = adapter.get_relation(database=target.database, schema=schema_name, identifier=identifier) if execute else none -%}
    {%- if target_relation is none or flags.FULL_REFRESH or var('unfiltered_snapshot_sources') -%}
        '-infinity'::timestamp
    {%- else -%}
        coalesce(
            (select max_updated_at from {{ source('sl', 'load_metadata') }} where table_name = '{{ table_name }}'),
            '-infinity'::timestamp
        )
    {%- endif -%}
{% endmacro %}
