{{ config(materialized='incremental', incremental_strategy='append', engine='ReplacingMergeTree(value)', order_by='id') }}
select id, day, value from {{ ref('source_view') }}
