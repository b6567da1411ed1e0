{# SCD2: a key has exactly one current version (valid_to is null); with at_most=true, zero is allowed too
   (the mart keeps no current version of a line whose latest version waits in cdm.sales_rejected). #}
{% test scd2_one_current_version(model, key, valid_to='valid_to', at_most=false) %}

select
    {{ key }} as version_key,
    count(*) filter (where {{ valid_to }} is null) as current_versions
from {{ model }}
group by {{ key }}
having count(*) filter (where {{ valid_to }} is null) {{ '> 1' if at_most else '<> 1' }}

{% endtest %}
