{# SCD2: versions leave no gaps: each closed version ends exactly where the next one starts. #}
{% test scd2_contiguous_versions(model, key, valid_from='valid_from', valid_to='valid_to') %}

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

{% endtest %}
