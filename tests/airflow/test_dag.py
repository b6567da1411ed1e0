"""The T-Shop DAG parses without errors, and every dbt node of both projects is an Airflow task, in the default
Cosmos mode (watcher, a test task after each node) and in local mode (a `dbt build` per node)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tshop.config import Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT
from tshop.orchestration import DAG_ID, DAGS_FOLDER, airflow_env, compile_manifests

# Imports the DAG folder the way the DAG processor does, in Airflow's environment, and prints its tasks.
DAGBAG_PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={folder!r})
dag = bag.dags.get({dag_id!r})
print(json.dumps({{
    "errors": {{path: str(error) for path, error in bag.import_errors.items()}},
    "tasks": sorted(dag.task_ids) if dag else [],
    "max_active_runs": dag.max_active_runs if dag else None,
    "retries": {{task.task_id: task.retries for task in dag.tasks}} if dag else {{}},
}}))
"""


# (execution mode, test behaviour): the default, and the mode that builds each node in its own dbt process
MODES = [("watcher", "after_each"), ("local", "build")]
# the task that runs (local) or reports (watcher) a node: `<name>_<type>_build` with tests in the node's
# build, `<name>.<verb>` in a task group with a test task, `<name>_<verb>` for a node without tests
VERBS = {"model": "run", "snapshot": "snapshot", "seed": "seed"}


@pytest.fixture(scope="module", params=MODES, ids=lambda mode: "/".join(mode))
def dag_summary(request, test_settings: Settings, pg_dsn: str) -> dict:
    mode, behavior = request.param
    compile_manifests(test_settings)
    env = {
        **airflow_env(test_settings),
        "TSHOP_COSMOS_EXECUTION_MODE": mode,
        "TSHOP_COSMOS_TEST_BEHAVIOR": behavior,
    }
    probe = subprocess.run(
        [sys.executable, "-c", DAGBAG_PROBE.format(folder=str(DAGS_FOLDER), dag_id=DAG_ID)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    return {**json.loads(probe.stdout.strip().splitlines()[-1]), "mode": mode}


def manifest_nodes(project) -> set[tuple[str, str]]:
    """(resource type, name) of every node Cosmos must render: models, snapshots and seeds, not ephemeral."""
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    return {
        (node["resource_type"], node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "snapshot", "seed")
        and node["config"].get("materialized") != "ephemeral"
    }


def test_the_dag_imports_without_errors(dag_summary):
    assert dag_summary["errors"] == {}
    assert dag_summary["tasks"], "the DAG has tasks"


def test_every_dbt_node_of_both_projects_is_a_task(dag_summary):
    tasks = set(dag_summary["tasks"])
    projects = {"warehouse": POSTGRES_PROJECT}
    if (CLICKHOUSE_PROJECT / "dbt_project.yml").exists():
        projects["clickhouse_mart"] = CLICKHOUSE_PROJECT
    for group, project in projects.items():
        nodes = manifest_nodes(project)
        assert nodes, f"{project.name} has dbt nodes"
        for resource_type, name in nodes:
            verb = VERBS[resource_type]
            candidates = {
                f"{group}.{name}_{resource_type}_build",
                f"{group}.{name}.{verb}",
                f"{group}.{name}_{verb}",
            }
            assert candidates & tasks, (group, resource_type, name)


def test_watcher_mode_runs_one_dbt_build_per_project(dag_summary):
    if dag_summary["mode"] != "watcher":
        pytest.skip("local mode runs a dbt process per node, no producer task")
    assert {"warehouse.dbt_producer_watcher", "clickhouse_mart.dbt_producer_watcher"} <= set(
        dag_summary["tasks"]
    )


def test_runs_are_sequential_and_tasks_retry(dag_summary):
    assert dag_summary["max_active_runs"] == 1
    assert all(retries >= 1 for retries in dag_summary["retries"].values())


def test_the_generator_day_is_a_task_of_its_own(dag_summary):
    assert "simulate_day" in dag_summary["tasks"]


def test_a_test_with_two_parents_runs_after_both(dag_summary):
    # sales_datamart.product_id -> dds.product: inside the snapshot's build it would run before the mart exists
    if dag_summary["mode"] == "watcher":
        pytest.skip(
            "watcher mode runs every test in the producer's one `dbt build`, which orders them itself"
        )
    detached = [
        task for task in dag_summary["tasks"] if task.startswith("warehouse.relationships_sales_datamart")
    ]
    assert detached, dag_summary["tasks"]
