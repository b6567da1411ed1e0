-- cdm.sales_daily_summary: the current sale lines summed per day, category, size and customer age, a few
-- hundred thousand rows instead of tens of millions. Five tiles are sums over these dimensions (revenue,
-- revenue per day, per day and category, by age band, most popular size), and the dashboard's two filters
-- (date, category) are columns of it, so they read this table and answer in milliseconds. Rebuilt from
-- cdm.sales_datamart_current on every run (a second at full scale): corrected lines move between groups,
-- which an append could not follow, and dbt swaps the new table in atomically. customer_age is Nullable (an
-- erased customer's purchase after the erasure has none), hence allow_nullable_key for the sort key.

{{
    config(
        materialized='table',
        engine='MergeTree',
        order_by='(sale_date, product_category, product_size, customer_age)',
        settings={'allow_nullable_key': 1},
    )
}}

select
    sale_date,
    product_category,
    product_size,
    customer_age,
    sum(total_cost) as revenue,
    sum(quantity) as quantity,
    count() as sale_lines
from {{ ref('sales_datamart_current') }}
group by sale_date, product_category, product_size, customer_age
