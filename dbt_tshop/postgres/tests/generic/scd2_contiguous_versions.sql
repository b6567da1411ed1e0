{# SCD2: versions leave no gaps: each closed version ends exactly where the next one starts. With
   deleted_keys_of (a landing table name: customer, product, sales), a version closed by a deletion in the
   landing zone (raw.deleted_key at its valid_to) may end the key's history, or be followed by a later
   version of a key that came back (CONTRACT.md section 7). #}
{% test scd2_contiguous_versions(model, key, valid_from='valid_from', valid_to='valid_to', deleted_keys_of=none) %}

with versions as (

    select
        {{ key }} as version_key,
        {{ valid_to }} as version_to,
        lead({{ valid_from }}) over (partition by {{ key }} order by {{ valid_from }}) as next_from
    from {{ model }}

)

select *
from versions
where version_to is not null and version_to is distinct from next_from
{%- if deleted_keys_of %}
    and not exists (
        select 1
        from {{ source('raw', 'deleted_key') }} as deleted
        where deleted.table_name = '{{ deleted_keys_of }}'
            and deleted.key_value = versions.version_key
            and deleted.deleted_at = versions.version_to
    )
{%- endif %}

{% endtest %}
