{# Shared pieces of the events' validation (CONTRACT.md section 8). `document` is the line parsed once into its
   raw fields (a Map of field name to the field's JSON text; empty when the line is no JSON object). #}

{# the line's fields as JSON text by name: {} for a line that is not a JSON object #}
{% macro json_fields(line) -%}
    CAST(JSONExtractKeysAndValuesRaw({{ line }}), 'Map(String, String)')
{%- endmacro %}

{# a field that is present and not null but not an integer (a number or a string of digits): JSONExtract
   would read it as null, or cut 4.5 down to 4, so it is refused instead #}
{% macro not_an_integer(fields, name) -%}
    (mapContains({{ fields }}, '{{ name }}') and {{ fields }}['{{ name }}'] != 'null'
     and not match({{ fields }}['{{ name }}'], '^"?-?[0-9]+"?$'))
{%- endmacro %}

{# the fields a document carries beyond the contract's: kept as their JSON text #}
{% macro extra_fields(fields, known) -%}
    mapFilter((name, value) -> name not in ({{ "'" ~ known | join("', '") ~ "'" }}), {{ fields }})
{%- endmacro %}

{# a time as the contract writes it (ISO 8601: `2024-03-05 10:00:00`, `T`, a fraction and a UTC offset
   allowed), else null: parseDateTime64BestEffort alone would read words such as "yesterday" as a time #}
{% macro iso_time(text) -%}
    if(
        match({{ text }}, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'),
        parseDateTime64BestEffortOrNull({{ text }}, 6, 'UTC'),
        NULL
    )
{%- endmacro %}
