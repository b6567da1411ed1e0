-- The sale line versions this run (re)builds into cdm.sales_datamart, each with the customer and product
-- as they were at the moment of the sale. Candidates are every version of every sale line that has a DDS
-- version written since the mart's previous read (by loaded_xid, so a line that arrived late is built
-- too; all its versions, so the previous version of a corrected line is closed), every line waiting in
-- cdm.sales_rejected, and the lines a late customer or product version changes (see
-- late_dimension_sale_lines). Lines whose customer or product does not exist yet keep has_customer /
-- has_product false and stay in cdm.sales_rejected instead of entering the mart.

-- A new table each run: analysed at once, so the merge into the mart is planned on real row counts.
{{ config(materialized='table', post_hook=["analyze {{ this }}"]) }}

{#- named here, outside any `if`, so the queue shows in the lineage as what this model reads -#}
{%- set sales_rejected_queue = source('cdm', 'sales_rejected') %}

with

-- read twice below: left to PostgreSQL's default, a CTE read twice is materialised, all 22 million versions
-- of it, before the day's few are picked out by loaded_xid
sales as not materialized (

    select * from {{ ref('sales') }}

),

customer as (

    select * from {{ ref('customer') }}

),

product as (

    select * from {{ ref('product') }}

),

-- the queue as the previous run left it: every line there is tried again
waiting_sale_lines as (

    {% if relation_exists(sales_rejected_queue) and not flags.FULL_REFRESH -%}
    select sale_id from {{ sales_rejected_queue }}
    {%- else -%}
    select null::bigint as sale_id where false
    {%- endif %}

),

changed_sale_lines as (

    select sale_id
    from sales
    where loaded_xid >= {{ sl_read_from_xid('cdm.sales_datamart') }}

    union

    select sale_id from waiting_sale_lines

    union

    {{ late_dimension_sale_lines() }}

),

sale_line_versions as (

    select sales.*
    from sales
    inner join changed_sale_lines
        on sales.sale_id = changed_sale_lines.sale_id

),

point_in_time as (

    select
        sale_line_versions.*,
        customer_version.customer_id as found_customer_id,
        customer_version.dbt_scd_id as customer_version_id,
        customer_version.first_name,
        customer_version.last_name,
        customer_version.birth_date,
        product_version.product_id as found_product_id,
        product_version.dbt_scd_id as product_version_id,
        product_version.name as product_name,
        product_version.category as product_category,
        product_version.size as product_size,
        product_version.price as product_price
    from sale_line_versions
    -- The version valid at sold_at (valid_from <= sold_at < valid_to) is the latest that started by then;
    -- when the sale predates every version (the customer arrived late), the first version is used.
    left join lateral (
        select customer.*
        from customer
        where customer.customer_id = sale_line_versions.customer_id
        order by
            customer.valid_from <= sale_line_versions.sold_at desc,
            case when customer.valid_from <= sale_line_versions.sold_at then customer.valid_from end desc,
            customer.valid_from asc
        limit 1
    ) as customer_version on true
    left join lateral (
        select product.*
        from product
        where product.product_id = sale_line_versions.product_id
        order by
            product.valid_from <= sale_line_versions.sold_at desc,
            case when product.valid_from <= sale_line_versions.sold_at then product.valid_from end desc,
            product.valid_from asc
        limit 1
    ) as product_version on true

),

final as (

    select
        sale_id::bigint as sale_id,
        order_id::bigint as order_id,
        sold_at::date as sale_date,
        sold_at,
        customer_id::bigint as customer_id,
        (first_name || ' ' || last_name)::text as customer_name,
        {{ age_in_years('birth_date', 'sold_at::date') }} as customer_age,
        product_id::bigint as product_id,
        product_name::text as product_name,
        product_category::text as product_category,
        product_size::text as product_size,
        product_price::numeric(12, 2) as product_price,
        quantity::integer as quantity,
        (quantity * product_price)::numeric(14, 2) as total_cost,
        valid_from,
        valid_to,
        valid_to is null as is_current,
        -- the point-in-time lookup above, kept: cdm.fct_sales keys its lines to these versions
        {{ version_key('customer_version_id') }} as customer_key,
        {{ version_key('product_version_id') }} as product_key,
        found_customer_id is not null as has_customer,
        found_product_id is not null as has_product,
        '{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}'::timestamp as tried_at,
        -- the oldest transaction still running when this read began: where the mart's next read starts
        pg_snapshot_xmin(pg_current_snapshot())::text::bigint as next_read_from_xid
    from point_in_time

)

select * from final
