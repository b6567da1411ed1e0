{# dbt's snapshot compares the increment with every current row of the target: its CTE of current rows is
   used twice, so PostgreSQL materialises all of them (22 million sale lines at full scale) on every run,
   however small the day. With hard_deletes 'ignore' a current row whose key is not in the increment is never
   touched, so only those keys are read, through the partial index on current rows (dds_create_indexes).
   The rest of the staging query is dbt's own. The benchmark's `unfiltered_snapshot_sources` run keeps stock
   dbt behaviour, as its baseline. #}
{% macro postgres__snapshot_staging_table(strategy, source_sql, target_relation) %}
    {%- if strategy.hard_deletes == 'ignore' and strategy.unique_key is string and not var('unfiltered_snapshot_sources') -%}
        {%- set current_rows_of_increment -%}
            (
                select * from {{ target_relation }}
                where {{ strategy.unique_key }} in (select {{ strategy.unique_key }} from snapshot_query)
            ) as current_rows_of_increment
        {%- endset -%}
        {{ default__snapshot_staging_table(strategy, source_sql, current_rows_of_increment) }}
    {%- else -%}
        {{ default__snapshot_staging_table(strategy, source_sql, target_relation) }}
    {%- endif -%}
{% endmacro %}
