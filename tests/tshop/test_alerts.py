"""Alerts for failed runs: every failed run is recorded once in sl.alert_log (or, with PostgreSQL down, in the
state folder's alert log), its Slack-compatible message reaches the webhook once, and a notifier that cannot
reach anything never raises. A real HTTP receiver on a free port plays the webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import psycopg
import pytest

from tshop.alerts import ALERT_TABLE, alert_log_file, notify_failed_run, on_dag_run_failure
from tshop.config import Settings, settings
from tshop.services._process import free_port

RUN = {
    "dag_id": "tshop",
    "run_id": "scheduled__2026-11-24T02:00:00+00:00",
    "logical_date": "2026-11-24T02:00:00+00:00",
    "failed_tasks": ["warehouse.sales_datamart_run", "check_waiting_sales"],
}


@pytest.fixture(scope="module")
def alerts_dsn(pg_dsn: str, test_settings: Settings) -> Iterator[str]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("drop database if exists alerts with (force)")
        conn.execute("create database alerts")
    yield test_settings.pg_dsn(database="alerts")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("drop database if exists alerts with (force)")


@pytest.fixture
def make_config(alerts_dsn: str, test_settings: Settings, tmp_path, request):
    """Settings of a warehouse whose sl.alert_log starts empty, a state folder of the test's own, and a
    webhook when given one."""
    with psycopg.connect(alerts_dsn, autocommit=True) as conn:
        conn.execute("drop table if exists sl.alert_log")

    def make(webhook: str | None = None, dsn: str | None = None) -> Settings:
        env = {
            **test_settings.env,
            "TSHOP_PG_DSN": dsn or alerts_dsn,
            "TSHOP_STATE_DIR": str(tmp_path / "state"),
        }
        env.pop("TSHOP_ALERT_WEBHOOK", None)
        if webhook:
            env["TSHOP_ALERT_WEBHOOK"] = webhook
        return settings(env)

    return make


def recorded(config: Settings) -> list[tuple]:
    with psycopg.connect(config.pg_dsn()) as conn:
        return conn.execute(
            f"""select run_id, dag_id, logical_date, failed_tasks, webhook_status, sent_to_webhook,
                       webhook_attempts, message
                from {ALERT_TABLE} order by run_id"""
        ).fetchall()


def test_a_failed_run_is_posted_once_even_when_notified_twice(make_config, receiver):
    config = make_config(webhook=receiver.url)
    first = notify_failed_run(config, **RUN, log_tail="dbt: Database Error in model sales_datamart")
    second = notify_failed_run(config, **RUN)  # `tshop pipeline` after the DAG's own callback

    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["type"] == "application/json"
    assert post["path"] == "/services/T0001/B0001/hook-token-f00d"
    text = post["body"]["text"]
    assert "DAG `tshop`" in text and "2026-11-24 02:00 UTC" in text
    assert "`warehouse.sales_datamart_run`" in text and "`check_waiting_sales`" in text
    run_link = (
        f"http://127.0.0.1:{config.airflow_port}/dags/tshop/runs/scheduled__2026-11-24T02:00:00%2B00:00"
    )
    assert run_link in text
    assert "Re-run: `tshop pipeline --date 2026-11-23" in text
    assert "Database Error in model sales_datamart" in text
    assert post["body"]["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": text}}

    assert (first.webhook_status, first.repeated) == ("sent", False)
    assert (second.webhook_status, second.repeated) == ("sent", True)
    [row] = recorded(config)
    assert row[:7] == (
        RUN["run_id"],
        "tshop",
        row[2],
        RUN["failed_tasks"],
        "sent",
        True,
        1,
    )
    assert row[2].isoformat() == "2026-11-24T02:00:00+00:00"
    assert row[7] == text


def test_without_a_webhook_the_run_is_still_recorded_once(make_config):
    config = make_config()
    assert config.alert_webhook is None
    notify_failed_run(config, **RUN)
    result = notify_failed_run(config, **RUN)
    assert (result.recorded_in, result.webhook_status, result.repeated) == (
        ALERT_TABLE,
        "not configured",
        True,
    )
    [row] = recorded(config)
    assert row[4:7] == ("not configured", False, 0)


def test_an_unreachable_webhook_is_recorded_and_does_not_raise(make_config, receiver):
    config = make_config(webhook=f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there
    result = notify_failed_run(config, **RUN)
    assert result.webhook_status == "failed"
    assert result.webhook_error.startswith("ConnectError") and result.webhook_error.endswith("after 3 tries")
    [row] = recorded(config)
    assert row[4:7] == ("failed", False, 3)

    # the next notification of the same run tries again, and is recorded once
    retried = notify_failed_run(make_config(webhook=receiver.url), **RUN)
    assert retried.webhook_status == "sent"
    assert len(receiver.posts) == 1
    [row] = recorded(config)
    assert row[4:7] == ("sent", True, 4)


def test_a_server_error_is_retried(make_config, receiver):
    receiver.statuses = [503, 500]
    result = notify_failed_run(make_config(webhook=receiver.url), **RUN)
    assert (result.webhook_status, result.webhook_attempts) == ("sent", 3)
    assert len(receiver.posts) == 3


def test_a_refused_message_is_not_retried(make_config, receiver):
    receiver.statuses = [404]
    result = notify_failed_run(make_config(webhook=receiver.url), **RUN)
    assert (result.webhook_status, result.webhook_attempts) == ("failed", 1)
    assert result.webhook_error.startswith("HTTP 404")


def test_with_postgresql_down_the_alert_log_file_records_it_once(make_config, receiver):
    down = f"postgresql://tshop:pw-down-1234@127.0.0.1:{free_port()}/tshop"
    config = make_config(webhook=receiver.url, dsn=down)
    first = notify_failed_run(config, **RUN)
    second = notify_failed_run(config, **RUN)
    assert first.recorded_in == second.recorded_in == str(alert_log_file(config))
    assert len(receiver.posts) == 1
    [line] = alert_log_file(config).read_text().splitlines()
    entry = json.loads(line)
    assert (entry["run_id"], entry["webhook_status"], entry["sent_to_webhook"]) == (
        RUN["run_id"],
        "sent",
        True,
    )
    assert entry["failed_tasks"] == RUN["failed_tasks"]

    # PostgreSQL back: the run is recorded there too, and not posted again
    back = make_config(webhook=receiver.url)
    assert notify_failed_run(back, **RUN).repeated
    assert len(receiver.posts) == 1
    assert recorded(back)[0][4:6] == ("sent", True)


def test_the_message_carries_no_secret(make_config, receiver):
    config = make_config(webhook=receiver.url)
    password = psycopg.conninfo.conninfo_to_dict(config.pg_dsn())["password"]
    tail = (
        f"connection to {config.pg_dsn()} failed\n"
        f"POST {receiver.url} refused\n"
        "ClickHouse at http://default:ch-pass-5678@127.0.0.1:8123 said no\n"
        "api_key=abc123456789 token: tok-9876543210"
    )
    result = notify_failed_run(config, **RUN, log_tail=tail)
    for text in (receiver.posts[0]["body"]["text"], recorded(config)[0][7], result.message):
        for secret in (password, "hook-token-f00d", "ch-pass-5678", "abc123456789", "tok-9876543210"):
            assert secret not in text
        assert "http://default:***@127.0.0.1:8123" in text


def test_the_callback_never_raises_when_nothing_is_reachable(tmp_path):
    config = settings(
        {
            "TSHOP_STATE_DIR": str(tmp_path),
            "TSHOP_PG_DSN": f"postgresql://tshop:pw-down-1234@127.0.0.1:{free_port()}/tshop",
            "TSHOP_ALERT_WEBHOOK": f"http://127.0.0.1:{free_port()}/hook",
        }
    )
    ti = SimpleNamespace(task_id="check_raw_freshness")
    dag_run = SimpleNamespace(dag_id="tshop", run_id="manual__x", logical_date=None)
    on_dag_run_failure({"dag_run": dag_run, "run_id": "manual__x", "ti": ti}, config)
    entry = json.loads(alert_log_file(config).read_text())
    assert (entry["failed_tasks"], entry["webhook_status"]) == (["check_raw_freshness"], "failed")
