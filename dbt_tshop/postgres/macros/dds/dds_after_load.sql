{# Post-hook of every DDS snapshot (dbt_project.yml), in the snapshot's own transaction: the `loaded_xid`
   column and the indexes, fresh planner statistics (the next run joins the day to this table; with stale
   statistics PostgreSQL scans every current row per key), the stale changes of the read, the SL record
   (the watermark, the rows read and the horizon the next load reads from), and the deletions that arrived
   from the landing zone. The snapshot is named after its RAW table (dds.customer reads raw.customer) and
   keyed by its `unique_key`. #}
{% macro dds_after_load() %}
    {%- set key = config.get('unique_key') -%}
    {%- set table_name = this.schema ~ '.' ~ this.identifier -%}
    {%- set raw_table = source('raw', this.identifier) -%}
    {#- rendered before any of it runs: the horizon this load read from, not the one it records -#}
    {%- set read_from = sl_read_from_xid(table_name) -%}
    {%- set first_load = sl_read_horizon(table_name) is none -%}
    {{ dds_add_loaded_xid() }};
    {{ dds_create_indexes(key) }};
    analyze {{ this }};
    {#- skipped when the load read RAW whole (a first build): every RAW row is then its key's current version -#}
    {%- if not first_load %}
    {{ dds_record_stale_changes(table_name, raw_table, key, read_from) }};
    {%- endif %}
    {{ sl_advance_watermark(
        table_name,
        max_updated_at="select max(updated_at) from " ~ this ~ (
            "" if first_load else " where loaded_xid = pg_current_xact_id()"),
        rows_read="select count(*) from " ~ raw_table ~ " where loaded_xid >= " ~ read_from,
        read_from_xid="current_setting('tshop.read_from_xid')::bigint",
    ) }};
    {#- last: the versions it closes are no new versions for the stale-change count and the watermark above -#}
    {{ dds_close_deleted_versions(key, read_from) }}
{% endmacro %}
