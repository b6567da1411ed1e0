{# dbt reads a generate_schema_name override from the root project only: this one hands over to the rule
   both projects share (tshop_shared's layer_schema_name). #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ tshop_shared.layer_schema_name(custom_schema_name) }}
{%- endmacro %}
