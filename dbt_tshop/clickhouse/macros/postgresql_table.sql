{# ClickHouse's postgresql() table function on a PostgreSQL table of the warehouse, logged in as `role`:
   `reader` (CDM only: the marts ClickHouse copies) or `transformer` (the ClickHouse watermark in
   sl.load_metadata). The server is TSHOP_CLICKHOUSE_PG_HOST:PORT (how ClickHouse reaches PostgreSQL, which
   under Docker Compose is not how dbt does), the database TSHOP_PG_DATABASE; the parts and logins come from
   the environment at run time (`tshop env`, tshop/config.py `connection_env`), never from a file in git. #}
{% macro postgresql_table(schema_name, table_name, role='reader') %}
    {%- set prefix = 'TSHOP_PG_' ~ role | upper -%}
    {%- set user = env_var(prefix ~ '_USER', '') -%}
    {%- if not user -%}
        {{ exceptions.raise_compiler_error("Set " ~ prefix ~ "_USER and the other parts `tshop env` prints: ClickHouse reads the mart from PostgreSQL.") }}
    {%- endif -%}
    {%- set address = env_var('TSHOP_CLICKHOUSE_PG_HOST', env_var('TSHOP_PG_HOST', '127.0.0.1')) ~ ':' ~ env_var('TSHOP_CLICKHOUSE_PG_PORT', env_var('TSHOP_PG_PORT', '5432')) -%}
    postgresql('{{ address }}', '{{ env_var("TSHOP_PG_DATABASE", "tshop") }}', '{{ table_name }}', '{{ user }}', '{{ env_var(prefix ~ "_PASSWORD", "") | replace("\\", "\\\\") | replace("\'", "\\\'") }}', '{{ schema_name }}')
{%- endmacro %}
