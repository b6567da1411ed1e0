-- cdm.fct_sales: the star schema's fact table, one row per current sale line, keyed to the calendar
-- (date_key), to the customer and product versions valid at sold_at (customer_key, product_key) and carrying
-- the line's measures. The point-in-time lookup is not made again here: the flat mart made it once and keeps
-- the keys of the versions it found (sales_datamart_increment), so the star and the flat mart cannot disagree.
-- Incremental: the mart rows written since this model's previous read; a corrected line's new version
-- replaces the line (merged by sale_id).

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='sale_id',
        on_schema_change='fail',
        post_hook=[
            "{{ mart_reader_delete_gone('sale_id') }}",
            "{{ mart_reader_after_load({
                'sale': {'columns': ['sale_id'], 'unique': true},
                'date': {'columns': ['date_key'], 'unique': false},
            }) }}",
        ],
    )
}}

with

sales_datamart as (

    {{ mart_rows_since('cdm.fct_sales') }}

),

final as (

    select
        sale_id,
        order_id,
        to_char(sale_date, 'YYYYMMDD')::integer as date_key,
        customer_key,
        product_key,
        sold_at,
        quantity,
        product_price as unit_price,
        total_cost,
        loaded_at
    from sales_datamart
    where is_current

)

select * from final
