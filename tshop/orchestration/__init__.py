"""Orchestration: Airflow's environment and command line (`airflow_cli`), the dbt manifests Cosmos renders
the DAG from (`manifests`), pipeline runs (`runs`) and what a person sees of them (`progress`)."""

from tshop.orchestration.airflow_cli import (
    AIRFLOW_BIN,
    DAG_ID,
    DAGS_FOLDER,
    INGEST_DAG_ID,
    PipelineError,
    airflow,
    airflow_env,
    ensure_airflow,
)
from tshop.orchestration.manifests import compile_manifests, manifest_is_current
from tshop.orchestration.runs import (
    RunOutcome,
    latest_logical_date,
    logical_date_for,
    run_pipeline,
    settle_run,
    unsuccessful_tasks,
)

__all__ = [
    "AIRFLOW_BIN",
    "DAGS_FOLDER",
    "DAG_ID",
    "INGEST_DAG_ID",
    "PipelineError",
    "RunOutcome",
    "airflow",
    "airflow_env",
    "compile_manifests",
    "ensure_airflow",
    "latest_logical_date",
    "logical_date_for",
    "manifest_is_current",
    "run_pipeline",
    "settle_run",
    "unsuccessful_tasks",
]
