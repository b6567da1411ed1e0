-- cdm.sales_datamart_current: exactly one row per sale line that is current in the PostgreSQL mart, with
-- the same values. FINAL collapses the versions ReplacingMergeTree has not merged yet, so a line corrected
-- since the last merge still shows once, with its new values. The dashboard reads this view.

{{ config(materialized='view') }}

select
    sale_id,
    order_id,
    sale_date,
    sold_at,
    customer_id,
    customer_name,
    customer_age,
    product_id,
    product_name,
    product_category,
    product_size,
    product_price,
    quantity,
    total_cost,
    valid_from,
    valid_to,
    is_current,
    customer_key,
    product_key
from {{ ref('sales_datamart') }} final
where is_current
