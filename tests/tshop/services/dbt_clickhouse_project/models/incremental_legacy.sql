{{ config(materialized='incremental', unique_key='id', incremental_strategy='legacy', engine='MergeTree()', order_by='id') }}
select id, day, value from {{ ref('source_view') }}
