-- cdm.product_rating: the reviews of each product and their average rating (CONTRACT.md section 8), with the
-- product's current category. Rebuilt by every run: one row per reviewed product is small.

{{ config(materialized='table', engine='MergeTree', order_by='product_id') }}

with

reviews as (

    select product_id, rating from {{ ref('review') }} final

),

categories as (

    select product_id, argMax(category, valid_from) as product_category
    from {{ ref('dim_product') }} final
    group by product_id

),

final as (

    select
        assumeNotNull(reviews.product_id) as product_id,
        -- a review of a product the warehouse does not know (yet)
        -- (dbt-clickhouse joins with join_use_nulls: no match is null)
        if(coalesce(categories.product_category, '') = '', 'unknown', assumeNotNull(categories.product_category))
            as product_category,
        count() as reviews,
        avg(reviews.rating) as average_rating
    from reviews
    left join categories on categories.product_id = reviews.product_id
    group by reviews.product_id, product_category

)

select * from final
