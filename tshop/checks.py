"""Data-quality gates the pipeline runs after it builds: each raises an error naming what is wrong, so the
run fails by name instead of leaving a warning in a log nobody reads."""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tshop import clients
from tshop.config import Settings
from tshop.dbt import DbtError, run_dbt

# A sale line whose customer or product has not arrived waits in cdm.sales_rejected and is retried by every
# run. A day's wait is normal (a dimension row uploaded the next morning); longer means a source lost it.
WAITING_SALES_LIMIT = "1 day"


class WaitingSalesError(RuntimeError):
    """Sale lines have waited in cdm.sales_rejected for longer than WAITING_SALES_LIMIT."""


def check_waiting_sales(config: Settings) -> None:
    """Raise WaitingSalesError when a line has waited in cdm.sales_rejected for more than a day (from the
    run that first set it aside to the last run that tried it); return quietly otherwise."""
    with clients.postgres(config, "transformer") as conn:
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


# -- freshness of RAW -------------------------------------------------------------------------------------
# The limits are the sources' own (dbt_tshop/postgres/models/raw/_raw__sources.yml: warn after 1 day, error after 3),
# measured on `loaded_at`, when the database last wrote a row: a late upload is fresh data, and a table no
# writer has touched for three days means a source has stopped sending.

# dbt's answer for a table with no rows: its newest row is "infinitely long ago" (0001-01-01)
_NO_ROWS = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


class RawFreshnessError(RuntimeError):
    """A RAW table's newest row is older than its source's `error_after`, or its freshness could not be
    measured; the message names each such table with its age."""


@dataclass(frozen=True)
class SourceFreshness:
    """One RAW table's freshness, as `dbt source freshness` measured it."""

    table: str  # raw.customer
    status: str  # dbt's pass, warn, error or runtime error; `empty` for a table with no rows
    max_loaded_at: dt.datetime | None  # when the newest row was written
    age: dt.timedelta | None
    warn_after: str | None  # "1 day"
    error_after: str | None  # "3 days"
    message: str | None = None  # dbt's error, for a runtime error

    @property
    def is_error(self) -> bool:
        return self.status in ("error", "runtime error")

    def __str__(self) -> str:
        if self.status == "empty":
            return f"{self.table}: no rows yet (nothing has been loaded into it, so nothing in it is late)"
        if self.status == "runtime error":
            return f"{self.table}: freshness could not be measured: {self.message}"
        newest = f"newest row written {_age(self.age)} ago ({self.max_loaded_at:%Y-%m-%d %H:%M} UTC)"
        if self.status == "error":
            return f"{self.table}: stale, {newest}; the limit is {self.error_after}"
        if self.status == "warn":
            return f"{self.table}: late, {newest}; warned after {self.warn_after}, fails after {self.error_after}"
        return f"{self.table}: fresh, {newest}"


def check_raw_freshness(config: Settings, run_id: str | None = None) -> list[SourceFreshness]:
    """Run `dbt source freshness` on the RAW sources of the PostgreSQL project; raise RawFreshnessError
    naming every table past its `error_after` (with its age) or whose freshness could not be measured;
    otherwise print each table's freshness, warnings included, and return them.

    A table with no rows at all passes with a warning (status `empty`): freshness is the age of what has
    arrived, and a table nothing has arrived in yet (a new install, a source not connected yet) has no age.
    dbt itself would call it infinitely stale. A missing source is found by the build and by
    check_waiting_sales (sale lines waiting for their customer or product).

    dbt writes into a temporary target folder of its own, so the check never touches the project's
    `target/` (the manifest Cosmos renders the DAG from) or another run's results. `run_id` is recorded
    with the results in sl.run_log (dbt's project hooks run, as for any dbt command).
    """
    with tempfile.TemporaryDirectory(prefix="tshop-freshness-") as folder:
        target = Path(folder)
        output = target / "sources.json"
        result = run_dbt(
            config,
            ["source", "freshness", "--select", "source:raw", "--target-path", folder, "--log-path", folder,
             "--output", str(output)],
            check=False,
            extra_env={"TSHOP_RUN_ID": run_id} if run_id else None,
        )  # fmt: skip
        if not output.exists():
            # dbt did not get as far as measuring (no connection, a broken project): its own words
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise DbtError(f"`dbt source freshness` measured nothing (exit {result.returncode}):\n{tail}")
        found = {
            source.table: source
            for source in map(_source_freshness, json.loads(output.read_text())["results"])
        }
        # dbt leaves a table it could not measure (a missing table, no privilege) out of sources.json: the
        # manifest says which it was asked for, and its output why
        for table in _raw_sources_with_freshness(target / "manifest.json"):
            if table not in found:
                found[table] = SourceFreshness(
                    table, "runtime error", None, None, None, None, _dbt_error(result.stdout, table)
                )
        found = [found[table] for table in sorted(found)]
    for source in found:
        print(("warning: " if source.status in ("warn", "empty") else "") + str(source), flush=True)
    failing = [source for source in found if source.is_error]
    if failing:
        advice = []
        if any(source.status == "error" for source in failing):
            advice.append(
                "A stale table's source has stopped sending rows: check the generator (the DAG's simulate_day) "
                "or the loader of the landing zone (`tshop ingest`); the first run after new rows arrive passes."
            )
        if any(source.status == "runtime error" for source in failing):
            advice.append(
                "A table that could not be measured needs what dbt's error names (RAW is datagen/raw.sql)."
            )
        raise RawFreshnessError(
            f"{len(failing)} RAW table(s) are stale or could not be checked: "
            + "; ".join(str(source) for source in failing)
            + ". "
            + " ".join(advice)
        )
    return found


def _source_freshness(entry: dict) -> SourceFreshness:
    # unique_id: source.<project>.<source>.<table>; the source `raw` is the schema raw
    table = ".".join(entry["unique_id"].split(".")[-2:])
    criteria = entry.get("criteria") or {}
    status = entry["status"]
    max_loaded_at = age = None
    if entry.get("max_loaded_at"):
        max_loaded_at = dt.datetime.fromisoformat(entry["max_loaded_at"]).astimezone(dt.UTC)
        age = dt.timedelta(seconds=entry["max_loaded_at_time_ago_in_s"])
        if max_loaded_at == _NO_ROWS:
            status, max_loaded_at, age = "empty", None, None
    return SourceFreshness(
        table=table,
        status=status,
        max_loaded_at=max_loaded_at,
        age=age,
        warn_after=_period(criteria.get("warn_after")),
        error_after=_period(criteria.get("error_after")),
        message=_first_line(entry.get("error") or entry.get("message")),
    )


def _raw_sources_with_freshness(manifest: Path) -> list[str]:
    def has_limit(freshness: dict | None) -> bool:
        return any(
            ((freshness or {}).get(limit) or {}).get("count") for limit in ("warn_after", "error_after")
        )

    sources = json.loads(manifest.read_text())["sources"].values()
    return [
        f"{source['source_name']}.{source['name']}"
        for source in sources
        if source["source_name"] == "raw" and has_limit(source.get("freshness"))
    ]


def _dbt_error(output: str, table: str) -> str:
    """dbt's words for a source it could not measure: the line after `... Error in source <table> (...)`."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines()
    name = table.split(".")[-1]
    for index, line in enumerate(lines):
        if re.search(rf"Error in source {re.escape(name)}\b", line) and index + 1 < len(lines):
            return lines[index + 1].strip()
    return "dbt gave no result for it (see its output in the task's log)"


def _period(limit: dict | None) -> str | None:
    if not limit or limit.get("count") is None:
        return None
    count, period = limit["count"], limit["period"]
    return f"{count} {period}{'' if count == 1 else 's'}"


def _age(age: dt.timedelta) -> str:
    """3 days 4 hours; 5 hours 12 minutes; 40 minutes."""
    minutes = int(age.total_seconds() // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60

    def plural(count: int, unit: str) -> str:
        return f"{count} {unit}{'' if count == 1 else 's'}"

    if days:
        return f"{plural(days, 'day')} {plural(hours, 'hour')}"
    if hours:
        return f"{plural(hours, 'hour')} {plural(minutes, 'minute')}"
    return plural(minutes, "minute")


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None
