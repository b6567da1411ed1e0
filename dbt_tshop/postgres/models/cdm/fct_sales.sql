-- cdm.fct_sales: the star schema's fact table, one row per current sale line, keyed to the calendar
-- (date_key), to the customer and product versions valid at sold_at (customer_key, product_key) and carrying
-- the line's measures. The point-in-time lookup is not made again here: the flat mart made it once and keeps
-- the keys of the versions it found (sales_datamart_increment), so the star and the flat mart cannot disagree.
-- A view over the mart's current lines: every column is there already, so a copy would cost a second
-- 22-million-row table and a merge every day for nothing (docs/benchmarks.md, issue 18), and the view follows
-- every correction, late line and line set aside at once.

{{ config(materialized='view') }}

with

sales_datamart as (

    select * from {{ ref('sales_datamart') }}

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
