{# ClickHouse's postgresql() table function on a PostgreSQL table of the warehouse. The server ClickHouse
   connects to is TSHOP_CLICKHOUSE_PG_DSN when ClickHouse reaches PostgreSQL by another address than dbt
   does (Docker Compose), else TSHOP_PG_DSN; the credentials come from the environment at run time and
   never from a file in git. A password with URL-escaped characters (%xx) is not decoded. #}
{% macro postgresql_table(schema_name, table_name) %}
    {%- set dsn = env_var('TSHOP_CLICKHOUSE_PG_DSN', env_var('TSHOP_PG_DSN', '')) -%}
    {%- if not dsn -%}
        {{ exceptions.raise_compiler_error("Set TSHOP_PG_DSN (postgresql://user:password@host:port/database): ClickHouse reads the mart from PostgreSQL.") }}
    {%- endif -%}
    {%- set rest = dsn.split('://', 1)[1] -%}
    {%- set credentials, location = rest.rsplit('@', 1) if '@' in rest else ('', rest) -%}
    {%- set address = location.split('/')[0] -%}
    {%- set database = location.split('/')[1].split('?')[0] -%}
    {%- set user = credentials.split(':', 1)[0] -%}
    {%- set password = (credentials ~ ':').split(':')[1] -%}
    postgresql('{{ address if ":" in address else address ~ ":5432" }}', '{{ database }}', '{{ table_name }}', '{{ user }}', '{{ password }}', '{{ schema_name }}')
{%- endmacro %}
