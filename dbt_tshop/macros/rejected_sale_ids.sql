{# SQL selecting the sale_id of every line waiting in cdm.sales_rejected (none on the first run or a
   --full-refresh). The table is written after the model that reads it, so it is looked up by name:
   a ref() would be a cycle. #}
{% macro rejected_sale_ids() %}
    {%- set sales_rejected = adapter.get_relation(database=target.database, schema='cdm', identifier='sales_rejected') if execute else none -%}
    {%- if sales_rejected is not none and not flags.FULL_REFRESH -%}
        select sale_id from {{ sales_rejected }}
    {%- else -%}
        select null::bigint as sale_id where false
    {%- endif -%}
{% endmacro %}
