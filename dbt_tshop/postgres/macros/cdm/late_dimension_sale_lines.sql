{# SQL selecting the sale_id of the lines already in the mart that a late customer or product version
   changes: a version written into DDS since the mart's previous read whose valid_from is not after the
   newest line the mart holds (its max_updated_at). Point in time, such a version is the one valid at
   the sold_at of that customer's or product's lines sold since its valid_from, so they are built again (in
   place: the same mart versions, new values). On time, a version starts after every line already built,
   so this is checked once per run (an index range on loaded_xid) and usually selects nothing. #}
{% macro late_dimension_sale_lines() %}
    {%- set read_from = sl_read_from_xid('cdm.sales_datamart') -%}
    {%- set newest_built = sl_recorded('cdm.sales_datamart', 'max_updated_at') -%}
    {%- set late = [] -%}
    {#- a first build or a --full-refresh reads every version anyway -#}
    {%- if execute and newest_built is not none and sl_read_horizon('cdm.sales_datamart') is not none -%}
        {%- for dimension, key in [('customer', 'customer_id'), ('product', 'product_id')] -%}
            {%- set found = run_query(
                "select exists (select 1 from " ~ ref(dimension) ~ " where loaded_xid >= " ~ read_from
                ~ " and valid_from <= '" ~ newest_built ~ "'::timestamp)"
            ).columns[0].values()[0] -%}
            {%- if found -%}{%- do late.append((dimension, key)) -%}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if late -%}
        {%- for dimension, key in late %}
    select sales.sale_id
    from sales
    inner join (
        select {{ key }}, min(valid_from) as late_since
        from {{ ref(dimension) }}
        where loaded_xid >= {{ read_from }}
            and valid_from <= '{{ newest_built }}'::timestamp
        group by {{ key }}
    ) as late_{{ dimension }}
        on sales.{{ key }} = late_{{ dimension }}.{{ key }}
        and sales.sold_at >= late_{{ dimension }}.late_since
            {{- "\n    union\n" if not loop.last }}
        {%- endfor %}
    {%- else -%}
    select null::bigint as sale_id where false
    {%- endif -%}
{% endmacro %}
