-- The rows of the current batch: ids batch*50 .. batch*50+99, with a value that depends on the batch,
-- so the second build both adds new ids and changes existing ones.
{{ config(materialized='table', engine='MergeTree()', order_by='id') }}
select
    toInt64(number + {{ var('batch') }} * 50) as id,
    toDateTime('2024-01-01 00:00:00', 'UTC') + toIntervalDay(intDiv(number + {{ var('batch') }} * 50, 40)) as day,
    toInt64({{ var('batch') }} * 1000 + number) as value
from numbers(100)
