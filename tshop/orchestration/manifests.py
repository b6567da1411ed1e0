"""The dbt manifests Cosmos renders the DAG from: parsed when a project changed, kept otherwise."""

from __future__ import annotations

from pathlib import Path

from tshop.config import Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT, run_dbt

# what dbt writes into a project folder, not part of the project
DBT_OUTPUT = {"target", "logs", "dbt_packages"}


def is_newer_than_project(path: Path, project: Path) -> bool:
    """Whether `path` exists and is newer than every file of the dbt project, as make would judge it."""
    if not path.exists():
        return False
    built = path.stat().st_mtime
    return all(
        file.stat().st_mtime < built
        for file in project.rglob("*")
        if file.is_file() and not DBT_OUTPUT & set(file.relative_to(project).parts)
    )


def manifest_is_current(project: Path) -> bool:
    """Whether target/manifest.json is newer than every file of the project."""
    return is_newer_than_project(project / "target" / "manifest.json", project)


def compile_manifests(config: Settings) -> None:
    """`dbt parse` both projects: Cosmos renders the DAG from these manifests (no dbt ls at parse time).

    A manifest newer than its project's files is kept: it only gives the DAG its shape (the nodes and their
    order), which only the files change, and the two parses cost about 16 s here, a third of a demo run.
    """
    for project in (POSTGRES_PROJECT, CLICKHOUSE_PROJECT):
        if (project / "dbt_project.yml").exists() and not manifest_is_current(project):
            run_dbt(config, ["parse", "--quiet"], project=project)
