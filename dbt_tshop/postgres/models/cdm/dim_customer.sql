-- cdm.dim_customer: the star schema's customer dimension, one row per DDS version of a customer (names and
-- birth date), keyed by customer_key. cdm.fct_sales points each line at the version valid at its sold_at.

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='customer_key',
        on_schema_change='fail',
        pre_hook="{{ sl_note_read_horizon() }}",
        post_hook="{{ scd2_dimension_after_load('customer_key', 'customer_id') }}",
    )
}}

{{ scd2_dimension(ref('customer'), 'customer_id', 'customer_key', ['first_name', 'last_name', 'birth_date']) }}
