{# The events' parsing and validation (CONTRACT.md section 8), shared by the clickstream and review models.
   JSON parsing is what a load spends its time on (a bare JSONExtract of five fields reads about 4 million
   lines a second on these 2 cores, docs/benchmarks.md "Web events"), so each line is parsed once, by
   `json_document`, and the costlier checks run only on the lines that need them (ClickHouse evaluates
   if/multiIf branches lazily). #}

{# the document's contract fields in one parse, each as its JSON text value (numbers too: a field that is not
   an integer must be refused, not read as null or cut from 4.5 to 4); null when absent or null.
   A line that is not valid JSON gives nulls throughout. #}
{% macro json_document(line, names) -%}
    JSONExtract({{ line }}, 'Tuple({% for name in names %}{{ name }} Nullable(String){{ ", " if not loop.last }}{% endfor %})')
{%- endmacro %}

{# why a line is no document at all, or '' when it is a JSON object: only asked of a line whose id is missing
   (a line that is no JSON object has none), so valid lines never pay for the second parse #}
{% macro not_a_document(line) -%}
    multiIf(
        not startsWith(trimLeft({{ line }}), '{'), if(isValidJSON({{ line }}), 'not a JSON object', 'malformed JSON'),
        not isValidJSON({{ line }}), 'malformed JSON',
        ''
    )
{%- endmacro %}

{# a field's JSON text is an integer: a number or a string of digits #}
{% macro not_an_integer(value) -%}
    ({{ value }} is not null and not match({{ value }}, '^-?[0-9]+$'))
{%- endmacro %}

{# a time as the contract writes it (ISO 8601: `2024-03-05 10:00:00`, `T`, a fraction and a UTC offset
   allowed), else null: parseDateTime64BestEffort alone would read words such as "yesterday" as a time #}
{% macro iso_time(text) -%}
    if(
        -- the common form, read cheaply; anything else by the contract's pattern
        toDateTime64OrNull({{ text }}, 6, 'UTC') is not null and match({{ text }}, '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+$'),
        toDateTime64OrNull({{ text }}, 6, 'UTC'),
        if(
            match({{ text }}, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'),
            parseDateTime64BestEffortOrNull({{ text }}, 6, 'UTC'),
            NULL
        )
    )
{%- endmacro %}

{# the fields a document carries beyond the contract's `names`, as their JSON text. Finding them takes a
   second parse, so it is skipped when the line cannot hold another field: every key is followed by a colon,
   so a line with no more colons than its non-null contract fields and the colons inside their values has no
   other key (a line with a null field or a \u escape takes the exact road) #}
{% macro extra_fields(line, document, names) -%}
    if(
        position({{ line }}, '\\u') = 0
            and countSubstrings({{ line }}, ':') = {% for name in names %}if({{ document }}.{{ name }} is null, 0, 1 + countSubstrings(assumeNotNull({{ document }}.{{ name }}), ':')){{ " + " if not loop.last }}{% endfor %},
        map(),
        CAST(
            arrayFilter(field -> field.1 not in ({{ "'" ~ names | join("', '") ~ "'" }}), JSONExtractKeysAndValuesRaw({{ line }})),
            'Map(String, String)'
        )
    )
{%- endmacro %}
