-- The RAW customers the next snapshot of dds.customer reads: rows at or past the SL watermark
-- (ties are read again, see the tie rule in _raw__models.yml), the latest row per key.

with

raw_customer as (

    select * from {{ source('raw', 'customer') }}

),

increment as (

    select
        customer_id,
        first_name,
        last_name,
        birth_date,
        updated_at
    from raw_customer
    where updated_at >= {{ sl_watermark('dds.customer') }}

),

final as (

    -- a run takes one version per key: duplicates would become two versions with one valid_from
    select distinct on (customer_id) *
    from increment
    order by customer_id, updated_at desc

)

select * from final
