-- events.review_landed: every line of this run's review files, parsed once, with the reason it is refused
-- ('' when it is a valid review, CONTRACT.md section 8). events.review takes the valid ones,
-- events.rejected_event the rest. Rebuilt by every run.

-- depends_on: {{ ref('landed_file') }}

{{ config(materialized='table', engine='MergeTree', order_by='(file_path, line_number)') }}

{%- set known = ['review_id', 'order_id', 'customer_id', 'product_id', 'rating', 'title', 'body', 'created_at'] %}

with

lines as (

    {{ landed_lines('review', 'reviews') }}

),

parsed as (

    select
        file_path,
        checksum,
        line_number,
        line,
        {{ json_document('line', known) }} as document,
        {{ iso_time('document.created_at') }} as parsed_created_at
    from lines
    where trim(line) != ''

),

final as (

    select
        toLowCardinality(file_path) as file_path,
        toLowCardinality(checksum) as checksum,
        line_number,
        multiIf(
            coalesce(document.review_id, '') = '', if({{ not_a_document('line') }} = '', 'missing review_id', {{ not_a_document('line') }}),
            not startsWith(trimLeft(line), '{'), 'not a JSON object',
            document.created_at is null, 'missing created_at',
            parsed_created_at is null, 'created_at is not a time: ' || document.created_at,
            document.rating is null, 'missing rating',
            {{ not_an_integer('document.rating') }}, 'rating is not an integer: ' || document.rating,
            toInt64OrZero(document.rating) not between 1 and 5, 'rating outside 1-5: ' || document.rating,
            document.product_id is null, 'missing product_id',
            {{ not_an_integer('document.product_id') }}, 'product_id is not an integer',
            {{ not_an_integer('document.order_id') }}, 'order_id is not an integer',
            {{ not_an_integer('document.customer_id') }}, 'customer_id is not an integer',
            ''
        ) as reason,
        if(reason = '', '', line) as document_text,
        assumeNotNull(document.review_id) as review_id,
        toInt64OrNull(document.order_id) as order_id,
        toInt64OrNull(document.customer_id) as customer_id,
        toInt64OrZero(document.product_id) as product_id,
        toUInt8(if(reason = '', toInt64OrZero(document.rating), 0)) as rating,
        coalesce(document.title, '') as title,
        coalesce(document.body, '') as body,
        assumeNotNull(parsed_created_at) as created_at,
        if(reason = '', {{ extra_fields('line', 'document', known) }}, map()) as extra
    from parsed

)

select * from final
