"""Alerts for failed pipeline runs: one record per failed run in the warehouse, and a webhook message.

`notify_failed_run` always records the run, once per run id, in `sl.alert_log` (created here when missing),
or, when PostgreSQL cannot be reached, in `<state dir>/alerts/alert_log.jsonl`; and when TSHOP_ALERT_WEBHOOK
is set it POSTs a Slack-compatible message (`{"text": ..., "blocks": [...]}`) there. Notifying the same run
twice (the DAG's failure callback, then `tshop pipeline`) posts once: a second call posts again only when
the first did not get through. A notifier never fails the run a second time: whatever goes wrong is logged
and recorded (`webhook_status`), never raised.

The message names the DAG, the logical date, the failed tasks, the run's page in the Airflow UI and the
command that re-runs it. It never carries a secret: the webhook's own URL (its token), passwords and the
credentials of URLs are masked in every text it holds, a log tail included.

`on_dag_run_failure` is the DAG's `on_failure_callback`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import tenacity

from tshop.config import ConfigError, Settings, read_env_file, settings

log = logging.getLogger(__name__)

ALERT_TABLE = "sl.alert_log"
# A webhook gets 3 tries, 5 s each, 0.5 s then 1 s apart: a notifier gives up within ~17 s, so a callback
# never holds Airflow's DAG processor (or `tshop pipeline`) for long.
WEBHOOK_TIMEOUT = httpx.Timeout(5.0)
WEBHOOK_ATTEMPTS = 3
# what the message shows of a log: Slack cuts a block's text at 3000 characters
LOG_TAIL_LINES = 20
LOG_TAIL_CHARS = 1500
# PostgreSQL may be what failed: the notifier waits this long before it falls back to the file
CONNECT_TIMEOUT = 5

# webhook_status, in sl.alert_log and the file
NOT_CONFIGURED = "not configured"
SENT = "sent"
FAILED = "failed"

ALERT_LOG_DDL = """
do $$ begin if to_regnamespace('sl') is null then create schema sl; end if; end $$;
create table if not exists sl.alert_log (
    run_id text primary key,
    dag_id text not null,
    logical_date timestamptz,
    failed_tasks text[] not null,
    message text not null,
    webhook_status text not null,   -- 'not configured', 'sent' or 'failed'
    sent_to_webhook boolean not null default false,
    webhook_error text,             -- why the last post failed (masked), null otherwise
    webhook_attempts integer not null default 0,
    created_at timestamptz not null default clock_timestamp(),
    notified_at timestamptz         -- when the webhook last answered or gave up
);
comment on table sl.alert_log is
    'One row per failed pipeline run that was notified (tshop/alerts.py); the webhook''s outcome.';
"""


@dataclass(frozen=True)
class AlertRecord:
    """What became of a failed run's alert: where it is recorded and whether the webhook got it."""

    run_id: str
    dag_id: str
    logical_date: str | None
    failed_tasks: list[str]
    message: str
    webhook_status: str
    webhook_error: str | None = None
    webhook_attempts: int = 0
    recorded_in: str | None = None  # sl.alert_log, the fallback file's path, or None when neither worked
    repeated: bool = False  # the run had been notified before: this call posted nothing new

    @property
    def sent_to_webhook(self) -> bool:
        return self.webhook_status == SENT


def alert_log_file(config: Settings) -> Path:
    """Where alerts are recorded while PostgreSQL cannot be reached."""
    return config.state_dir / "alerts" / "alert_log.jsonl"


def airflow_run_url(config: Settings, dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI started by `make demo`."""
    return (
        f"http://127.0.0.1:{config.airflow_port}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe=':')}"
    )


def default_rerun_command(config: Settings, dag_id: str, logical_date: dt.datetime | None) -> str:
    """How a person re-runs the run: `tshop pipeline` for the business day of the `tshop` DAG's run (the day
    before its logical date), the Airflow UI's Clear for any other DAG."""
    if dag_id == "tshop" and logical_date is not None:
        day = logical_date.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        return f"tshop pipeline --date {day}" + (" --generate" if _generates(config) else "")
    return "Clear the failed tasks on the run's page in the Airflow UI"


def notify_failed_run(
    config: Settings,
    *,
    dag_id: str,
    run_id: str,
    logical_date: dt.datetime | str | None,
    failed_tasks: list[str],
    log_tail: str | None = None,
    log_path: str | None = None,
    rerun_command: str | None = None,
) -> AlertRecord:
    """Record a failed run once (sl.alert_log, else the alert log file) and post its message to
    TSHOP_ALERT_WEBHOOK when set. Never raises: a failure of the notifier is logged and recorded."""
    try:
        moment = _as_datetime(logical_date)
        secrets = _secrets(config)
        message = _mask(
            build_message(
                config,
                dag_id=dag_id,
                run_id=run_id,
                logical_date=moment,
                failed_tasks=failed_tasks,
                log_tail=log_tail,
                log_path=log_path,
                rerun_command=rerun_command or default_rerun_command(config, dag_id, moment),
            ),
            secrets,
        )
        record = AlertRecord(
            run_id=run_id,
            dag_id=dag_id,
            logical_date=moment.isoformat() if moment else None,
            failed_tasks=list(failed_tasks),
            message=message,
            webhook_status=NOT_CONFIGURED,
        )
        webhook = _Webhook.of(config, secrets)
        try:
            result = _notify_in_warehouse(config, record, webhook)
        except psycopg.Error as error:
            log.warning(
                "PostgreSQL is not reachable for %s (%s); recording the alert in %s",
                ALERT_TABLE,
                _first_line(_mask(str(error), secrets)),
                alert_log_file(config),
            )
            result = _notify_in_file(config, record, webhook)
        log.info(
            "alert for run %s of %s: recorded in %s, webhook %s",
            run_id,
            dag_id,
            result.recorded_in,
            result.webhook_status,
        )
        return result
    except Exception as error:  # the notifier must never be a second failure
        log.exception("the alert for run %s of %s could not be recorded", run_id, dag_id)
        return AlertRecord(
            run_id=run_id,
            dag_id=dag_id,
            logical_date=str(logical_date) if logical_date else None,
            failed_tasks=list(failed_tasks),
            message="",
            webhook_status=FAILED,
            webhook_error=f"{type(error).__name__}",
        )


def build_message(
    config: Settings,
    *,
    dag_id: str,
    run_id: str,
    logical_date: dt.datetime | None,
    failed_tasks: list[str],
    log_tail: str | None,
    log_path: str | None,
    rerun_command: str,
) -> str:
    """The alert's text (Slack mrkdwn, readable as plain text)."""
    when = logical_date.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if logical_date else "(none)"
    lines = [
        f":red_circle: *T-Shop run failed*: DAG `{dag_id}`, logical date {when}",
        f"Failed tasks ({len(failed_tasks)}): {', '.join(f'`{task}`' for task in failed_tasks) or '(none recorded)'}",
        f"Run: {airflow_run_url(config, dag_id, run_id)}",
        f"Re-run: `{rerun_command}`",
    ]
    if log_path:
        lines.append(f"Log: `{log_path}`")
    if log_tail and log_tail.strip():
        tail = "\n".join(log_tail.strip().splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]
        fence = "```"
        lines.append(fence + tail.replace(fence, "'''") + fence)
    return "\n".join(lines)


def slack_body(record: AlertRecord) -> dict[str, Any]:
    """A Slack-compatible body: `text` for any receiver (and Slack's notifications), `blocks` for Slack."""
    return {
        "text": record.message,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": record.message[:3000]}}],
    }


# -- the record: sl.alert_log ---------------------------------------------------------------------------


def _notify_in_warehouse(config: Settings, record: AlertRecord, webhook: _Webhook) -> AlertRecord:
    with psycopg.connect(
        config.pg_dsn_as("transformer"), connect_timeout=CONNECT_TIMEOUT, autocommit=True
    ) as conn:
        with conn.transaction():
            # two notifiers creating the table at once would collide in the catalogue: take turns; and only
            # when it is missing (the DDL's comment needs the table's owner, and a notifier may be another role)
            conn.execute("select pg_advisory_xact_lock(hashtext('tshop sl.alert_log ddl'))")
            if conn.execute("select to_regclass('sl.alert_log') is null").fetchone()[0]:
                conn.execute(ALERT_LOG_DDL)
        earlier = _file_record(config, record.run_id)  # notified while PostgreSQL was down
        with conn.transaction():
            inserted = conn.execute(
                """insert into sl.alert_log (run_id, dag_id, logical_date, failed_tasks, message,
                                             webhook_status, sent_to_webhook, webhook_error, webhook_attempts)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   on conflict (run_id) do nothing
                   returning run_id""",
                (
                    record.run_id,
                    record.dag_id,
                    record.logical_date,
                    record.failed_tasks,
                    record.message,
                    earlier.webhook_status if earlier else NOT_CONFIGURED,
                    earlier.sent_to_webhook if earlier else False,
                    earlier.webhook_error if earlier else None,
                    earlier.webhook_attempts if earlier else 0,
                ),
            ).fetchone()
            # the row lock makes a second notifier of the same run wait for the first one's post
            conn.execute("select 1 from sl.alert_log where run_id = %s for update", (record.run_id,))
            stored = _stored_record(conn, record.run_id, repeated=inserted is None or earlier is not None)
            outcome = webhook.deliver(stored)
            if outcome is None:
                return stored
            conn.execute(
                """update sl.alert_log
                   set webhook_status = %s, sent_to_webhook = %s, webhook_error = %s,
                       webhook_attempts = webhook_attempts + %s, notified_at = clock_timestamp()
                   where run_id = %s""",
                (
                    outcome.webhook_status,
                    outcome.sent_to_webhook,
                    outcome.webhook_error,
                    outcome.webhook_attempts,
                    record.run_id,
                ),
            )
            return _stored_record(conn, record.run_id, repeated=stored.repeated)


def _stored_record(conn: psycopg.Connection, run_id: str, repeated: bool) -> AlertRecord:
    row = conn.execute(
        """select run_id, dag_id, logical_date, failed_tasks, message, webhook_status, webhook_error,
                  webhook_attempts
           from sl.alert_log where run_id = %s""",
        (run_id,),
    ).fetchone()
    return AlertRecord(
        run_id=row[0],
        dag_id=row[1],
        logical_date=row[2].isoformat() if row[2] else None,
        failed_tasks=list(row[3]),
        message=row[4],
        webhook_status=row[5],
        webhook_error=row[6],
        webhook_attempts=row[7],
        recorded_in=ALERT_TABLE,
        repeated=repeated,
    )


# -- the fallback record: a JSON-lines file in the state folder -------------------------------------------


@contextmanager
def _locked_file(config: Settings) -> Iterator[Path]:
    path = alert_log_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one notifier at a time, as the row lock does in the warehouse
        yield path


def _read_file(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash: the others still count
    return records


def _file_record(config: Settings, run_id: str) -> AlertRecord | None:
    path = alert_log_file(config)
    for entry in _read_file(path):
        if entry.get("run_id") == run_id:
            fields = {name: entry.get(name) for name in AlertRecord.__dataclass_fields__}
            return AlertRecord(**{**fields, "recorded_in": str(path), "repeated": True})
    return None


def _notify_in_file(config: Settings, record: AlertRecord, webhook: _Webhook) -> AlertRecord:
    with _locked_file(config) as path:
        entries = _read_file(path)
        found = next((entry for entry in entries if entry.get("run_id") == record.run_id), None)
        fields = (
            {name: found.get(name) for name in AlertRecord.__dataclass_fields__} if found else asdict(record)
        )
        stored = AlertRecord(**{**fields, "recorded_in": str(path), "repeated": found is not None})
        outcome = webhook.deliver(stored)
        if outcome is not None:
            stored = AlertRecord(
                **{
                    **asdict(stored),
                    "webhook_status": outcome.webhook_status,
                    "webhook_error": outcome.webhook_error,
                    "webhook_attempts": (stored.webhook_attempts or 0) + outcome.webhook_attempts,
                }
            )
        entry = {
            **{
                name: value
                for name, value in asdict(stored).items()
                if name not in ("recorded_in", "repeated")
            },
            "sent_to_webhook": stored.sent_to_webhook,
            "created_at": (found or {}).get("created_at") or dt.datetime.now(dt.UTC).isoformat(),
        }
        others = [line for line in entries if line.get("run_id") != record.run_id]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(line) + "\n" for line in [*others, entry]))
        os.replace(tmp, path)  # one line per run: rewritten whole, atomically
        return stored


# -- the webhook ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PostOutcome:
    webhook_status: str
    webhook_error: str | None
    webhook_attempts: int

    @property
    def sent_to_webhook(self) -> bool:
        return self.webhook_status == SENT


class _RetryableResponse(Exception):
    def __init__(self, status_code: int):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@dataclass(frozen=True)
class _Webhook:
    url: str | None
    problem: str | None  # the setting is unusable: recorded as the webhook's failure
    secrets: list[str]

    @classmethod
    def of(cls, config: Settings, secrets: list[str]) -> _Webhook:
        try:
            return cls(config.alert_webhook, None, secrets)
        except ConfigError as error:
            return cls(None, str(error), secrets)

    def deliver(self, record: AlertRecord) -> _PostOutcome | None:
        """Post the alert unless the webhook already has it or none is set (None: nothing to change)."""
        if record.webhook_status == SENT:
            return None
        if self.problem:
            return _PostOutcome(FAILED, self.problem, 0)
        if self.url is None:
            return None
        return _post(self.url, record, self.secrets)


def _post(url: str, record: AlertRecord, secrets: list[str]) -> _PostOutcome:
    """POST the alert; a network error, a 429 or a 5xx is tried again (WEBHOOK_ATTEMPTS in all). Returns
    what happened, masked: an httpx error's text may carry the webhook's URL, and with it its token."""
    attempts = 0

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(WEBHOOK_ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=0.5, max=4),
        retry=tenacity.retry_if_exception_type((httpx.TransportError, _RetryableResponse)),
        reraise=True,
    )
    def attempt(client: httpx.Client) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        response = client.post(url, json=slack_body(record))
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableResponse(response.status_code)
        return response

    try:
        with httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False) as client:
            response = attempt(client)
    except _RetryableResponse as error:
        return _PostOutcome(FAILED, f"HTTP {error.status_code} after {attempts} tries", attempts)
    except httpx.HTTPError as error:
        reason = _first_line(_mask(str(error), secrets)) or "no detail"
        return _PostOutcome(FAILED, f"{type(error).__name__}: {reason} after {attempts} tries", attempts)
    except Exception as error:
        log.exception("posting the alert for run %s failed", record.run_id)
        return _PostOutcome(FAILED, f"{type(error).__name__}", attempts)
    if response.is_success:
        return _PostOutcome(SENT, None, attempts)
    # a 4xx other than 429: the webhook refuses the message (a revoked URL); another try would too
    return _PostOutcome(FAILED, f"HTTP {response.status_code}: {response.text[:200]!r}", attempts)


# -- Airflow ----------------------------------------------------------------------------------------------


def on_dag_run_failure(context: Mapping[str, Any], config: Settings | None = None) -> None:
    """The DAG's `on_failure_callback`: notify the failed run with the settings of this process.

    Airflow 3 runs DAG callbacks in its DAG processor (with a scheduler) or in-process (`airflow dags
    test`); the context holds the run id, and the failed task instance's template context when there was
    one. The failed tasks are asked from Airflow's API (the Task SDK's `get_task_states`, inside the DAG
    processor), else read from Airflow's metadata database on the warehouse's server.
    """
    try:
        config = config or settings()
        dag_run = context.get("dag_run")
        dag = context.get("dag")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", None) or "tshop"
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
        logical_date = context.get("logical_date") or getattr(dag_run, "logical_date", None)
        states = _task_states(config, dag_id, run_id)
        failed = sorted(task for task, state in states.items() if state == "failed")
        if not failed and context.get("ti") is not None:
            failed = [context["ti"].task_id]  # the task Airflow blames (a deadlocked run has no failed one)
        if logical_date is None:
            logical_date = _logical_date_from_metadata(config, dag_id, run_id)
        reason = context.get("reason")
        notify_failed_run(
            config,
            dag_id=dag_id,
            run_id=run_id,
            logical_date=logical_date,
            failed_tasks=failed,
            log_tail=f"Airflow's reason: {reason}" if reason else None,
            log_path=str(config.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"),
        )
    except Exception:
        log.exception("the failure callback could not notify the run")


def _task_states(config: Settings, dag_id: str, run_id: str) -> dict[str, str | None]:
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        return dict(states.get(run_id, states))
    except Exception:  # no Task SDK channel here (`airflow dags test`): read Airflow's own records
        pass
    try:
        with psycopg.connect(
            config.pg_dsn_as("airflow", database=config.airflow_database), connect_timeout=CONNECT_TIMEOUT
        ) as conn:
            return dict(
                conn.execute(
                    "select task_id, state from task_instance where dag_id = %s and run_id = %s",
                    (dag_id, run_id),
                ).fetchall()
            )
    except psycopg.Error as error:
        log.warning("Airflow's task states are out of reach: %s", _first_line(str(error)))
        return {}


def _logical_date_from_metadata(config: Settings, dag_id: str, run_id: str) -> dt.datetime | None:
    try:
        with psycopg.connect(
            config.pg_dsn_as("airflow", database=config.airflow_database), connect_timeout=CONNECT_TIMEOUT
        ) as conn:
            row = conn.execute(
                "select logical_date from dag_run where dag_id = %s and run_id = %s", (dag_id, run_id)
            ).fetchone()
        return row[0] if row else None
    except psycopg.Error:
        return None


# -- helpers ----------------------------------------------------------------------------------------------


def _generates(config: Settings) -> bool:
    try:
        return config.pipeline_generates
    except ValueError:
        return False


def _as_datetime(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    # Airflow's dates are aware (UTC); a naive one is taken as UTC, as every time in T-Shop is
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s/]+@", re.IGNORECASE)
_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key)\w*\s*[=:]\s*)(?P<value>[^\s,;'\"&]+)",
    re.IGNORECASE,
)


def _secrets(config: Settings) -> list[str]:
    """Values that must never leave in a message: the webhook's URL, and every password or token T-Shop
    knows of (from the environment and the generated secrets file; read, never generated)."""
    values = [config.env.get("TSHOP_ALERT_WEBHOOK") or ""]
    stored = read_env_file(config.secrets_file) if config.secrets_file.exists() else {}
    for name, value in {**stored, **config.env}.items():
        if re.search(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY\b|WEBHOOK", name, re.IGNORECASE):
            values.append(value)
    # the longest first, so a secret holding another is masked whole
    return sorted({value for value in values if len(value) >= 6}, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "***")
    text = _URL_CREDENTIALS.sub(lambda match: f"{match['scheme']}{match['user']}:***@", text)
    return _KEY_VALUE.sub(lambda match: f"{match['key']}***", text)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
