{# Keeps in sl.stale_change each RAW row this load read whose `updated_at` is older than its key's current
   DDS version: a change that arrived after a newer one. The timestamp strategy rightly makes no version of
   it (CONTRACT 1.5); this makes it visible, once per (key, updated_at), and sl.run_log counts them. #}
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
    on conflict do nothing
{% endmacro %}
