-- cdm.fct_sales in ClickHouse: the star schema's fact table, one row per current sale line, with the same
-- values as PostgreSQL's. A view over cdm.sales_datamart_current: the mart already holds every column
-- (PostgreSQL's mart keeps the keys of the dimension versions valid at sold_at), so the fact table costs no
-- copy and follows every correction of the mart.

{{ config(materialized='view') }}

select
    sale_id,
    order_id,
    toInt32(toYYYYMMDD(sale_date)) as date_key,
    customer_key,
    product_key,
    sold_at,
    quantity,
    product_price as unit_price,
    total_cost
from {{ ref('sales_datamart_current') }}
