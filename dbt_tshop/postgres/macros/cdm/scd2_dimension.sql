{# The body of an SCD2 dimension of the star schema (cdm.dim_customer, cdm.dim_product): one row per DDS
   version of `snapshot`, keyed by version_key, with the DDS columns, valid_from, valid_to, is_current and
   loaded_at (the start of the run that wrote the row; the ClickHouse copy reads by it).
   Incremental: the versions of the keys with a DDS version written since the dimension's previous read
   (loaded_xid at or past its read horizon), all of them, so the version a new one closed is updated too; a
   version already in the dimension as it is is not written again. A version's own values never change in DDS,
   only its valid_to, so comparing valid_to is enough. #}
{% macro scd2_dimension(snapshot, natural_key, surrogate_key, columns) %}
{%- set table_name = this.schema ~ '.' ~ this.identifier %}
with

versions as (

    select * from {{ snapshot }}

),

{% if is_incremental() -%}
changed_keys as (

    select distinct {{ natural_key }}
    from versions
    where loaded_xid >= {{ sl_read_from_xid(table_name) }}

),

{% endif -%}
final as (

    select
        {{ version_key('dbt_scd_id') }} as {{ surrogate_key }},
        {{ natural_key }},
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        updated_at,
        valid_from,
        valid_to,
        valid_to is null as is_current,
        '{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}'::timestamp as loaded_at
    from versions
    {%- if is_incremental() %}
    where {{ natural_key }} in (select {{ natural_key }} from changed_keys)
    {%- endif %}

)

select * from final
{%- if is_incremental() %}
where not exists (
    select 1
    from {{ this }} as loaded
    where loaded.{{ surrogate_key }} = final.{{ surrogate_key }}
        and loaded.valid_to is not distinct from final.valid_to
)
{%- endif %}
{% endmacro %}


{# Post-hook of every SCD2 dimension, in the load's own transaction: its indexes, first statistics and the SL
   record (watermark = the greatest valid_from it wrote, the rows it wrote, and the read horizon noted by
   sl_note_read_horizon before the read). The natural key's index serves lookups of one entity's versions
   (tshop forget-customer rewrites a customer's versions in place). #}
{% macro scd2_dimension_after_load(surrogate_key, natural_key) %}
    {%- set written_now = "loaded_at = '" ~ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") ~ "'::timestamp" -%}
    create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} ({{ surrogate_key }});
    create index if not exists {{ this.identifier }}_loaded_at_idx on {{ this }} (loaded_at);
    create index if not exists {{ this.identifier }}_{{ natural_key }}_idx on {{ this }} ({{ natural_key }});
    {{ analyze_if_never_analyzed(this) }};
    {{ sl_advance_watermark(
        this.schema ~ '.' ~ this.identifier,
        max_updated_at="select max(valid_from) from " ~ this ~ " where " ~ written_now,
        rows_read="select count(*) from " ~ this ~ " where " ~ written_now,
        read_from_xid="current_setting('tshop.read_from_xid')::bigint",
    ) }}
{% endmacro %}
