{# Every row satisfies a SQL condition over its columns (dbt_utils' test of the same name, written here
   because the dbt hub is not reachable). #}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
