{# SQL literal of the transaction horizon the next load of `table_name` ('dds.customer', ...) reads its
   source from: every source row written by that transaction or a later one (`loaded_xid >= horizon`),
   whatever its `updated_at`, so a row that arrives late is read like any other. '0' reads the whole source:
   the target does not exist yet, this is a --full-refresh, no horizon was recorded (an SL from before
   horizons), or the benchmark's `unfiltered_snapshot_sources` asks for dbt's stock behaviour.
   Read when the node runs and written into its SQL as a literal: PostgreSQL plans a literal on its
   statistics and looks the day's rows up by index, where a subquery's unknown value would make it guess. #}
{% macro sl_read_from_xid(table_name) %}
    {%- set horizon = sl_read_horizon(table_name) -%}
    '{{ horizon if horizon is not none else 0 }}'::xid8
{%- endmacro %}
