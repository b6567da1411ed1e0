{# Use a node's custom schema as it is (cdm) instead of dbt's default `<target schema>_<custom>`:
   the layer schemas are part of the contract. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
