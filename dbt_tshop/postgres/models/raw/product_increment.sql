-- The RAW products the next snapshot of dds.product reads: every row written since the previous
-- load read (by the writing transaction, not by updated_at: a row that arrives late is read too).
-- RAW holds one row per key, so this is at most one version per key, as a snapshot run needs.

with

raw_product as (

    select * from {{ source('raw', 'product') }}

),

final as (

    select
        product_id,
        name,
        category,
        size,
        price,
        updated_at
    from raw_product
    where loaded_xid >= {{ sl_read_from_xid('dds.product') }}

)

select * from final
