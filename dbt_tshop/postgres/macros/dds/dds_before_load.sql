{# Pre-hook of every DDS snapshot (dbt_project.yml), before it reads its RAW table:
   1. fresh statistics of the RAW table's `loaded_xid`. Each writing transaction gives all its rows one
      value, so PostgreSQL keeps a list of common values instead of a histogram, and a transaction newer
      than the last ANALYZE is estimated at one row: the snapshot then joins a day's 600,000 rows by nested
      loops over unindexed CTEs (180 s at full scale instead of 15). One column costs 0.5-0.8 s there.
   2. the horizon of this read (sl_note_read_horizon): noted before the snapshot's first read. #}
{% macro dds_before_load() %}
    analyze {{ source('raw', this.identifier) }} (loaded_xid);
    {{ sl_note_read_horizon() }}
{% endmacro %}
