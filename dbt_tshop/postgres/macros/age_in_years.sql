{# Full years between a birth date and a later date: the birthday itself counts (see doc customer_age). #}
{% macro age_in_years(birth_date, on_date) %}
    date_part('year', age({{ on_date }}, {{ birth_date }}))::integer
{% endmacro %}
