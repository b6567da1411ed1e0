{# SCD2: the versions of one key never overlap: each version starts at or after the previous one ends. #}
{% test scd2_no_overlapping_versions(model, key, valid_from='valid_from', valid_to='valid_to') %}

with versions as (

    select
        {{ key }} as version_key,
        {{ valid_from }} as version_from,
        {{ valid_to }} as version_to,
        lead({{ valid_from }}) over (partition by {{ key }} order by {{ valid_from }}) as next_from
    from {{ model }}

)

select *
from versions
where version_to is null and next_from is not null
    or version_to > next_from
    or version_to <= version_from

{% endtest %}
