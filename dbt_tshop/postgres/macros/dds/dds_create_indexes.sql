{# The indexes dbt does not create on a DDS snapshot. The snapshot joins the increment to the current rows
   by key and closes versions by dbt_scd_id; the mart looks versions up by key and valid_from, and reads the
   versions each load wrote by loaded_xid. Each is created once and then maintained by PostgreSQL. #}
{% macro dds_create_indexes(key) %}
    create index if not exists {{ this.identifier }}_current_idx on {{ this }} ({{ key }}) where valid_to is null;
    create index if not exists {{ this.identifier }}_version_idx on {{ this }} ({{ key }}, valid_from);
    create index if not exists {{ this.identifier }}_scd_id_idx on {{ this }} (dbt_scd_id);
    create index if not exists {{ this.identifier }}_loaded_xid_idx on {{ this }} (loaded_xid)
{% endmacro %}
