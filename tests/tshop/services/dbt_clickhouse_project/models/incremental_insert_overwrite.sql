{{ config(materialized='incremental', incremental_strategy='insert_overwrite', partition_by='toYYYYMM(day)', engine='MergeTree()', order_by='id') }}
-- insert_overwrite replaces whole partitions: select every row of the partitions the batch touches
select id, day, value from {{ ref('source_view') }}
