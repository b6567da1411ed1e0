-- cdm.dim_customer in ClickHouse: PostgreSQL's customer dimension, one row per version. Each run appends the
-- PostgreSQL rows written since the watermark (a new version, and the version it closed); ReplacingMergeTree
-- keeps the latest write of each customer_key (row_version = loaded_at): read it with FINAL.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        engine='ReplacingMergeTree(row_version)',
        order_by='customer_key',
        post_hook=["{{ record_clickhouse_watermark() }}"],
    )
}}

with

postgres_dim_customer as (

    {{ copied_from_postgres('cdm', 'dim_customer') }}

),

final as (

    select
        toInt64(assumeNotNull(customer_key)) as customer_key,
        toInt64(assumeNotNull(customer_id)) as customer_id,
        toString(assumeNotNull(first_name)) as first_name,
        toString(assumeNotNull(last_name)) as last_name,
        toDate32(birth_date) as birth_date, -- null once erased (tshop forget-customer)
        toDateTime64(assumeNotNull(updated_at), 6, 'UTC') as updated_at,
        toDateTime64(assumeNotNull(valid_from), 6, 'UTC') as valid_from,
        toNullable(toDateTime64(valid_to, 6, 'UTC')) as valid_to,
        toBool(assumeNotNull(is_current)) as is_current,
        toDateTime64(assumeNotNull(loaded_at), 6, 'UTC') as loaded_at,
        toUInt64(toUnixTimestamp64Micro(toDateTime64(assumeNotNull(loaded_at), 6, 'UTC'))) as row_version
    from postgres_dim_customer

)

select * from final
