-- cdm.sales_datamart: one row per version of a sale line, with the customer and product as they were
-- at the moment of the sale. Merged by (sale_id, valid_from): a new version is inserted and the closed
-- version's valid_to / is_current are updated in place. The watermark moves in the same transaction.
-- loaded_at is the start of the run that last wrote a row (inserted it, or closed it): the ClickHouse
-- project copies the rows past its own watermark on loaded_at, and its index serves that filter.
-- The index on customer_id covers every version, not only current ones: tshop forget-customer rewrites all
-- of a customer's versions, and without it each erasure scans the whole mart.

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['sale_id', 'valid_from'],
        on_schema_change='fail',
        post_hook=[
            "create unique index if not exists sales_datamart_version_idx on {{ this }} (sale_id, valid_from)",
            "create index if not exists sales_datamart_sale_date_idx on {{ this }} (sale_date) where is_current",
            "create index if not exists sales_datamart_loaded_at_idx on {{ this }} (loaded_at)",
            "drop index if exists {{ this.schema }}.sales_datamart_customer_idx",
            "create index if not exists sales_datamart_customer_id_idx on {{ this }} (customer_id)",
            "{{ analyze_if_never_analyzed(this) }}",
            "{{ sl_advance_watermark('cdm.sales_datamart',
                max_updated_at='select max(valid_from) from ' ~ ref('sales_datamart_increment') ~ ' where has_customer and has_product',
                rows_read='select count(*) from ' ~ ref('sales_datamart_increment') ~ ' where has_customer and has_product',
                read_from_xid='select max(next_read_from_xid) from ' ~ ref('sales_datamart_increment')) }}",
        ],
    )
}}

{#- every column but the key (sale_id, valid_from) and loaded_at -#}
{%- set value_columns = [
    'order_id', 'sale_date', 'sold_at', 'customer_id', 'customer_name', 'customer_age', 'product_id',
    'product_name', 'product_category', 'product_size', 'product_price', 'quantity', 'total_cost',
    'valid_to', 'is_current', 'customer_key', 'product_key',
] %}

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
        is_current,
        customer_key,
        product_key,
        tried_at as loaded_at
    from sales_datamart_increment
    where has_customer and has_product

)

select * from final
{%- if is_incremental() %}
-- a version re-read as it already is (the watermark's ties) is not written again: loaded_at moves only
-- when a row really changes, and a re-run with nothing new writes nothing
where not exists (
    select 1
    from {{ this }} as loaded
    where loaded.sale_id = final.sale_id
        and loaded.valid_from = final.valid_from
        and ({% for column in value_columns %}loaded.{{ column }}{{ ", " if not loop.last }}{% endfor %})
            is not distinct from
            ({% for column in value_columns %}final.{{ column }}{{ ", " if not loop.last }}{% endfor %})
)
{%- endif %}
