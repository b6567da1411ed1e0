{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='day', batch_size='day',
          begin='2024-01-01', unique_key='id', engine='MergeTree()', order_by='id', partition_by='toYYYYMMDD(day)') }}
select id, day, value from {{ ref('source_view') }}
