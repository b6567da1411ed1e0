-- events.review: every valid review once (CONTRACT.md section 8), by review_id: each run appends the valid
-- lines of its files whose review is not here yet (reviews are few: the lookup reads every review_id).
-- ReplacingMergeTree by review_id, should two loads ever run at once.
-- full_refresh=false: the table is the only copy of what was loaded, and a full refresh would rebuild it
-- from this run's files alone (a --full-refresh of the project leaves it as it is).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        engine='ReplacingMergeTree',
        order_by='review_id',
    )
}}

with

landed as (

    select * from {{ ref('review_landed') }} where reason = ''

),

new_reviews as (

    select
        review_id,
        order_id,
        customer_id,
        product_id,
        rating,
        title,
        body,
        created_at,
        extra,
        file_path,
        checksum,
        line_number
    from landed
    {% if is_incremental() %}
    where review_id not in (select review_id from {{ this }})
    {% endif %}
    order by file_path, line_number
    limit 1 by review_id

),

final as (

    select
        *,
        now64(6, 'UTC') as loaded_at,
        '{{ var("run_id") }}' as run_id
    from new_reviews

)

select * from final
