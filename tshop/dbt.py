"""Running the dbt projects from the dbt environment, as Cosmos does, for tests, benchmarks and the CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tshop.config import REPO_ROOT, Settings
from tshop.errors import TShopError

# two sibling projects and the local package both install (dbt_tshop/*/packages.yml)
POSTGRES_PROJECT = REPO_ROOT / "dbt_tshop" / "postgres"
CLICKHOUSE_PROJECT = REPO_ROOT / "dbt_tshop" / "clickhouse"
SHARED_PACKAGE = REPO_ROOT / "dbt_tshop" / "shared"


class DbtError(TShopError):
    """A dbt command failed; the message carries the tail of its output."""


def dbt_env(config: Settings) -> dict[str, str]:
    # dbt reads the services' addresses and its roles' logins as parts (connection_env, profiles.yml); no telemetry
    return {**config.client_env(), "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}


def run_dbt(
    config: Settings,
    args: list[str],
    project: Path = POSTGRES_PROJECT,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `dbt <args>` in `project` with the project's own profiles.yml; raise DbtError on failure."""
    if args[:1] != ["deps"]:
        install_packages(config, project)
    command = [
        str(config.dbt_executable),
        *args,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
    ]
    result = subprocess.run(
        command,
        cwd=project,
        env={**dbt_env(config), **(extra_env or {})},
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise DbtError(f"`dbt {' '.join(args)}` failed in {project.name} (exit {result.returncode}):\n{tail}")
    return result


def install_packages(config: Settings, project: Path) -> None:
    """`dbt deps` when the project's packages are not installed, or installed from another checkout.

    The only package is the local sibling folder (no dbt hub: it is not reachable here); dbt links it into
    dbt_packages/ by its absolute path, so a moved or fresh checkout installs it again. Cosmos is told not to
    install packages (its operators run offline), so everything that runs dbt passes through here first.
    """
    installed = project / "dbt_packages" / SHARED_PACKAGE.name
    if not (project / "packages.yml").exists() or installed.resolve() == SHARED_PACKAGE.resolve():
        return
    run_dbt(config, ["deps", "--quiet"], project=project)
