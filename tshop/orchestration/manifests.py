"""The dbt manifests Cosmos renders the DAG from: parsed when a project changed, kept otherwise."""

from __future__ import annotations

from pathlib import Path

from tshop.config import Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT, SHARED_PACKAGE, install_packages, run_dbt

# what dbt writes into a project folder, not part of the project
DBT_OUTPUT = {"target", "logs", "dbt_packages"}


def is_newer_than_project(path: Path, project: Path, shared: Path = SHARED_PACKAGE) -> bool:
    """Whether `path` exists and is newer than every file of the dbt project and of the local package it
    installs, as make would judge it (the other sibling project does not count: it is not read)."""
    if not path.exists():
        return False
    built = path.stat().st_mtime
    folders = [project, *([shared] if (project / "packages.yml").exists() else [])]
    return all(
        file.stat().st_mtime < built
        for folder in folders
        for file in folder.rglob("*")
        if file.is_file() and not DBT_OUTPUT & set(file.relative_to(folder).parts)
    )


def manifest_is_current(project: Path, shared: Path = SHARED_PACKAGE) -> bool:
    """Whether target/manifest.json is newer than every file of the project and its shared package."""
    return is_newer_than_project(project / "target" / "manifest.json", project, shared)


def compile_manifests(config: Settings) -> None:
    """`dbt parse` both projects: Cosmos renders the DAG from these manifests (no dbt ls at parse time).

    A manifest newer than its project's files is kept: it only gives the DAG its shape (the nodes and their
    order), which only the files change, and the two parses cost about 16 s here, a third of a demo run.
    """
    for project in (POSTGRES_PROJECT, CLICKHOUSE_PROJECT):
        if not (project / "dbt_project.yml").exists():
            continue
        # Cosmos runs the nodes offline with the packages found in the project (install_deps=False)
        install_packages(config, project)
        if not manifest_is_current(project):
            run_dbt(config, ["parse", "--quiet"], project=project)
