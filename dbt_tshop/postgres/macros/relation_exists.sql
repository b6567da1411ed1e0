{# Whether `relation` can be read: it exists in the database, or it is a unit test's given rows (a CTE).
   For state a model reads back from an earlier run (absent before the first run). #}
{% macro relation_exists(relation) %}
    {{ return(execute and (relation.is_cte or load_relation(relation) is not none)) }}
{% endmacro %}
