-- cdm.dim_date: the star schema's calendar, one row per day of every month the shop has sold in (the first
-- sale's month through the last sale's month, whole months, so a month's chart has no missing days).
-- A few hundred rows, rebuilt on every run; the bounds come from the mart's current-lines index.

{{ config(materialized='table', post_hook="create unique index if not exists dim_date_key_idx on {{ this }} (date_key)") }}

with

bounds as (

    select
        date_trunc('month', min(sale_date))::date as first_day,
        (date_trunc('month', max(sale_date)) + interval '1 month - 1 day')::date as last_day
    from {{ ref('sales_datamart') }}
    where is_current

),

days as (

    select day::date as date
    from bounds
    cross join generate_series(bounds.first_day, bounds.last_day, interval '1 day') as day

),

final as (

    select
        to_char(date, 'YYYYMMDD')::integer as date_key,
        date,
        extract(year from date)::integer as year,
        extract(quarter from date)::integer as quarter,
        extract(month from date)::integer as month,
        -- 'FM' drops the padding; without the 'TM' prefix the names are English whatever the locale
        to_char(date, 'FMMonth') as month_name,
        extract(week from date)::integer as iso_week,
        extract(isodow from date)::integer as day_of_week,
        to_char(date, 'FMDay') as day_name,
        extract(isodow from date) in (6, 7) as is_weekend
    from days

)

select * from final
