-- cdm.dim_product in ClickHouse: PostgreSQL's product dimension, one row per version. Each run appends the
-- PostgreSQL rows written since the watermark (a new version, and the version it closed); ReplacingMergeTree
-- keeps the latest write of each product_key (row_version = loaded_at): read it with FINAL.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        engine='ReplacingMergeTree(row_version)',
        order_by='product_key',
        post_hook=["{{ record_clickhouse_watermark() }}"],
    )
}}

with

postgres_dim_product as (

    {{ copied_from_postgres('cdm', 'dim_product') }}

),

final as (

    select
        toInt64(assumeNotNull(product_key)) as product_key,
        toInt64(assumeNotNull(product_id)) as product_id,
        toString(assumeNotNull(name)) as name,
        toLowCardinality(toString(assumeNotNull(category))) as category,
        toLowCardinality(toString(assumeNotNull(size))) as size,
        toDecimal64(assumeNotNull(price), 2)::Decimal(12, 2) as price,
        toDateTime64(assumeNotNull(updated_at), 6, 'UTC') as updated_at,
        toDateTime64(assumeNotNull(valid_from), 6, 'UTC') as valid_from,
        toNullable(toDateTime64(valid_to, 6, 'UTC')) as valid_to,
        toBool(assumeNotNull(is_current)) as is_current,
        toDateTime64(assumeNotNull(loaded_at), 6, 'UTC') as loaded_at,
        toUInt64(toUnixTimestamp64Micro(toDateTime64(assumeNotNull(loaded_at), 6, 'UTC'))) as row_version
    from postgres_dim_product

)

select * from final
