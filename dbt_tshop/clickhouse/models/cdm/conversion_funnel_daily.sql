-- cdm.conversion_funnel_daily: the web funnel of each day (CONTRACT.md section 8) and the conversion the
-- specification defines the shop by: buyers over the customers existing that day. Each run computes again
-- the days its new events fall on (from all of that day's events: a late file adds to its day) and replaces
-- them (delete+insert by event_date); a full refresh computes every day.
-- Distinct counts do not change when an event is seen twice, so the day is read without FINAL.

-- depends_on: {{ ref('clickstream_landed') }}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        engine='MergeTree',
        order_by='event_date',
    )
}}

with

days as (

    {% if is_incremental() %}
    select distinct event_date from {{ ref('clickstream_landed') }} where reason = ''
    {% else %}
    select distinct event_date from {{ ref('clickstream') }}
    {% endif %}

),

events as (

    select
        event_date,
        event_type,
        session_id,
        customer_id,
        -- a visitor: the customer when signed in, else the session (an anonymous visitor)
        if(customer_id is null, 'session ' || session_id, toString(customer_id)) as visitor
    from {{ ref('clickstream') }}
    where event_date in (select event_date from days)

),

funnel as (

    select
        event_date,
        uniqExact(session_id) as sessions,
        uniqExactIf(visitor, event_type = 'product_view') as product_viewers,
        uniqExactIf(visitor, event_type = 'add_to_cart') as cart_adders,
        uniqExactIf(assumeNotNull(customer_id), event_type = 'checkout') as buyers
    from events
    group by event_date

),

-- a customer exists from its first version in the customer dimension (its registration): the generator's
-- buyers of a day are drawn from the customers registered before it
registrations as (

    select toDate(first_valid_from) as registration_date, count() as registered
    from (
        select customer_id, min(valid_from) as first_valid_from
        from {{ ref('dim_customer') }}
        group by customer_id
    )
    group by registration_date

),

customers as (

    select days.event_date as event_date, sumIf(registered, registration_date < days.event_date) as customers
    from days
    cross join registrations
    group by days.event_date

),

final as (

    select
        funnel.event_date as event_date,
        funnel.sessions as sessions,
        funnel.product_viewers as product_viewers,
        funnel.cart_adders as cart_adders,
        funnel.buyers as buyers,
        toUInt64(coalesce(customers.customers, 0)) as customers,
        if(customers = 0, 0, funnel.buyers / customers) as conversion,
        if(toDayOfWeek(funnel.event_date) >= 6, 0.05, 0.01) as expected_conversion
    from funnel
    left join customers on customers.event_date = funnel.event_date

)

select * from final
