{# Part of dds_after_load: closes the current version of each key deleted in the landing zone since this
   load's read horizon (raw.deleted_key, by the writing transaction like RAW) at its `deleted_at`, so the key
   has no current version and its history stays (CONTRACT.md section 7). The closed version takes this
   transaction's loaded_xid: the mart and the dimensions read their increments by it, and rebuild the line or
   version as closed. A version that started after the deletion (the key came back) stays current. Read
   again by an overlapping horizon, it changes nothing: only current versions are closed. #}
{% macro dds_close_deleted_versions(key, read_from) %}
    {%- set deleted_key = source('raw', 'deleted_key') -%}
    {%- if relation_exists(deleted_key) %}
    update {{ this }} as version
    set valid_to = deleted.deleted_at, loaded_xid = pg_current_xact_id()
    from (
        select key_value, max(deleted_at) as deleted_at
        from {{ deleted_key }}
        where table_name = '{{ this.identifier }}' and loaded_xid >= {{ read_from }}
        group by key_value
    ) as deleted
    where version.{{ key }} = deleted.key_value
        and version.valid_to is null
        and version.valid_from < deleted.deleted_at
    {%- else %}
    select 'raw.deleted_key does not exist yet: no deletions to apply'
    {%- endif %}
{% endmacro %}
