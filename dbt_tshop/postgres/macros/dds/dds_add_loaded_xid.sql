{# Gives a DDS snapshot the column `loaded_xid`: the transaction that inserted each version, which the mart
   reads its increment by (a version that arrives late has an old valid_from but a new loaded_xid). The
   versions of the first build get 0 (a constant default: no rewrite of the new table), and every later
   insert the id of its own transaction. dbt's snapshot names the columns it inserts, so it leaves this one
   to its default. #}
{% macro dds_add_loaded_xid() %}
    alter table {{ this }} add column if not exists loaded_xid xid8 not null default '0'::xid8;
    alter table {{ this }} alter column loaded_xid set default pg_current_xact_id()
{% endmacro %}
