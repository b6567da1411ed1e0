{# ANALYZE `relation` only if PostgreSQL holds no statistics for it yet. The first build leaves tens of
   millions of rows that autovacuum would analyse only later, while the next run already plans against them;
   after that autovacuum keeps the statistics fresh, and re-sampling the whole mart on every daily run cost
   more than the day's load itself. #}
{% macro analyze_if_never_analyzed(relation) %}
    do $$
    begin
        if not exists (
            select 1
            from pg_stat_user_tables
            where relid = '{{ relation }}'::regclass
                and coalesce(last_analyze, last_autoanalyze) is not null
        ) then
            analyze {{ relation }};
        end if;
    end
    $$
{% endmacro %}
