-- cdm.sales_rejected: the sale lines that cannot be built yet because their customer or product does
-- not exist in DDS, one row per line. Every run retries them (sales_datamart_increment reads this table);
-- a line that can be built leaves it (post-hook) as it enters the mart. first_seen_at is kept.

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='sale_id',
        merge_update_columns=['reason', 'last_tried_at'],
        post_hook=[
            "delete from {{ this }} where sale_id in (select sale_id from {{ ref('sales_datamart_increment') }}) and sale_id not in (select sale_id from {{ ref('sales_datamart_increment') }} where not (has_customer and has_product))",
        ],
    )
}}

with

sales_datamart_increment as (

    select * from {{ ref('sales_datamart_increment') }}

),

unbuildable_versions as (

    select
        sale_id,
        valid_from,
        concat_ws(
            ' and ',
            case when not has_customer then 'customer ' || customer_id || ' not in dds.customer' end,
            case when not has_product then 'product ' || product_id || ' not in dds.product' end
        ) as reason,
        tried_at
    from sales_datamart_increment
    where not (has_customer and has_product)

),

final as (

    -- the reason of the line's latest waiting version
    select distinct on (sale_id)
        sale_id,
        reason,
        tried_at as first_seen_at,
        tried_at as last_tried_at
    from unbuildable_versions
    order by sale_id, valid_from desc

)

select * from final
