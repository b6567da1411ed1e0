-- events.clickstream_landed: every line of this run's clickstream files, parsed once, with the reason it is
-- refused ('' when it is a valid event, CONTRACT.md section 8). events.clickstream takes the valid ones,
-- events.rejected_event the rest; tshop.ingest.events.record counts both per file. Rebuilt by every run.

-- depends_on: {{ ref('landed_file') }}

{{ config(materialized='table', engine='MergeTree', order_by='(file_path, line_number)') }}

{%- set known = ['event_id', 'event_type', 'occurred_at', 'session_id', 'customer_id', 'product_id', 'order_id'] %}

with

lines as (

    {{ landed_lines('clickstream', 'clickstream') }}

),

parsed as (

    select
        file_path,
        checksum,
        line_number,
        line,
        {{ json_document('line', known) }} as document,
        {{ iso_time('document.occurred_at') }} as parsed_occurred_at
    from lines
    -- a blank line (a trailing newline, an empty line between documents) is no document
    where trim(line) != ''

),

final as (

    select
        toLowCardinality(file_path) as file_path,
        toLowCardinality(checksum) as checksum,
        line_number,
        multiIf(
            coalesce(document.event_id, '') = '', if({{ not_a_document('line') }} = '', 'missing event_id', {{ not_a_document('line') }}),
            not startsWith(trimLeft(line), '{'), 'not a JSON object',
            coalesce(document.event_type, '') = '', 'missing event_type',
            document.event_type not in ('session_start', 'product_view', 'add_to_cart', 'checkout'),
                'unknown event_type ' || document.event_type,
            document.occurred_at is null, 'missing occurred_at',
            parsed_occurred_at is null, 'occurred_at is not a time: ' || document.occurred_at,
            coalesce(document.session_id, '') = '', 'missing session_id',
            {{ not_an_integer('document.customer_id') }}, 'customer_id is not an integer',
            {{ not_an_integer('document.product_id') }}, 'product_id is not an integer',
            {{ not_an_integer('document.order_id') }}, 'order_id is not an integer',
            document.event_type in ('product_view', 'add_to_cart') and document.product_id is null,
                document.event_type || ' without product_id',
            document.event_type = 'checkout' and document.order_id is null, 'checkout without order_id',
            document.event_type = 'checkout' and document.customer_id is null, 'checkout without customer_id',
            ''
        ) as reason,
        if(reason = '', '', line) as document_text,
        assumeNotNull(document.event_id) as event_id,
        toLowCardinality(assumeNotNull(document.event_type)) as event_type,
        assumeNotNull(parsed_occurred_at) as occurred_at,
        toDate(assumeNotNull(parsed_occurred_at)) as event_date,
        assumeNotNull(document.session_id) as session_id,
        toInt64OrNull(document.customer_id) as customer_id,
        toInt64OrNull(document.product_id) as product_id,
        toInt64OrNull(document.order_id) as order_id,
        if(reason = '', {{ extra_fields('line', 'document', known) }}, map()) as extra
    from parsed

)

select * from final
