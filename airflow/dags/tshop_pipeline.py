"""The T-Shop pipeline, one business day per run (daily at 02:00 UTC for the day before).

A run at 02:00 on day D (its logical date) processes business day D-1, which has just ended. It
1. simulates the business days after the last one RAW holds through D-1 into RAW with the generator, in
   order, each once: usually just D-1, several after nights the machine was off (skipped with
   `generate=false`),
2. ingests the landing zone's new files into RAW (tshop.ingest; the DAG `tshop_ingest` does it hourly too),
   and registers its new clickstream and review files for ClickHouse (tshop.ingest.events),
3. builds the PostgreSQL warehouse with dbt: the DDS snapshots, then the CDM mart, each node with its tests,
4. materialises the mart in ClickHouse with the dbt-clickhouse project, which also loads the registered event
   files into ClickHouse's `events` tables and builds the funnel and rating marts; then records those files
   in sl.landing_file,
5. checks that ClickHouse's current rows reconcile with PostgreSQL's,
6. checks that no sale line has waited in cdm.sales_rejected for more than a day,
7. writes the sales reports under TSHOP_REPORTS_URL: the day's, any earlier day's still missing, and a month's
   once it has ended (tshop.reports),
8. checks that every RAW table got rows within 3 days (dbt source freshness; a day only warns),
9. fails the run when any task failed (`fail_if_a_task_failed`; skipped otherwise).
A failed run records an alert in sl.alert_log and posts it to TSHOP_ALERT_WEBHOOK when set (tshop.alerts).

Every dbt node is its own Airflow task, rendered by astronomer-cosmos from the manifests `make` compiles
(no `dbt ls` at parse time, no `dbt deps`), and run with dbt from its own virtual environment. Runs are
sequential (max_active_runs=1): each one moves the SL watermarks the next one starts from.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.operators.watcher import (
    DbtConsumerWatcherSensor,
    DbtProducerWatcherOperator,
    DbtSourceWatcherOperator,
)

from tshop.config import REPO_ROOT, settings
from tshop.dag_defaults import dag_arguments
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT

# every setting comes from tshop.config (environment variables, defaults in one place)
CONFIG = settings()
DBT_PROJECT = POSTGRES_PROJECT
DBT_CLICKHOUSE_PROJECT = CLICKHOUSE_PROJECT
DBT_EXECUTABLE = str(CONFIG.dbt_executable)
DATAGEN = str(REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop-datagen")
# how Cosmos runs the dbt nodes (docs/benchmarks.md has what each costs here)
EXECUTION_MODE = ExecutionMode(CONFIG.cosmos_execution_mode)
TEST_BEHAVIOR = TestBehavior(CONFIG.cosmos_test_behavior)

# The dbt processes inherit the services' addresses and their roles' logins (the parts `tshop env` prints,
# TSHOP_CLICKHOUSE_URL) from Airflow's environment, never from the DAG (whose arguments Airflow shows), and
# record this run's id in sl.load_metadata.run_id.
DBT_OPERATOR_ARGS = {
    "install_deps": False,
    "append_env": True,
    "env": {"TSHOP_RUN_ID": "{{ run_id }}", "DO_NOT_TRACK": "1"},
}
EXECUTION = ExecutionConfig(
    execution_mode=EXECUTION_MODE,
    invocation_mode=InvocationMode.SUBPROCESS,
    dbt_executable_path=DBT_EXECUTABLE,
    # Watcher mode: the producer (the one `dbt build`) never retries. Cosmos skips a producer on its second
    # try instead of building again, so a retry turned a failed build into a skipped one, and the skip ran
    # on through every node task to reconcile_clickhouse: a run whose ClickHouse died ended `success`. The
    # node tasks carry the retries: a retried node task runs its node alone.
    setup_operator_args={"retries": 0},
)
# one task per dbt node, running `dbt build --select <node>`: the node and its tests in one dbt process
# ephemeral models are compiled into the snapshots that read them: no task of their own
# a test with several parents (sales_datamart -> dds.product) gets its own task after all of them: left
# in its first parent's `dbt build` it would run before the other parent exists. In watcher mode one
# `dbt build` orders every test itself, and the producer reports no result for a detached test's task.
RENDER = RenderConfig(
    load_method=LoadMode.DBT_MANIFEST,
    test_behavior=TEST_BEHAVIOR,
    exclude=["config.materialized:ephemeral"],
    should_detach_multiple_parents_tests=EXECUTION_MODE is ExecutionMode.LOCAL,
)


def producer_first(group: DbtTaskGroup) -> None:
    """In watcher mode, have the node tasks read the producer's results after its `dbt build` ends.

    Cosmos starts them alongside the producer and lets them wait for its results. `airflow dags test`
    (what `make pipeline` runs without a scheduler) runs one task at a time, so a node task that started first
    waited for a producer that could not start. Once the producer has ended, every node's result is there at
    the first look, so a node task needs no triggerer and no worker slot held while it waits.

    The producer and the first node tasks run once everything before them has ended, whatever its state
    (`all_done`): each node reports its own result, a node the build did not reach runs alone, and a failure
    shows on the node that failed. A producer of a cleared run (try 2 and later) skips itself rather than
    build twice, and then every node task runs its node alone: so a run cleared in the UI builds again
    instead of ending "successful" with everything skipped. The producer also builds after a task before it
    failed: dbt builds what its sources hold, which a failed task before it left consistent (each
    generated day and each dbt node is one transaction), and the run fails by the failed task's name anyway.
    Below the first node tasks, the plain rule: a node task runs when the node tasks it depends on succeeded.
    """
    operators = list(group.iter_tasks())
    producer = next(op for op in operators if isinstance(op, DbtProducerWatcherOperator))
    producer.trigger_rule = TriggerRule.ALL_DONE
    in_group = {op.task_id for op in operators}
    for node in operators:
        if isinstance(node, (DbtConsumerWatcherSensor, DbtSourceWatcherOperator)):
            node.deferrable = False
            node.poke_interval = 1
            if node.upstream_task_ids & in_group:
                node.trigger_rule = TriggerRule.ALL_SUCCESS
            else:
                producer >> node
                node.trigger_rule = TriggerRule.ALL_DONE


def dbt_project(path: Path, name: str) -> ProjectConfig:
    return ProjectConfig(
        dbt_project_path=path, manifest_path=path / "target" / "manifest.json", project_name=name
    )


@dag(
    dag_id="tshop",
    schedule="0 2 * * *",
    # early enough for any simulated business day (a run before start_date would run no task)
    start_date=datetime(2020, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "generate": Param(
            CONFIG.pipeline_generates,
            type="boolean",
            description="Simulate the business day before building.",
        ),
        # unset: the generator's own defaults for a new shop, and the shop's own values for one RAW holds
        # (the generator refuses values other than the shop's)
        "customers": Param(
            None, type=["null", "integer"], minimum=1, description="Initial customers of a new shop."
        ),
        "seed": Param(None, type=["null", "integer"], description="Generator seed of a new shop."),
    },
    doc_md=__doc__,
    **dag_arguments(CONFIG),
)
def tshop():
    @task
    def simulate_day() -> None:
        """Simulate every business day after the last one RAW holds through the day before the logical
        date, in order, each once (a new shop starts at that day): a machine that was off for three nights
        catches up in one run. Days already loaded (a cleared or re-run run) are left as they are, so
        re-running a run ends where the first run ended."""
        context = get_current_context()
        params = context["params"]
        if not params["generate"]:
            raise AirflowSkipException("generation skipped by the `generate` parameter")
        day = (context["logical_date"] - timedelta(days=1)).strftime("%Y-%m-%d")
        subprocess.run(
            [DATAGEN, "generate", "--through", day, "--days", "1", "--to", CONFIG.generate_to,
             *(f"--{name}={params[name]}" for name in ("customers", "seed") if params[name] is not None)],
            check=True,
        )  # fmt: skip

    # runs whether or not this run generated a day; the hourly DAG `tshop_ingest` does the same between runs
    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def ingest_landing_zone() -> None:
        """Ingest every new file of the landing zone (TSHOP_LANDING_URL) into RAW before the build: rows
        that break a RAW rule go to raw.rejected_row, unreadable files are recorded as rejected (findings,
        not failures); the task fails only when ingest itself cannot work."""
        from tshop.ingest import ingest

        report = ingest(settings(), run_id=get_current_context()["run_id"])
        print(report.summary(), flush=True)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def register_event_files() -> None:
        """Put the landing zone's new clickstream and review files (JSON lines) on events.pending_file for
        the ClickHouse project's events models; a file that cannot be read is recorded as rejected in
        sl.landing_file (a finding, not a failure)."""
        from tshop.ingest.events import register

        print(register(settings(), run_id=get_current_context()["run_id"]).summary(), flush=True)

    # only after every ClickHouse node succeeded: files whose load failed stay pending, and the next run
    # loads them again (each event counts once)
    @task
    def record_event_files() -> None:
        """Record the event files the ClickHouse project loaded in sl.landing_file, with their counts, and
        take them off events.pending_file."""
        from tshop.ingest.events import record

        print(record(settings(), run_id=get_current_context()["run_id"]).summary(), flush=True)

    warehouse = DbtTaskGroup(
        group_id="warehouse",
        project_config=dbt_project(DBT_PROJECT, "tshop"),
        profile_config=ProfileConfig(
            profile_name="tshop", target_name="postgres", profiles_yml_filepath=DBT_PROJECT / "profiles.yml"
        ),
        execution_config=EXECUTION,
        render_config=RENDER,
        operator_args=DBT_OPERATOR_ARGS,
        # the warehouse builds whether or not this run generated a day
        default_args={"trigger_rule": "none_failed"},
    )

    clickhouse_mart = DbtTaskGroup(
        group_id="clickhouse_mart",
        project_config=dbt_project(DBT_CLICKHOUSE_PROJECT, "tshop_clickhouse"),
        profile_config=ProfileConfig(
            profile_name="tshop_clickhouse",
            target_name="clickhouse",
            profiles_yml_filepath=DBT_CLICKHOUSE_PROJECT / "profiles.yml",
        ),
        execution_config=EXECUTION,
        render_config=RENDER,
        # the compiled SQL holds PostgreSQL's credentials (postgresql() table function): never show it
        operator_args={**DBT_OPERATOR_ARGS, "should_store_compiled_sql": False},
    )

    if EXECUTION_MODE is ExecutionMode.WATCHER:
        producer_first(warehouse)
        producer_first(clickhouse_mart)

    @task
    def reconcile_clickhouse() -> None:
        """ClickHouse's current view must equal PostgreSQL's current mart rows (counts, sums, per day,
        per category)."""
        from tshop.reconcile import reconcile

        reconcile(settings())

    # a finding, not a hiccup: retrying cannot change the answer
    @task(retries=0)
    def check_waiting_sales() -> None:
        """No sale line may have waited in cdm.sales_rejected for more than a day: its customer or product
        never arrived, and the error says how many lines and since when."""
        from tshop.checks import check_waiting_sales

        check_waiting_sales(settings())

    @task
    def write_reports() -> None:
        """Write the daily report of the business day this run built, of every earlier day with sales that
        has none yet (a run that caught up), and of every finished month that has none yet (the month of the
        day, when the day ends it): CSV and HTML under TSHOP_REPORTS_URL, from PostgreSQL's mart."""
        from tshop.orchestration.runs import business_day_of
        from tshop.reports import write_reports_of_run

        day = business_day_of(get_current_context()["logical_date"].isoformat())
        for url in write_reports_of_run(settings(), day):
            print(f"wrote {url}", flush=True)

    # a finding, not a hiccup: retrying cannot make RAW fresher. Runs last, whatever became of the build
    # (a stale source matters most when the build failed), and never alongside a dbt build (dbt's project
    # hooks, which this dbt command runs too, would race on the sl tables).
    @task(retries=0, trigger_rule=TriggerRule.ALL_DONE)
    def check_raw_freshness() -> None:
        """RAW's newest rows must be younger than the sources' error_after (3 days); a table past
        warn_after (1 day), or empty, only warns. The error names each stale table with its age."""
        from tshop.checks import check_raw_freshness

        check_raw_freshness(settings(), run_id=get_current_context()["run_id"])

    # Airflow calls a run successful when its last tasks succeeded. The producers, their first node tasks and
    # the freshness check run whatever became of the tasks before them (all_done), so a failure upstream of
    # them would not reach the end of the chain: this task, after every other, fails the run (and calls the
    # failure callback) when any task failed, and is skipped otherwise. Airflow's own "watcher" pattern.
    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def fail_if_a_task_failed() -> None:
        """Fail the run: a task before this one failed (see the failed tasks of this run)."""
        raise RuntimeError(
            "a task of this run failed: the run fails with it (its name is in the run's failed tasks)"
        )

    generated = simulate_day()
    ingested = ingest_landing_zone()
    registered = register_event_files()
    recorded = record_event_files()
    reconciled = reconcile_clickhouse()
    waiting = check_waiting_sales()
    reports = write_reports()
    fresh = check_raw_freshness()
    (
        generated
        >> ingested
        >> registered
        >> warehouse
        >> clickhouse_mart
        >> reconciled
        >> waiting
        >> reports
        >> fresh
    )
    clickhouse_mart >> recorded
    # A report is written once and then only rewritten by a re-run of its day (or its month's last day), so
    # it is written only from a warehouse this run found sound: after the checks (a line still waiting for
    # its customer would be missing from it), and after the warehouse itself succeeded, which the chain alone
    # does not ensure (the ClickHouse producer runs whatever became of the warehouse, and reconciles a
    # half-built mart as equal). When it does not run, the next sound run writes the reports still missing.
    warehouse >> reports
    [
        generated,
        ingested,
        registered,
        recorded,
        reconciled,
        waiting,
        reports,
        fresh,
        *warehouse.iter_tasks(),
        *clickhouse_mart.iter_tasks(),
    ] >> (fail_if_a_task_failed())


tshop()
