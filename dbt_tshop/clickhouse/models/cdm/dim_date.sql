-- cdm.dim_date in ClickHouse: PostgreSQL's calendar, copied whole on every run (a few hundred rows).

{{ config(materialized='table', engine='MergeTree', order_by='date_key') }}

select
    toInt32(assumeNotNull(date_key)) as date_key,
    toDate(assumeNotNull(date)) as date,
    toInt32(assumeNotNull(year)) as year,
    toInt32(assumeNotNull(quarter)) as quarter,
    toInt32(assumeNotNull(month)) as month,
    toLowCardinality(toString(assumeNotNull(month_name))) as month_name,
    toInt32(assumeNotNull(iso_week)) as iso_week,
    toInt32(assumeNotNull(day_of_week)) as day_of_week,
    toLowCardinality(toString(assumeNotNull(day_name))) as day_name,
    toBool(assumeNotNull(is_weekend)) as is_weekend
from {{ postgresql_table('cdm', 'dim_date') }}
