-- cdm.dim_product: the star schema's product dimension, one row per DDS version of a product (one model in
-- one size: name, category, size, price), keyed by product_key. cdm.fct_sales points each line at the version
-- valid at its sold_at.

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='product_key',
        on_schema_change='fail',
        pre_hook="{{ sl_note_read_horizon() }}",
        post_hook="{{ scd2_dimension_after_load('product_key', 'product_id') }}",
    )
}}

{{ scd2_dimension(ref('product'), 'product_id', 'product_key', ['name', 'category', 'size', 'price']) }}
