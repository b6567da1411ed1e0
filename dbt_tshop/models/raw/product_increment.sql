-- The RAW products the next snapshot of dds.product reads: rows at or past the SL watermark
-- (ties are read again, see the tie rule in _raw__models.yml), the latest row per key.

with

raw_product as (

    select * from {{ source('raw', 'product') }}

),

increment as (

    select
        product_id,
        name,
        category,
        size,
        price,
        updated_at
    from raw_product
    where updated_at >= {{ sl_watermark('dds.product') }}

),

final as (

    -- a run takes one version per key: duplicates would become two versions with one valid_from
    select distinct on (product_id) *
    from increment
    order by product_id, updated_at desc

)

select * from final
