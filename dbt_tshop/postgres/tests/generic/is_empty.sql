{# The model has no rows; used with severity warn to report what waits (cdm.sales_rejected). #}
{% test is_empty(model) %}

select * from {{ model }}

{% endtest %}
