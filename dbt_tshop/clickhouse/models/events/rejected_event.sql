-- events.rejected_event: every line of an event file that is not a valid document, with the reason
-- (CONTRACT.md section 8), once per line of a version of a file: a run that loads the same files again after
-- dying before it recorded them adds nothing.

-- depends_on: {{ ref('landed_file') }}
-- full_refresh=false: the table is the only copy of what was loaded, and a full refresh would rebuild it
-- from this run's files alone (a --full-refresh of the project leaves it as it is).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        engine='ReplacingMergeTree',
        order_by='(file_path, checksum, line_number)',
    )
}}

with

rejected as (

    select 'clickstream' as table_name, file_path, checksum, line_number, document_text as document, reason
    from {{ ref('clickstream_landed') }}
    where reason != ''

    union all

    select 'review' as table_name, file_path, checksum, line_number, document_text as document, reason
    from {{ ref('review_landed') }}
    where reason != ''

),

final as (

    select
        toLowCardinality(table_name) as table_name,
        file_path,
        checksum,
        line_number,
        document,
        reason,
        now64(6, 'UTC') as rejected_at,
        '{{ var("run_id") }}' as run_id
    from rejected
    {% if is_incremental() %}
    where (file_path, checksum, line_number) not in (
        select file_path, checksum, line_number
        from {{ this }}
        where file_path in (select file_path from {{ ref('landed_file') }})
    )
    {% endif %}

)

select * from final
