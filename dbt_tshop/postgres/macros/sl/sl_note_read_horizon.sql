{# Notes, before a load's first read of its source, the oldest transaction still running (the snapshot's
   xmin). Every row the read cannot see was written by that transaction or a later one, so it is where the
   next load starts reading; sl_advance_watermark records it in the same transaction as the load
   (`current_setting('tshop.read_from_xid')`). Rows the read did see and the next one reads again are the
   same versions: they change nothing. #}
{% macro sl_note_read_horizon() %}
    select set_config('tshop.read_from_xid', pg_snapshot_xmin(pg_current_snapshot())::text, false)
{% endmacro %}
