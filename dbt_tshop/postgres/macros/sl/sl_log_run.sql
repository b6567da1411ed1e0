{# on-run-end: one sl.run_log row per node of this invocation (run id, node, status, rows, times; for a
   DDS snapshot, the stale changes its load found, from sl.stale_change). #}
{% macro sl_log_run(results) %}
    {%- if execute and results -%}
        {%- set rows = [] -%}
        {%- for result in results -%}
            {%- set timing = result.timing | selectattr('name', 'equalto', 'execute') | list -%}
            {%- set started_at = "'" ~ timing[0].started_at ~ "+00'" if timing and timing[0].started_at else 'null' -%}
            {%- set completed_at = "'" ~ timing[0].completed_at ~ "+00'" if timing and timing[0].completed_at else 'null' -%}
            {%- set rows_affected = result.adapter_response.get('rows_affected') if result.adapter_response else none -%}
            {%- set message = (result.message or '') | string | replace("'", "''") -%}
            {%- do rows.append(
                "('" ~ var('run_id') ~ "', '" ~ invocation_id ~ "', '" ~ result.node.unique_id ~ "', '"
                ~ result.node.resource_type ~ "', '" ~ result.status ~ "', "
                ~ (rows_affected if rows_affected is not none and rows_affected >= 0 else 'null') ~ ", "
                ~ (result.execution_time or 0) ~ ", " ~ started_at ~ ", " ~ completed_at ~ ", '" ~ message[:2000] ~ "')"
            ) -%}
        {%- endfor -%}
        insert into sl.run_log
            (run_id, invocation_id, node_id, resource_type, status, rows_affected,
             execution_seconds, started_at, completed_at, message, stale_changes)
        select
            logged.run_id,
            logged.invocation_id,
            logged.node_id,
            logged.resource_type,
            logged.status,
            logged.rows_affected::bigint,
            logged.execution_seconds::double precision,
            logged.started_at::timestamptz,
            logged.completed_at::timestamptz,
            logged.message,
            case when logged.resource_type = 'snapshot' then (
                select count(*)
                from sl.stale_change
                where stale_change.run_id = logged.run_id
                    and stale_change.table_name = 'dds.' || split_part(logged.node_id, '.', 3)
            ) end
        from (
            values
            {{ rows | join(',\n            ') }}
        ) as logged (run_id, invocation_id, node_id, resource_type, status, rows_affected,
                     execution_seconds, started_at, completed_at, message)
        on conflict (invocation_id, node_id) do nothing
    {%- endif -%}
{% endmacro %}
