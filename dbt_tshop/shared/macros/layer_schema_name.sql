{# The schema of a node: its custom schema as it is (raw, dds, cdm, sl) instead of dbt's default
   `<target schema>_<custom>`, because the layer schemas are part of the contract. dbt takes a
   generate_schema_name override from the root project only, so each project's generate_schema_name calls
   this one definition. #}
{% macro layer_schema_name(custom_schema_name) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
