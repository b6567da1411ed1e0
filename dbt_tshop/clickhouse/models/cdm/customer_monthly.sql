-- cdm.customer_monthly in ClickHouse: PostgreSQL's customer mart, one row per customer and month. PostgreSQL
-- computes every month of a customer again when any of its lines changed and gives all of them that run's
-- loaded_at; so each run takes the customers with rows past the watermark and replaces all their rows
-- (delete+insert by customer_id: a month a customer no longer has goes too).

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        engine='ReplacingMergeTree(row_version)',
        order_by='(customer_id, month)',
        post_hook=["{{ record_clickhouse_watermark() }}"],
    )
}}

with

postgres_customer_monthly as (

    {{ copied_from_postgres('cdm', 'customer_monthly') }}

),

final as (

    select
        toDate(assumeNotNull(month)) as month,
        toInt64(assumeNotNull(customer_id)) as customer_id,
        toInt64(assumeNotNull(orders)) as orders,
        toInt64(assumeNotNull(items)) as items,
        toDecimal64(assumeNotNull(revenue), 2)::Decimal(14, 2) as revenue,
        toDate(assumeNotNull(first_purchase_date)) as first_purchase_date,
        toDate(assumeNotNull(last_purchase_date)) as last_purchase_date,
        toInt32(assumeNotNull(recency_days)) as recency_days,
        toInt64(assumeNotNull(frequency)) as frequency,
        toDecimal64(assumeNotNull(monetary), 2)::Decimal(14, 2) as monetary,
        toLowCardinality(toString(assumeNotNull(segment))) as segment,
        toString(assumeNotNull(coupon_code)) as coupon_code,
        toInt32(assumeNotNull(coupon_discount_pct)) as coupon_discount_pct,
        toDateTime64(assumeNotNull(loaded_at), 6, 'UTC') as loaded_at,
        toUInt64(toUnixTimestamp64Micro(toDateTime64(assumeNotNull(loaded_at), 6, 'UTC'))) as row_version
    from postgres_customer_monthly

)

select * from final
