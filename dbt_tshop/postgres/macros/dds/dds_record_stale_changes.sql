{# Keeps in sl.stale_change each RAW row this load read whose `updated_at` is older than its key's current
   DDS version: a change that arrived after a newer one. The timestamp strategy rightly makes no version of
   it (CONTRACT 1.5); this makes it visible, once per (key, updated_at), and sl.run_log counts them.
   A row read that made no version is either stale or one read again (the horizon's overlap), so when the
   load made as many versions as it read rows, nothing is stale and the join is skipped: on a day when
   every row is new, that join was a third of the sale lines' load (600,000 look-ups, 17 s from cold). #}
{% macro dds_record_stale_changes(table_name, raw_table, key, read_from) %}
    insert into sl.stale_change (table_name, key_value, updated_at, current_valid_from, run_id)
    select
        '{{ table_name }}',
        incoming.{{ key }},
        incoming.updated_at,
        current_version.valid_from,
        '{{ var("run_id") }}'
    from {{ raw_table }} as incoming
    inner join {{ this }} as current_version
        on current_version.{{ key }} = incoming.{{ key }}
        and current_version.valid_to is null
    where incoming.loaded_xid >= {{ read_from }}
        and incoming.updated_at < current_version.valid_from
        and (select count(*) from {{ raw_table }} where loaded_xid >= {{ read_from }})
            > (select count(*) from {{ this }} where loaded_xid = pg_current_xact_id())
    on conflict do nothing
{% endmacro %}
