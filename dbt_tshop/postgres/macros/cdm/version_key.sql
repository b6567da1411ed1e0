{# The surrogate key of a DDS version (cdm.dim_customer.customer_key, cdm.dim_product.product_key, and the
   keys the mart and cdm.fct_sales carry): the first 64 bits of dbt's version hash (dbt_scd_id, an md5 of the
   natural key and updated_at) as a bigint. Computed from the version itself, so it is the same on every
   rebuild, in every engine that copies it, and in every model that names the same version. 64 bits make a
   collision among millions of versions about as likely as a cosmic-ray bit flip; the dimensions' unique
   tests would catch one. #}
{% macro version_key(scd_id) -%}
    ('x' || left({{ scd_id }}, 16))::bit(64)::bigint
{%- endmacro %}
