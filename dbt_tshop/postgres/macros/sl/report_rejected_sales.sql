{# on-run-end: says how many sale lines wait in cdm.sales_rejected and what they miss, so a run never
   sets them aside silently. Returns no SQL; it only logs. (The DAG's check_waiting_sales fails the run
   when a line has waited more than a day.) #}
{% macro report_rejected_sales() %}
    {%- if execute -%}
        {%- set rejected = load_relation(source('cdm', 'sales_rejected')) -%}
        {%- if rejected is not none -%}
            {%- set counts = run_query(
                "select count(*), count(*) filter (where is_missing_customer), count(*) filter (where is_missing_product) from " ~ rejected
            ).rows[0] -%}
            {%- if counts[0] > 0 -%}
                {{ log("cdm.sales_rejected: " ~ counts[0] ~ " sale line(s) set aside until their customer or product arrives (" ~ counts[1] ~ " missing their customer, " ~ counts[2] ~ " missing their product); they are retried on every run.", info=True) }}
            {%- else -%}
                {{ log("cdm.sales_rejected: no sale line set aside.", info=True) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
