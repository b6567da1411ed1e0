"""When `make pipeline` parses the dbt projects again: only when a file of the project changed."""

from __future__ import annotations

import os

from tshop.orchestration import manifest_is_current


def _project(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "target").mkdir()
    (tmp_path / "logs").mkdir()
    for name in ("dbt_project.yml", "models/sales.sql", "target/manifest.json", "logs/dbt.log"):
        (tmp_path / name).write_text("-")
    for name, mtime in (("dbt_project.yml", 100), ("models/sales.sql", 200), ("target/manifest.json", 300)):
        os.utime(tmp_path / name, (mtime, mtime))
    os.utime(tmp_path / "logs/dbt.log", (400, 400))  # dbt's own output is not the project
    return tmp_path


def test_a_manifest_newer_than_every_project_file_is_kept(tmp_path):
    assert manifest_is_current(_project(tmp_path))


def test_a_changed_model_makes_the_manifest_stale(tmp_path):
    project = _project(tmp_path)
    os.utime(project / "models/sales.sql", (500, 500))
    assert not manifest_is_current(project)


def test_no_manifest_is_not_current(tmp_path):
    project = _project(tmp_path)
    (project / "target/manifest.json").unlink()
    assert not manifest_is_current(project)


def _sibling_projects(tmp_path):
    """postgres/ and clickhouse/ installing shared/, as dbt_tshop/ lays them out."""
    projects = {name: _project_in(tmp_path / name) for name in ("postgres", "clickhouse")}
    for project in projects.values():
        (project / "packages.yml").write_text("packages: [{local: ../shared}]")
        os.utime(project / "packages.yml", (100, 100))
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "columns.md").write_text("-")
    os.utime(tmp_path / "shared" / "columns.md", (100, 100))
    return projects, tmp_path / "shared"


def _project_in(folder):
    folder.mkdir()
    return _project(folder)


def test_an_edit_in_the_shared_package_makes_both_manifests_stale(tmp_path):
    projects, shared = _sibling_projects(tmp_path)
    assert all(manifest_is_current(project, shared) for project in projects.values())
    os.utime(shared / "columns.md", (500, 500))
    assert not any(manifest_is_current(project, shared) for project in projects.values())


def test_an_edit_in_the_clickhouse_project_leaves_the_postgres_manifest_current(tmp_path):
    projects, shared = _sibling_projects(tmp_path)
    os.utime(projects["clickhouse"] / "models/sales.sql", (500, 500))
    assert manifest_is_current(projects["postgres"], shared)
    assert not manifest_is_current(projects["clickhouse"], shared)
