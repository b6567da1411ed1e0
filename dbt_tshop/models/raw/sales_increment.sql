-- The RAW sale lines the next snapshot of dds.sales reads: rows at or past the SL watermark
-- (ties are read again, see the tie rule in _raw__models.yml), the latest row per key.

with

raw_sales as (

    select * from {{ source('raw', 'sales') }}

),

increment as (

    select
        sale_id,
        order_id,
        sold_at,
        customer_id,
        product_id,
        quantity,
        updated_at
    from raw_sales
    where updated_at >= {{ sl_watermark('dds.sales') }}

),

final as (

    -- a run takes one version per key: duplicates would become two versions with one valid_from
    select distinct on (sale_id) *
    from increment
    order by sale_id, updated_at desc

)

select * from final
