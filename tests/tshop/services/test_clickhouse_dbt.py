"""dbt-clickhouse (driver: http) against the local endpoint: table, view and every incremental strategy for
MergeTree, built twice; the second build must pass and leave correct, de-duplicated data."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tshop import clients
from tshop.config import REPO_ROOT

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).parent / "dbt_clickhouse_project"
WINDOW = ["--event-time-start", "2024-01-01", "--event-time-end", "2024-01-05"]


def dbt_build(clickhouse_url: str, batch: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO_ROOT / ".venvs/dbt/bin/dbt"), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", "target", "--vars", f"{{batch: {batch}}}", *WINDOW],
        cwd=PROJECT,
        env={**os.environ, "TSHOP_CLICKHOUSE_URL": clickhouse_url, "DO_NOT_TRACK": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def built_twice(clickhouse_url, test_settings):
    client = clients.clickhouse(test_settings)
    client.command("drop database if exists endpoint_check")
    first = dbt_build(clickhouse_url, batch=0)
    assert first.returncode == 0, first.stdout[-4000:]
    second = dbt_build(clickhouse_url, batch=1)
    assert second.returncode == 0, second.stdout[-4000:]
    yield client
    client.close()


def rows(client, model: str, final: bool = False) -> dict[int, int]:
    result = client.query(
        f"select id, value from endpoint_check.{model} {'final' if final else ''}"
    ).result_rows
    ids = [row[0] for row in result]
    assert len(ids) == len(set(ids)), f"{model} has duplicate ids"
    return dict(result)


# after batch 0 (ids 0-99, value = id) and batch 1 (ids 50-149, value = 1000 + id - 50)
MERGED = {**{i: i for i in range(50)}, **{i: 1000 + i - 50 for i in range(50, 150)}}


@pytest.mark.parametrize("model", ["incremental_legacy", "incremental_delete_insert"])
def test_keyed_strategies_merge_the_second_batch(built_twice, model):
    assert rows(built_twice, model) == MERGED


def test_append_into_replacing_merge_tree_reads_merged_with_final(built_twice):
    assert rows(built_twice, "incremental_append", final=True) == MERGED
    assert built_twice.command("select count() from endpoint_check.incremental_append") == 200


def test_insert_overwrite_replaces_the_touched_partition(built_twice):
    assert rows(built_twice, "incremental_insert_overwrite") == {i: 1000 + i - 50 for i in range(50, 150)}


def test_microbatch_rebuilds_each_day_of_the_window(built_twice):
    found = rows(built_twice, "incremental_microbatch")
    assert {i: found[i] for i in range(50, 150)} == {i: 1000 + i - 50 for i in range(50, 150)}


def test_table_and_view_hold_the_current_batch(built_twice):
    assert rows(built_twice, "source_rows") == {i: 1000 + i - 50 for i in range(50, 150)}
    assert rows(built_twice, "source_view") == {i: 1000 + i - 50 for i in range(50, 150)}
