-- cdm.sales_rejected: the queue of sale lines that cannot be built yet because their customer or product
-- does not exist in DDS, one row per line, rebuilt by every run from that run's increment. The increment
-- reads every line the queue held (source cdm.sales_rejected, the queue as the previous run left it), so
-- the rule is one line of SQL below: a line stays while the latest version this run tried cannot be
-- built, and leaves when it could (it entered the mart in the same run). first_seen_at is carried over.
-- Built after the mart: if the mart's load fails, this is skipped and the old queue stays for the re-run.
-- depends_on: {{ ref('sales_datamart') }}

{{ config(materialized='table') }}

{%- set previous_queue = source('cdm', 'sales_rejected') %}

with

sales_datamart_increment as (

    select * from {{ ref('sales_datamart_increment') }}

),

previous_queue as (

    {% if relation_exists(previous_queue) and not flags.FULL_REFRESH -%}
    select sale_id, first_seen_at from {{ previous_queue }}
    {%- else -%}
    select null::bigint as sale_id, null::timestamp as first_seen_at where false
    {%- endif %}

),

latest_tried_versions as (

    select distinct on (sale_id) *
    from sales_datamart_increment
    order by sale_id, valid_from desc

),

still_waiting as (

    select *
    from latest_tried_versions
    where not (has_customer and has_product)

),

final as (

    select
        still_waiting.sale_id,
        concat_ws(
            ' and ',
            case when not still_waiting.has_customer then 'customer ' || still_waiting.customer_id || ' not in dds.customer' end,
            case when not still_waiting.has_product then 'product ' || still_waiting.product_id || ' not in dds.product' end
        ) as reason,
        not still_waiting.has_customer as is_missing_customer,
        not still_waiting.has_product as is_missing_product,
        coalesce(previous_queue.first_seen_at, still_waiting.tried_at) as first_seen_at,
        still_waiting.tried_at as last_tried_at
    from still_waiting
    left join previous_queue
        on still_waiting.sale_id = previous_queue.sale_id

)

select * from final
