-- cdm.customer_monthly: the customer mart, one row per customer and month with a purchase: the month's
-- orders, items and revenue, the customer's RFM figures at the month's end, a segment and a coupon for it.
-- Built from the flat mart's current lines. Incremental by customer: the customers with a mart row written
-- since this model's previous read get all their months computed again (a late or corrected line changes
-- the figures "to date" of every later month), and delete+insert replaces all their rows. No index on
-- coupon_code: unique by construction (dbt's unique test checks it) and looked up by no query here, it would
-- cost a sixth of the first build.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        on_schema_change='fail',
        post_hook=[
            "{{ mart_reader_delete_gone('customer_id') }}",
            "{{ mart_reader_after_load({
                'month': {'columns': ['customer_id', 'month'], 'unique': true},
            }) }}",
        ],
    )
}}

with

{% if is_incremental() -%}
changed_customers as (

    -- read_loaded_at: a line that left the current mart (deleted, or moved to another customer) changes the
    -- customer's figures too, and its row's loaded_at must reach theirs, or a copy reading by loaded_at
    -- (ClickHouse's) would never see them change
    select customer_id, max(loaded_at) as read_loaded_at
    from ({{ mart_rows_since('cdm.customer_monthly') }}) as written_since
    group by customer_id

),

{% endif -%}
sale_lines as (

    select *
    from {{ ref('sales_datamart') }}
    where is_current
    {%- if is_incremental() %}
        and customer_id in (select customer_id from changed_customers)
    {%- endif %}

),

months as (

    select
        customer_id,
        -- a line belongs to the month of its sale_date (the date of sold_at, UTC)
        date_trunc('month', sale_date)::date as month,
        count(distinct order_id) as orders,
        sum(quantity) as items,
        sum(total_cost) as revenue,
        min(sale_date) as first_purchase_in_month,
        max(sale_date) as last_purchase_date,
        max(loaded_at) as loaded_at
    from sale_lines
    group by customer_id, date_trunc('month', sale_date)

),

to_date as (

    select
        months.*,
        min(first_purchase_in_month) over customer_to_date as first_purchase_date,
        sum(orders) over customer_to_date as frequency,
        sum(revenue) over customer_to_date as monetary,
        -- every row of a customer computed again carries the newest loaded_at among its lines (and among the
        -- mart rows read for it, current or not)
        {% if is_incremental() -%}
        greatest(max(loaded_at) over (partition by customer_id), changed_customers.read_loaded_at)
            as computed_from_loaded_at
        {%- else -%}
        max(loaded_at) over (partition by customer_id) as computed_from_loaded_at
        {%- endif %}
    from months
    {% if is_incremental() -%}
    -- a join, not a lookup per row: a day that changes most customers (a backfill, the first days) would
    -- otherwise scan the changed customers once per month row, quadratic in them
    inner join changed_customers using (customer_id)
    {% endif -%}
    window customer_to_date as (
        partition by customer_id order by month rows between unbounded preceding and current row
    )

),

segmented as (

    select
        to_date.*,
        -- the rules, in this order (documented in _cdm__models.yml)
        case
            when first_purchase_date >= month then 'new'
            when frequency >= 5 and monetary >= 500 then 'champion'
            when frequency >= 3 then 'loyal'
            else 'returning'
        end as segment
    from to_date

),

final as (

    select
        month,
        customer_id,
        orders::bigint as orders,
        items::bigint as items,
        revenue::numeric(14, 2) as revenue,
        first_purchase_date,
        last_purchase_date,
        ((month + interval '1 month')::date - 1 - last_purchase_date)::integer as recency_days,
        frequency::bigint as frequency,
        monetary::numeric(14, 2) as monetary,
        segment,
        -- unique by construction (month and customer), the same on every rebuild; the suffix, derived from both,
        -- makes a code hard to guess from a neighbour's, not secret
        'TS' || to_char(month, 'YYYYMM') || '-' || customer_id::text || '-'
            || upper(left(md5(customer_id::text || '/' || to_char(month, 'YYYY-MM') || '/tshop-coupon'), 4))
            as coupon_code,
        case segment when 'new' then 10 when 'champion' then 15 when 'loyal' then 10 else 5 end
            as coupon_discount_pct,
        computed_from_loaded_at as loaded_at
    from segmented

)

select * from final
