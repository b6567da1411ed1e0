-- cdm.sales_datamart in ClickHouse: the PostgreSQL mart's rows, one per version of a sale line.
-- Each run appends the PostgreSQL rows that changed since the watermark (a new version, or a version
-- closed by its successor); the filter is pushed down to PostgreSQL, so a run moves the day, not the
-- history. ReplacingMergeTree keeps one row per (sale_date, sale_id, valid_from): the one with the
-- greatest row_version, and a closed version's row_version (its valid_to) beats the open one's.
-- Read it with FINAL (cdm.sales_datamart_current does).

{%- set watermark = clickhouse_watermark() %}

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        engine='ReplacingMergeTree(row_version)',
        order_by='(sale_date, sale_id, valid_from)',
        partition_by='toYYYYMM(sale_date)',
        post_hook=["{{ record_clickhouse_watermark() }}"],
    )
}}

with

postgres_sales_datamart as (

    select *
    from {{ postgresql_table('cdm', 'sales_datamart') }}
    {%- if watermark %}
    -- ties are read again (>=): ReplacingMergeTree makes re-reading a row a no-op
    where valid_from >= '{{ watermark }}' or valid_to >= '{{ watermark }}'
    {%- endif %}

),

final as (

    select
        toInt64(sale_id) as sale_id,
        toInt64(order_id) as order_id,
        toDate(sale_date) as sale_date,
        toDateTime64(sold_at, 6, 'UTC') as sold_at,
        toInt64(customer_id) as customer_id,
        toString(customer_name) as customer_name,
        toInt32(customer_age) as customer_age,
        toInt64(product_id) as product_id,
        toString(product_name) as product_name,
        toLowCardinality(toString(product_category)) as product_category,
        toLowCardinality(toString(product_size)) as product_size,
        toDecimal64(product_price, 2)::Decimal(12, 2) as product_price,
        toInt32(quantity) as quantity,
        toDecimal64(total_cost, 2)::Decimal(14, 2) as total_cost,
        toDateTime64(valid_from, 6, 'UTC') as valid_from,
        toNullable(toDateTime64(valid_to, 6, 'UTC')) as valid_to,
        toBool(is_current) as is_current,
        toUInt64(toUnixTimestamp64Micro(toDateTime64(coalesce(valid_to, valid_from), 6, 'UTC'))) as row_version
    from postgres_sales_datamart

)

select * from final
