{{ config(materialized='view') }}
select id, day, value from {{ ref('source_rows') }}
