"""The dbt docs of both projects (lineage, every model and column), served inside the Airflow UI.

astronomer-cosmos' Airflow 3 plugin serves any number of dbt docs sites from folders named in
`[cosmos] dbt_docs_projects`, under `/cosmos/<slug>/dbt_docs_index.html` of the API server, and lists each
under Browse in the UI's navigation. `generate_dbt_docs()` builds the sites, `dbt_docs_airflow_env()` names
them to the plugin, `dbt_docs_url()` is the address to print.

Each project's site is `<state>/dbt-docs/<slug>`, a symbolic link to its latest build: a build is made in a
folder of its own with `dbt docs generate --target-path` (the projects' own target/ folders are Cosmos'),
and the link is switched in one rename, so the web app never serves half a site.

A build is kept while it is current: newer than every file of its project, made against the live
databases it would be made against now, and with every table and view of the project in its catalog (a
site built before the first pipeline run has the lineage and the descriptions but no column types; the
first call after the run rebuilds it). Both databases are read: PostgreSQL for the warehouse, the ClickHouse
endpoint for the mart (the chDB server of `make services` answers dbt-clickhouse's catalog query, a join of
`system.columns` and `system.tables`, as ClickHouse does). When a database cannot be reached the site is
built offline (`dbt parse` and `docs generate --no-compile --empty-catalog`: lineage, descriptions and the
SQL as written, no compiled SQL, no column types) rather than not at all, and the next call tries the live
build again.

The plugin's pages are not behind Airflow's login (Airflow mounts a plugin's FastAPI app as it is), so a
site holds no password: the ClickHouse mart's compiled SQL passes PostgreSQL's to postgresql(), and it is
replaced by [HIDDEN] in the manifest, the only file of a build with compiled SQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tshop.config import Settings
from tshop.dbt import CLICKHOUSE_PROJECT, POSTGRES_PROJECT, DbtError, run_dbt


@dataclass(frozen=True)
class DocsProject:
    slug: str  # the DAG's task group id of the project
    project: Path
    title: str  # its entry under Browse in the Airflow UI


PROJECTS = (
    DocsProject("warehouse", POSTGRES_PROJECT, "dbt docs: warehouse (PostgreSQL)"),
    DocsProject("clickhouse_mart", CLICKHOUSE_PROJECT, "dbt docs: mart (ClickHouse)"),
)

# what dbt writes into a project folder, not part of the project
DBT_OUTPUT = {"target", "logs", "dbt_packages", ".user.yml"}
# written into each build: when it started and how its catalog was made
BUILD_INFO = "tshop_docs_build.json"
# what the plugin serves of a build
SITE_FILES = {"index.html", "manifest.json", "catalog.json"}
# the ClickHouse project's compiled SQL holds PostgreSQL's password: ClickHouse's postgresql() table function
# takes it as its fifth argument (macros/postgresql_table.sql); the site shows the SQL, not the password
POSTGRESQL_PASSWORD = re.compile(r"(postgresql\(\s*(?:'(?:[^'\\]|\\.)*'\s*,\s*){4})'(?:[^'\\]|\\.)*'")
HIDDEN = "[HIDDEN]"
# a build folder that is not a site's current one is removed once it is this old: younger ones may be
# builds under way in another process (a build takes well under a minute)
KEEP_OLD_BUILDS_SECONDS = 600


def docs_root(config: Settings) -> Path:
    return config.state_dir / "dbt-docs"


def docs_dir(config: Settings, slug: str) -> Path:
    """The folder the plugin serves a project's site from (a link to its latest build)."""
    return docs_root(config) / slug


def project_files(project: Path) -> list[Path]:
    """The files and folders of a dbt project (a folder's time changes when a file in it is removed or
    renamed): not dbt's output (its folders, and package-lock.yml, which `dbt deps` rewrites), not the
    project folder itself (dbt adds and replaces its own entries there), and not a dbt project nested in it
    (dbt reads only the paths its dbt_project.yml names)."""
    nested = {path.parent for path in project.rglob("dbt_project.yml") if path.parent != project}
    return [
        path
        for path in project.rglob("*")
        if not DBT_OUTPUT & set(path.relative_to(project).parts)
        and path.name != "package-lock.yml"
        and path not in nested
        and not any(folder in path.parents for folder in nested)
    ]


def _changed_since(project: Path, moment: float) -> bool:
    for path in project_files(project):
        try:
            if path.stat().st_mtime >= moment:
                return True
        except FileNotFoundError:
            return True  # removed while we looked: a change
    return False


def _build_info(site: Path) -> dict | None:
    try:
        return json.loads((site / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return None


def _catalog_is_complete(site: Path) -> bool:
    """Whether the catalog has every table and view the manifest names (models, snapshots, seeds)."""
    try:
        manifest = json.loads((site / "manifest.json").read_text())
        catalog = json.loads((site / "catalog.json").read_text())
    except (OSError, ValueError):
        return False
    relations = {
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] in {"model", "snapshot", "seed"}
        and node["config"].get("materialized") != "ephemeral"
        and node["config"].get("enabled", True)
    }
    return relations <= set(catalog.get("nodes", {}))


def docs_are_current(config: Settings, docs: DocsProject) -> bool:
    """Whether the project's site needs no rebuild (see the module's docstring)."""
    site = docs_dir(config, docs.slug)
    info = _build_info(site)
    if info is None or info.get("catalog") != "live" or not (site / "index.html").exists():
        return False
    if info.get("databases") != _databases(config):
        return False  # pointed at another warehouse since
    return not _changed_since(docs.project, info["started_at"]) and _catalog_is_complete(site)


def generate_dbt_docs(config: Settings) -> dict[str, str]:
    """Build the docs site of each project whose site is not current; returns {slug: what was done}:
    "current" (kept), "live" (built against the databases) or "offline: <why>" (the databases could not be
    reached: lineage and descriptions only). Raises DbtError when even the offline build fails (a project
    that does not parse)."""
    root = docs_root(config)
    (root / "builds").mkdir(parents=True, exist_ok=True)
    done = {}
    for docs in PROJECTS:
        if docs_are_current(config, docs):
            done[docs.slug] = "current"
            continue
        done[docs.slug] = _build(config, docs)
    _remove_old_builds(config)
    return done


def _build(config: Settings, docs: DocsProject) -> str:
    root = docs_root(config)
    started = time.time()
    build = Path(tempfile.mkdtemp(prefix=f"{docs.slug}-", dir=root / "builds"))
    # dbt's log goes with the build, not into the project's logs/ beside the pipeline's runs
    options = ["--quiet", "--target-path", str(build), "--log-path", str(build / "logs")]
    live = run_dbt(config, ["docs", "generate", *options], project=docs.project, check=False)
    outcome = "live" if live.returncode == 0 else f"offline: {_why(live.stdout + live.stderr)}"
    if live.returncode != 0:
        # a database out of reach: the catalog and the compiled SQL need it, the rest does not
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        try:
            # `parse` writes the manifest (lineage, descriptions), which `docs generate --no-compile` does not
            run_dbt(config, ["parse", *options], project=docs.project)
            run_dbt(
                config,
                ["docs", "generate", *options, "--no-compile", "--empty-catalog"],
                project=docs.project,
            )
        except DbtError:
            shutil.rmtree(build, ignore_errors=True)
            raise
    # the site is these three files; the rest is dbt's working files, and run_results.json and compiled/
    # hold the compiled SQL unscrubbed
    for path in build.iterdir():
        if path.name not in SITE_FILES:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    _scrub_manifest(build / "manifest.json", config)
    info = {"started_at": started, "catalog": outcome.split(":")[0], "databases": _databases(config)}
    (build / BUILD_INFO).write_text(json.dumps(info))
    build.chmod(0o755)  # mkdtemp makes it 0700
    _switch_link(docs_dir(config, docs.slug), build)
    return outcome


def _scrub_manifest(manifest: Path, config: Settings) -> None:
    """Hide every password in the manifest's texts: the postgresql() password argument, and any of the
    passwords T-Shop knows (long enough to be told from ordinary text) wherever else it appears."""
    secrets = {
        password
        for url in (config.pg_dsn(), config.clickhouse_url, config.get("TSHOP_CLICKHOUSE_PG_DSN") or "")
        if (password := urlsplit(url).password) and len(password) >= 8
    }

    def scrub(value):
        if isinstance(value, str):
            value = POSTGRESQL_PASSWORD.sub(rf"\1'{HIDDEN}'", value)
            for secret in secrets:
                value = value.replace(secret, HIDDEN)
            return value
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return value

    if manifest.exists():
        manifest.write_text(json.dumps(scrub(json.loads(manifest.read_text()))))


def _why(output: str) -> str:
    """dbt's own words for why it stopped: the lines after "Encountered an error:", in one line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in output.splitlines()]
    for index, line in enumerate(lines):
        if line.endswith("Encountered an error:"):
            return ": ".join(line for line in lines[index + 1 : index + 3] if line)[:300]
    return next((line for line in reversed(lines) if line), "dbt failed")[:300]


def _databases(config: Settings) -> list[str]:
    """Where the catalogs are read from, without credentials: a site describes these databases."""
    places = [urlsplit(url) for url in (config.pg_dsn(), config.clickhouse_url)]
    return [f"{place.hostname}:{place.port}{place.path}" for place in places]


def _switch_link(link: Path, target: Path) -> None:
    """Point `link` at `target` in one rename (a reader sees the old site or the new, never neither)."""
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # a plain folder from elsewhere: replaced once
    staged = link.with_name(f".{link.name}.{os.getpid()}.link")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target.relative_to(link.parent))
    os.replace(staged, link)


def _remove_old_builds(config: Settings) -> None:
    root = docs_root(config)
    current = {docs_dir(config, docs.slug).resolve() for docs in PROJECTS}
    now = time.time()
    for build in (root / "builds").iterdir():
        if build.resolve() in current:
            continue
        if now - build.stat().st_mtime > KEEP_OLD_BUILDS_SECONDS:
            shutil.rmtree(build, ignore_errors=True)


def dbt_docs_airflow_env(config: Settings) -> dict[str, str]:
    """The AIRFLOW__COSMOS__* variables that make Cosmos' Airflow 3 plugin serve both sites (read when the
    API server starts; the sites themselves are read on each request, so a rebuild needs no restart)."""
    projects = {
        docs.slug: {"dir": str(docs_dir(config, docs.slug)), "index": "index.html", "name": docs.title}
        for docs in PROJECTS
    }
    return {"AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": json.dumps(projects)}


def dbt_docs_url(config: Settings, slug: str = "warehouse") -> str:
    """The address of a project's docs in the Airflow web app, as the UI's Browse menu links to it."""
    return f"http://127.0.0.1:{config.airflow_port}/cosmos/{slug}/dbt_docs_index.html"
