{# Post-hook: moves the watermark of `table_name` to the greatest `timestamp_column` of `relation` rows
   loaded by this run, and records the rows read, when and by which run. It runs inside the load's own
   transaction, so the watermark moves only if the load commits. `loaded_rows` is a SQL condition that
   selects this run's rows in `relation`; `rows_read` counts what the load read (for a snapshot, the keys:
   one increment row per key, even when older versions of the key also pass `loaded_rows`). #}
{% macro sl_advance_watermark(table_name, relation, timestamp_column, loaded_rows, rows_read='count(*)') %}
    insert into {{ source('sl', 'load_metadata') }} as metadata
        (table_name, max_updated_at, rows_loaded, loaded_at, run_id)
    select
        '{{ table_name }}',
        max({{ timestamp_column }}),
        {{ rows_read }},
        clock_timestamp(),
        '{{ var("run_id") }}'
    from {{ relation }}
    where {{ loaded_rows }}
    on conflict (table_name) do update set
        -- an empty increment keeps the old watermark; a watermark never moves backwards
        max_updated_at = greatest(metadata.max_updated_at, excluded.max_updated_at),
        rows_loaded = excluded.rows_loaded,
        loaded_at = excluded.loaded_at,
        run_id = excluded.run_id
{% endmacro %}
