-- The RAW customers the next snapshot of dds.customer reads: every row written since the previous
-- load read (by the writing transaction, not by updated_at: a row that arrives late is read too).
-- RAW holds one row per key, so this is at most one version per key, as a snapshot run needs.

with

raw_customer as (

    select * from {{ source('raw', 'customer') }}

),

final as (

    select
        customer_id,
        first_name,
        last_name,
        birth_date,
        updated_at
    from raw_customer
    where loaded_xid >= {{ sl_read_from_xid('dds.customer') }}

)

select * from final
