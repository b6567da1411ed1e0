{# SCD2: a key has exactly one current version (valid_to is null); with at_most=true, zero is allowed too
   (the mart keeps no current version of a line whose latest version waits in cdm.sales_rejected). With
   deleted_keys_of (a landing table name: customer, product, sales), a key deleted in the landing zone
   (raw.deleted_key) may have none: its last version was closed at the deletion (CONTRACT.md section 7). #}
{% test scd2_one_current_version(model, key, valid_to='valid_to', at_most=false, deleted_keys_of=none) %}

select
    {{ key }} as version_key,
    count(*) filter (where {{ valid_to }} is null) as current_versions
from {{ model }}
group by {{ key }}
having count(*) filter (where {{ valid_to }} is null) {{ '> 1' if at_most else '<> 1' }}
{%- if deleted_keys_of and not at_most %}
    and not (
        count(*) filter (where {{ valid_to }} is null) = 0
        and {{ key }} in (
            select key_value from {{ source('raw', 'deleted_key') }} where table_name = '{{ deleted_keys_of }}'
        )
    )
{%- endif %}

{% endtest %}
