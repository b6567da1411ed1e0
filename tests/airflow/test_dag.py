"""The T-Shop DAG parses without errors, and every dbt node of both projects is an Airflow task, in the default
Cosmos mode (watcher, a test task after each node) and in local mode (a `dbt build` per node)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tshop.config import Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT
from tshop.orchestration import DAG_ID, DAGS_FOLDER, INGEST_DAG_ID, airflow_env, compile_manifests

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
    "trigger_rules": {{task.task_id: getattr(task.trigger_rule, "value", task.trigger_rule) for task in dag.tasks}} if dag else {{}},
    "upstream": {{task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks}} if dag else {{}},
    "kinds": {{task.task_id: type(task).__name__ for task in dag.tasks}} if dag else {{}},
    "schedule": str(dag.schedule) if dag else None,
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


# a retry cannot help them: Cosmos skips a watcher producer's second try (its node tasks retry instead), and
# a data-quality finding stays the same when asked again
NEVER_RETRIED = {
    "warehouse.dbt_producer_watcher",
    "clickhouse_mart.dbt_producer_watcher",
    "check_waiting_sales",
    "check_raw_freshness",
    "fail_if_a_task_failed",
}


def test_runs_are_sequential_and_tasks_retry(dag_summary):
    assert dag_summary["max_active_runs"] == 1
    retried = {task: retries for task, retries in dag_summary["retries"].items() if task not in NEVER_RETRIED}
    assert retried and all(retries >= 1 for retries in retried.values()), retried
    for task in NEVER_RETRIED & set(dag_summary["tasks"]):
        assert dag_summary["retries"][task] == 0, task


def test_a_failed_dbt_build_reaches_every_node_task(dag_summary):
    """Watcher mode: a producer whose `dbt build` failed, or that skipped itself in a cleared run, does not
    silence its node tasks. The producer and the first node tasks run once everything before them ended,
    whatever its state (each reports its node; a node the build never reached, or every node of a cleared
    run, runs alone); the rest run when the node tasks before them succeeded, so a failure is never read as
    a skip."""
    if dag_summary["mode"] != "watcher":
        pytest.skip("local mode runs a dbt process per node, no producer task")
    for group in ("warehouse", "clickhouse_mart"):
        producer = f"{group}.dbt_producer_watcher"
        nodes = [
            task
            for task, kind in dag_summary["kinds"].items()
            if task.startswith(f"{group}.") and kind.startswith("Dbt") and kind.endswith("WatcherOperator")
            and task != producer
        ]  # fmt: skip
        assert nodes, group
        assert dag_summary["trigger_rules"][producer] == "all_done", producer
        first = [task for task in nodes if dag_summary["upstream"][task] == [producer]]
        assert first, group
        for task in nodes:
            rule = "all_done" if task in first else "all_success"
            assert dag_summary["trigger_rules"][task] == rule, (task, dag_summary["upstream"][task])
            assert dag_summary["upstream"][task], task


def test_waiting_sales_are_checked_after_the_build_and_freshness_last(dag_summary):
    assert dag_summary["upstream"]["check_waiting_sales"] == ["reconcile_clickhouse"]
    assert dag_summary["trigger_rules"]["check_waiting_sales"] == "all_success"
    # whatever became of the build: a stale source matters most when the build failed
    assert dag_summary["upstream"]["check_raw_freshness"] == ["write_reports"]
    assert dag_summary["trigger_rules"]["check_raw_freshness"] == "all_done"
    assert not any(
        "check_raw_freshness" in upstream
        for task, upstream in dag_summary["upstream"].items()
        if task != "fail_if_a_task_failed"
    )


def group_leaves(dag_summary: dict, group: str) -> set[str]:
    """The tasks of a task group that no other task of the group waits for: its last ones."""
    return {
        task
        for task in dag_summary["tasks"]
        if task.startswith(f"{group}.")
        and not any(
            task in dag_summary["upstream"][other]
            for other in dag_summary["tasks"]
            if other.startswith(f"{group}.")
        )
    }


def test_reports_are_written_from_a_warehouse_that_built_and_passed_the_checks(dag_summary):
    """A report once written is only rewritten by a re-run of its day: it must not come from a half-built
    warehouse, which the ClickHouse tasks (all_done) would pass on to the checks, so it waits for the
    warehouse's own last tasks as well as for the checks, each of them successful."""
    upstream = set(dag_summary["upstream"]["write_reports"])
    assert "check_waiting_sales" in upstream
    warehouse_leaves = group_leaves(dag_summary, "warehouse")
    assert warehouse_leaves and warehouse_leaves <= upstream, warehouse_leaves - upstream
    assert dag_summary["trigger_rules"]["write_reports"] == "all_success"
    assert dag_summary["retries"]["write_reports"] >= 1


def test_the_generator_day_is_a_task_of_its_own(dag_summary):
    assert "simulate_day" in dag_summary["tasks"]


def test_the_landing_zone_is_ingested_after_the_generator_and_before_the_warehouse(dag_summary):
    assert dag_summary["upstream"]["ingest_landing_zone"] == ["simulate_day"]
    # a run that does not generate (generate=false skips the generator) still ingests
    assert dag_summary["trigger_rules"]["ingest_landing_zone"] == "none_failed"
    first_warehouse_tasks = [
        task
        for task, upstream in dag_summary["upstream"].items()
        if task.startswith("warehouse.") and not any(other.startswith("warehouse.") for other in upstream)
    ]
    assert first_warehouse_tasks
    for task in first_warehouse_tasks:
        assert dag_summary["upstream"][task] == ["register_event_files"], task
    assert dag_summary["upstream"]["register_event_files"] == ["ingest_landing_zone"]
    assert dag_summary["trigger_rules"]["register_event_files"] == "none_failed"


def test_event_files_are_recorded_only_after_every_clickhouse_node_succeeded(dag_summary):
    """The ClickHouse project loads the registered event files; recording them as loaded after a failed
    node would leave events unloaded for good, so the record waits for every last ClickHouse task."""
    clickhouse_leaves = group_leaves(dag_summary, "clickhouse_mart")
    assert clickhouse_leaves
    assert set(dag_summary["upstream"]["record_event_files"]) == clickhouse_leaves
    assert dag_summary["trigger_rules"]["record_event_files"] == "all_success"
    assert any(task.startswith("clickhouse_mart.clickstream") for task in dag_summary["tasks"])
    assert "record_event_files" in dag_summary["upstream"]["fail_if_a_task_failed"]


def test_the_hourly_ingest_dag_has_the_one_ingest_task(test_settings: Settings):
    probe = subprocess.run(
        [sys.executable, "-c", DAGBAG_PROBE.format(folder=str(DAGS_FOLDER), dag_id=INGEST_DAG_ID)],
        env=airflow_env(test_settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    summary = json.loads(probe.stdout.strip().splitlines()[-1])
    assert summary["errors"] == {}
    assert summary["tasks"] == ["ingest_landing_zone"]
    assert summary["max_active_runs"] == 1
    assert summary["schedule"] == "@hourly"


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


def test_a_failed_task_fails_the_run_by_airflows_own_rule(dag_summary):
    """Airflow calls a run successful when its last tasks succeeded, and some tasks run whatever became of the
    tasks before them (the producers, the first node tasks, the freshness check): a guard after every other
    task, `one_failed`, fails the run when any task failed, so a scheduled run (and its failure callback)
    never says success over a failed task."""
    guard = "fail_if_a_task_failed"
    assert dag_summary["trigger_rules"][guard] == "one_failed"
    assert dag_summary["retries"][guard] == 0
    assert set(dag_summary["upstream"][guard]) == set(dag_summary["tasks"]) - {guard}
