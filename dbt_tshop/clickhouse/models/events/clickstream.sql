-- events.clickstream: every valid clickstream event once (CONTRACT.md section 8). Each run appends the valid
-- lines of its files whose event is not here yet: an event repeated in a file, in a file delivered twice, or
-- loaded again after a run died before recording its files counts once. The lookup reads only the days the
-- new events fall on (the sort key starts with event_date). ReplacingMergeTree by the same key, should two
-- loads ever run at once.
-- full_refresh=false: the table is the only copy of what was loaded, and a full refresh would rebuild it
-- from this run's files alone (a --full-refresh of the project leaves it as it is).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        engine='ReplacingMergeTree',
        order_by='(event_date, event_id)',
        partition_by='toYYYYMM(event_date)',
    )
}}

with

landed as (

    select * from {{ ref('clickstream_landed') }} where reason = ''

),

new_events as (

    select
        event_id,
        event_type,
        occurred_at,
        event_date,
        session_id,
        customer_id,
        product_id,
        order_id,
        extra,
        file_path,
        checksum,
        line_number
    from landed
    {% if is_incremental() %}
    where (event_date, event_id) not in (
        select event_date, event_id
        from {{ this }}
        where event_date in (select distinct event_date from landed)
    )
    {% endif %}
    -- the first delivery of an event is the one kept (in one load: the first file in path order)
    order by file_path, line_number
    limit 1 by event_id

),

final as (

    select
        *,
        now64(6, 'UTC') as loaded_at,
        '{{ var("run_id") }}' as run_id
    from new_events

)

select * from final
