-- The RAW sale lines the next snapshot of dds.sales reads: every row written since the previous
-- load read (by the writing transaction, not by updated_at: a row that arrives late is read too).
-- RAW holds one row per key, so this is at most one version per key, as a snapshot run needs.

with

raw_sales as (

    select * from {{ source('raw', 'sales') }}

),

final as (

    select
        sale_id,
        order_id,
        sold_at,
        customer_id,
        product_id,
        quantity,
        updated_at
    from raw_sales
    where loaded_xid >= {{ sl_read_from_xid('dds.sales') }}

)

select * from final
