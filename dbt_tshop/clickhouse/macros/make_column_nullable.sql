{# Pre-hook of an incremental model whose column became Nullable after installs had already built it: an
   append would otherwise insert the new nulls as the old type's default (0 for a number) without a word.
   One ALTER on the first run after the upgrade (a mutation that rewrites that column only); nothing when the
   table does not exist yet or the column is Nullable already. #}
{% macro make_column_nullable(relation, column, type) %}
    {%- set existing = adapter.get_relation(relation.database, relation.schema, relation.identifier) if execute else none -%}
    {%- set types = {} -%}
    {%- if existing is not none -%}
        {%- for found in adapter.get_columns_in_relation(existing) if found.name == column -%}
            {%- do types.update({column: found.data_type}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if types.get(column) == type -%}
        alter table {{ relation }} modify column {{ column }} Nullable({{ type }}) settings mutations_sync = 2
    {%- endif -%}
{% endmacro %}
