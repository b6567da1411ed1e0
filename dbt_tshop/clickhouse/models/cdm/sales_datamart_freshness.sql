-- cdm.sales_datamart_freshness: one row saying how fresh the ClickHouse mart is, the `loaded_at` of the
-- latest PostgreSQL run whose rows it holds. The dashboard's "Data as of" tile reads it. A view over the
-- mart without FINAL: the greatest loaded_at is the same whether or not ReplacingMergeTree has merged the
-- replaced versions away, and it reads one column (a few milliseconds at full scale). maxOrNull: an empty
-- mart says nothing rather than 1970-01-01.

{{ config(materialized='view') }}

with

sales_datamart as (

    select loaded_at
    from {{ ref('sales_datamart') }}

),

final as (

    select maxOrNull(loaded_at) as loaded_at
    from sales_datamart

)

select * from final
