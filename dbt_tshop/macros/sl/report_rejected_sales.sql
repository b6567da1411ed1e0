{# on-run-end: says how many sale lines wait in cdm.sales_rejected and why, so a run never drops them
   silently. Returns no SQL; it only logs. #}
{% macro report_rejected_sales() %}
    {%- if execute -%}
        {%- set rejected = adapter.get_relation(database=target.database, schema='cdm', identifier='sales_rejected') -%}
        {%- if rejected is not none -%}
            {%- set counts = run_query("select case when reason like '%customer%' and reason like '%product%' then 'customer and product' when reason like 'customer%' then 'customer' else 'product' end as missing, count(*) from " ~ rejected ~ " group by 1 order by 1") -%}
            {%- set total = counts.columns[1].values() | sum -%}
            {%- if total > 0 -%}
                {%- set parts = [] -%}
                {%- for row in counts.rows -%}{%- do parts.append(row[1] ~ " missing " ~ row[0]) -%}{%- endfor -%}
                {{ log("cdm.sales_rejected: " ~ total ~ " sale line(s) set aside until their customer or product arrives (" ~ parts | join(", ") ~ "); they are retried on every run.", info=True) }}
            {%- else -%}
                {{ log("cdm.sales_rejected: no sale line set aside.", info=True) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
