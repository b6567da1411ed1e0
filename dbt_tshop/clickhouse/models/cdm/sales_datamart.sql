-- cdm.sales_datamart in ClickHouse: the PostgreSQL mart's rows, one per version of a sale line.
-- Each run appends the PostgreSQL rows written since the watermark (`loaded_at` past it: a new version, a
-- version closed by its successor, a line that entered late); the filter is pushed down to PostgreSQL, so
-- a run moves the day, not the history. ReplacingMergeTree keeps one row per (sale_date, sale_id,
-- valid_from): the latest PostgreSQL write (row_version = loaded_at). Read it with FINAL
-- (cdm.sales_datamart_current does).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        engine='ReplacingMergeTree(row_version)',
        order_by='(sale_date, sale_id, valid_from)',
        partition_by='toYYYYMM(sale_date)',
        pre_hook="{{ make_column_nullable(this, 'customer_age', 'Int32') }}",
        post_hook=["{{ record_clickhouse_watermark() }}"],
    )
}}

with

postgres_sales_datamart as (

    {{ copied_from_postgres('cdm', 'sales_datamart') }}

),

final as (

    -- PostgreSQL's columns arrive Nullable; all but valid_to and customer_age are not null in the contract
    -- (customer_age is null on a line of an erased customer built after the erasure: no birth date is left)
    select
        toInt64(assumeNotNull(sale_id)) as sale_id,
        toInt64(assumeNotNull(order_id)) as order_id,
        toDate(assumeNotNull(sale_date)) as sale_date,
        toDateTime64(assumeNotNull(sold_at), 6, 'UTC') as sold_at,
        toInt64(assumeNotNull(customer_id)) as customer_id,
        toString(assumeNotNull(customer_name)) as customer_name,
        toNullable(toInt32(customer_age)) as customer_age,
        toInt64(assumeNotNull(product_id)) as product_id,
        toString(assumeNotNull(product_name)) as product_name,
        toLowCardinality(toString(assumeNotNull(product_category))) as product_category,
        toLowCardinality(toString(assumeNotNull(product_size))) as product_size,
        toDecimal64(assumeNotNull(product_price), 2)::Decimal(12, 2) as product_price,
        toInt32(assumeNotNull(quantity)) as quantity,
        toDecimal64(assumeNotNull(total_cost), 2)::Decimal(14, 2) as total_cost,
        toDateTime64(assumeNotNull(valid_from), 6, 'UTC') as valid_from,
        toNullable(toDateTime64(valid_to, 6, 'UTC')) as valid_to,
        toBool(assumeNotNull(is_current)) as is_current,
        toInt64(assumeNotNull(customer_key)) as customer_key,
        toInt64(assumeNotNull(product_key)) as product_key,
        toDateTime64(assumeNotNull(loaded_at), 6, 'UTC') as loaded_at,
        toUInt64(toUnixTimestamp64Micro(toDateTime64(assumeNotNull(loaded_at), 6, 'UTC'))) as row_version
    from postgres_sales_datamart

)

select * from final
