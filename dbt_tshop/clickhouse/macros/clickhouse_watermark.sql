{# The watermark of a ClickHouse model copied from PostgreSQL (its row `clickhouse.<schema>.<table>` in
   PostgreSQL's sl.load_metadata: the greatest PostgreSQL `loaded_at` it holds), read when the model compiles,
   so the filter on the PostgreSQL mart is a constant ClickHouse can push down. None means "load all":
   the table does not exist yet, this is a --full-refresh, or no load was recorded. #}
{% macro clickhouse_watermark() %}
    {%- if not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select toString(max_updated_at)
        from {{ postgresql_table('sl', 'load_metadata', role='transformer') }}
        where table_name = '{{ clickhouse_watermark_name() }}'
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {{ return(rows[0][0] if rows and rows[0][0] not in (none, '', '1970-01-01 00:00:00.000000') else none) }}
{% endmacro %}


{# The name of this model's watermark row in sl.load_metadata: `clickhouse.cdm.sales_datamart`, ... #}
{% macro clickhouse_watermark_name() -%}
    clickhouse.{{ this.schema }}.{{ this.identifier }}
{%- endmacro %}
