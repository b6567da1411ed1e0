"""Data-quality gates the pipeline runs after it builds: each raises an error naming what is wrong, so the
run fails by name instead of leaving a warning in a log nobody reads."""

from __future__ import annotations

from tshop import clients
from tshop.config import Settings

# A sale line whose customer or product has not arrived waits in cdm.sales_rejected and is retried by every
# run. A day's wait is normal (a dimension row uploaded the next morning); longer means a source lost it.
WAITING_SALES_LIMIT = "1 day"


class WaitingSalesError(RuntimeError):
    """Sale lines have waited in cdm.sales_rejected for longer than WAITING_SALES_LIMIT."""


def check_waiting_sales(config: Settings) -> None:
    """Raise WaitingSalesError when a line has waited in cdm.sales_rejected for more than a day (from the
    run that first set it aside to the last run that tried it); return quietly otherwise."""
    with clients.postgres(config) as conn:
        if conn.execute("select to_regclass('cdm.sales_rejected') is null").fetchone()[0]:
            return
        waiting, oldest, missing_customer, missing_product = conn.execute(
            f"""select count(*), min(first_seen_at),
                       count(*) filter (where is_missing_customer),
                       count(*) filter (where is_missing_product)
                from cdm.sales_rejected
                where last_tried_at - first_seen_at > interval '{WAITING_SALES_LIMIT}'"""
        ).fetchone()
    if waiting:
        raise WaitingSalesError(
            f"{waiting} sale line(s) have waited in cdm.sales_rejected for more than {WAITING_SALES_LIMIT} "
            f"(the oldest since {oldest:%Y-%m-%d %H:%M} UTC; {missing_customer} missing their customer, "
            f"{missing_product} missing their product). Their customer or product never reached RAW: "
            "load it, and the next run builds them (select * from cdm.sales_rejected lists them)."
        )
