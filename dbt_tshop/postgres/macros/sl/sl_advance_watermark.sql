{# Records a load of `table_name` in sl.load_metadata: its watermark (`max_updated_at`, the greatest source
   timestamp loaded; it never moves backwards), the rows it read, when and by which run, and the horizon the
   next load reads from (`read_from_xid`, never backwards either). Each argument is a SQL expression. It runs
   inside the load's own transaction (a post-hook), so nothing moves unless the load commits. #}
{% macro sl_advance_watermark(table_name, max_updated_at, rows_read, read_from_xid) %}
    insert into {{ source('sl', 'load_metadata') }} as metadata
        (table_name, max_updated_at, rows_loaded, loaded_at, run_id, read_from_xid)
    values (
        '{{ table_name }}',
        ({{ max_updated_at }}),
        coalesce(({{ rows_read }}), 0),
        clock_timestamp(),
        '{{ var("run_id") }}',
        ({{ read_from_xid }})
    )
    -- (an insert of a known table_name becomes this update in the SL table's trigger: see sl_create_tables)
    on conflict (table_name) do update set
        max_updated_at = greatest(metadata.max_updated_at, excluded.max_updated_at),
        rows_loaded = excluded.rows_loaded,
        loaded_at = excluded.loaded_at,
        run_id = excluded.run_id,
        read_from_xid = greatest(metadata.read_from_xid, excluded.read_from_xid)
{% endmacro %}
