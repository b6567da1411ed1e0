"""What every T-Shop DAG shares (airflow/dags/): task retries with exponential backoff, and the failure
callback that alerts on a failed run. Imported by the DAG files, so it imports nothing heavy."""

from __future__ import annotations

from datetime import timedelta

from tshop.alerts import on_dag_run_failure
from tshop.config import Settings


def dag_arguments(config: Settings) -> dict:
    """The `@dag(...)` arguments every T-Shop DAG takes."""
    return {
        "default_args": {
            "retries": config.retries,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
        },
        "on_failure_callback": on_dag_run_failure,
        "tags": ["tshop"],
    }
