{# Post-hook of a DDS snapshot: the indexes dbt does not create. The snapshot joins the increment to the
   current rows by key and closes versions by dbt_scd_id; the mart looks versions up by key and valid_from
   and finds the versions past its watermark by valid_from; the watermark is read back by updated_at. Each
   is created once and then maintained by PostgreSQL. #}
{% macro dds_create_indexes(key) %}
    create index if not exists {{ this.identifier }}_current_idx on {{ this }} ({{ key }}) where valid_to is null;
    create index if not exists {{ this.identifier }}_version_idx on {{ this }} ({{ key }}, valid_from);
    create index if not exists {{ this.identifier }}_scd_id_idx on {{ this }} (dbt_scd_id);
    create index if not exists {{ this.identifier }}_valid_from_idx on {{ this }} (valid_from);
    create index if not exists {{ this.identifier }}_updated_at_idx on {{ this }} (updated_at)
{% endmacro %}
