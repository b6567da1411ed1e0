-- cdm.sales_datamart: one row per version of a sale line, with the customer and product as they were
-- at the moment of the sale. Merged by (sale_id, valid_from): a new version is inserted and the closed
-- version's valid_to / is_current are updated in place. The watermark moves in the same transaction.
-- The valid_from / valid_to indexes serve the ClickHouse project's increment filter, pushed down here.

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['sale_id', 'valid_from'],
        on_schema_change='fail',
        post_hook=[
            "create unique index if not exists sales_datamart_version_idx on {{ this }} (sale_id, valid_from)",
            "create index if not exists sales_datamart_sale_date_idx on {{ this }} (sale_date) where is_current",
            "create index if not exists sales_datamart_valid_from_idx on {{ this }} (valid_from)",
            "create index if not exists sales_datamart_valid_to_idx on {{ this }} (valid_to)",
            "{{ sl_advance_watermark('cdm.sales_datamart', ref('sales_datamart_increment'), 'valid_from', 'has_customer and has_product') }}",
        ],
    )
}}

with

sales_datamart_increment as (

    select * from {{ ref('sales_datamart_increment') }}

),

final as (

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
        is_current
    from sales_datamart_increment
    where has_customer and has_product

)

select * from final
