{# The flat mart's rows a model built from it (cdm.customer_monthly) has not read yet: those
   whose loaded_at (the start of the mart run that last wrote them) is past the model's watermark in
   sl.load_metadata, which is the greatest loaded_at it has read (see mart_reader_after_load). The mart's
   loaded_at index serves it, so a daily run reads the day's lines. A first build or --full-refresh reads all. #}
{% macro mart_rows_since(table_name) %}
    {%- set watermark = sl_recorded(table_name, 'max_updated_at') if is_incremental() else none -%}
    select *
    from {{ ref('sales_datamart') }}
    {%- if watermark is not none %}
    where loaded_at > '{{ watermark }}'::timestamp
    {%- endif %}
{% endmacro %}


{# Post-hook of a model built from the flat mart, in its own transaction: its indexes, first statistics and
   the SL record. The watermark is the greatest mart loaded_at the model holds: every row it wrote carries the
   loaded_at of the mart rows it was computed from, so the watermark never passes a mart row it did not read. #}
{% macro mart_reader_after_load(indexes) %}
    {%- set table_name = this.schema ~ '.' ~ this.identifier -%}
    {%- set before = sl_recorded(table_name, 'max_updated_at') -%}
    {%- for name, definition in indexes.items() %}
    create {{ 'unique ' if definition.unique }}index if not exists {{ this.identifier }}_{{ name }}_idx
        on {{ this }} ({{ definition.columns | join(', ') }});
    {%- endfor %}
    create index if not exists {{ this.identifier }}_loaded_at_idx on {{ this }} (loaded_at);
    {{ analyze_if_never_analyzed(this) }};
    {{ sl_advance_watermark(
        table_name,
        max_updated_at="select max(loaded_at) from " ~ this,
        rows_read="select count(*) from " ~ ref('sales_datamart')
            ~ (" where loaded_at > '" ~ before ~ "'::timestamp" if before is not none and not flags.FULL_REFRESH else ""),
        read_from_xid="null::bigint",
    ) }}
{% endmacro %}


{# Post-hook statement of a model built from the flat mart: deletes its rows for the `key` values (a
   customer_id) that the mart rows read this run name but that have no current mart line any more (a customer
   whose only line's new version waits in cdm.sales_rejected, or was moved to another customer). The model's own SQL
   only writes what exists, so without this such rows would stay. Nothing to do on a first build. #}
{% macro mart_reader_delete_gone(key) %}
    {%- set table_name = this.schema ~ '.' ~ this.identifier -%}
    {%- if sl_recorded(table_name, 'max_updated_at') is not none and not flags.FULL_REFRESH %}
    delete from {{ this }}
    where {{ key }} in (
        select written_since.{{ key }}
        from ({{ mart_rows_since(table_name) }}) as written_since
        where not exists (
            select 1
            from {{ ref('sales_datamart') }} as line
            where line.{{ key }} = written_since.{{ key }}
                and line.is_current
        )
    )
    {%- else %}
    select 'nothing can be gone on a first build'
    {%- endif %}
{% endmacro %}
