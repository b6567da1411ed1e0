{# ClickHouse's own reader over an events folder of the landing zone (TSHOP_LANDING_URL, CONTRACT.md section 7):
   file() for a file:// landing zone, s3() for an s3:// one (endpoint and credentials from the standard AWS_*
   variables, as the rest of T-Shop reads them). Each line is one row (`LineAsString`: a malformed line is a
   row to reject, not an error that stops the file); `_path` names the file as events.pending_file's
   `source_path` does. The credentials come from the environment at run time, never from a file in git. #}
{% macro landing_table_function(folder) %}
    {%- set url = env_var('TSHOP_LANDING_URL', '').rstrip('/') -%}
    {%- if url.startswith('file://') -%}
        file('{{ (url[7:] ~ "/incoming/" ~ folder ~ "/**") | replace("'", "\\'") }}', 'LineAsString')
    {%- elif url.startswith('s3://') or url.startswith('s3a://') -%}
        {%- set location = url.split('://', 1)[1] -%}
        {%- set endpoint = env_var('AWS_ENDPOINT_URL', '') or ('https://s3.' ~ env_var('AWS_REGION', 'us-east-1') ~ '.amazonaws.com') -%}
        s3('{{ endpoint.rstrip("/") }}/{{ location }}/incoming/{{ folder }}/**', '{{ env_var("AWS_ACCESS_KEY_ID", "") }}', '{{ env_var("AWS_SECRET_ACCESS_KEY", "") }}', 'LineAsString')
    {%- else -%}
        {{ exceptions.raise_compiler_error("Set TSHOP_LANDING_URL to a file:// or s3:// URL (got '" ~ url ~ "'): the events models read the landing zone.") }}
    {%- endif -%}
{%- endmacro %}
