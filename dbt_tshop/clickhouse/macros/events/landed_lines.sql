{# The lines of this run's files of one events table (events.landed_file), with the file's path, checksum and
   1-based line number. The reader lists the whole folder but reads only the files named here (ClickHouse
   skips a file whose `_path` the filter excludes): a file not registered, or already loaded, is never read.
   With no file to load it reads nothing at all, so a landing zone without the folder is no error. #}
{% macro landed_lines(table_name, folder) %}
    {%- set files = 0 -%}
    {%- if execute -%}
        {%- set found = run_query("select count() from " ~ ref('landed_file') ~ " where table_name = '" ~ table_name ~ "'") -%}
        {%- set files = found.columns[0].values()[0] -%}
    {%- endif -%}
    {%- if files > 0 -%}
        select
            -- dbt-clickhouse joins with join_use_nulls: these are never null in an inner join
            assumeNotNull(landed_file.file_path) as file_path,
            assumeNotNull(landed_file.checksum) as checksum,
            toUInt64(assumeNotNull(lines._row_number) + 1) as line_number,
            assumeNotNull(lines.line) as line
        from {{ landing_table_function(folder) }} as lines
        inner join {{ ref('landed_file') }} as landed_file on lines._path = landed_file.source_path
        where lines._path in (select source_path from {{ ref('landed_file') }} where table_name = '{{ table_name }}')
    {%- else -%}
        select '' as file_path, '' as checksum, toUInt64(0) as line_number, '' as line where 0
    {%- endif -%}
{%- endmacro %}
