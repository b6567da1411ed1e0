"""The Docker Compose stack, checked without a Docker engine: the files follow the compose specification,
the Dockerfiles pass hadolint, every variable is documented in .env.example, the names, ports and paths agree
with what the DAG, the dbt profiles and the dashboard bundle expect, the pinned versions agree with the
lockfiles, and the init jobs refuse the example passwords."""

from __future__ import annotations

import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from tshop.config import REPO_ROOT

COMPOSE = REPO_ROOT / "compose"
MAIN = COMPOSE / "docker-compose.yml"
OVERLAYS = sorted((COMPOSE / "cluster").glob("docker-compose.*.yml"))
DOCKERFILES = sorted(COMPOSE.glob("*.Dockerfile"))
ENV_EXAMPLE = COMPOSE / ".env.example"
SCHEMA = REPO_ROOT / ".venvs" / "tools" / "compose-spec.json"
HADOLINT = REPO_ROOT / ".venvs" / "airflow" / "bin" / "hadolint"
# compose's own variable, read from .env, and the ones the init jobs' shell sets
COMPOSE_BUILTINS = {"COMPOSE_PROJECT_NAME", "HOSTNAME"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def documented() -> set[str]:
    return {
        line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    }


def services(path: Path = MAIN) -> dict:
    return load(path)["services"]


@pytest.mark.parametrize("path", [MAIN, *OVERLAYS], ids=lambda path: path.name)
def test_compose_files_follow_the_compose_specification(path):
    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing: `make test` fetches it")
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(load(path))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    # warnings and errors fail; the one info left is DL3066 on `USER airflow` / `USER superset`, the users
    # the official images define, which a numeric id would only hide
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_every_service_the_platform_needs():
    assert {
        "postgres",
        "clickhouse",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "superset-init",
        "superset",
        "minio",
        "minio-init",
    } <= set(services())


def test_long_running_services_have_healthchecks_and_pinned_images():
    for name, service in services().items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name
        if not name.endswith("-init"):
            assert "healthcheck" in service, name


def test_services_start_in_order():
    stack = services()
    for name in ("airflow-init", "superset-init"):
        assert stack[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert stack[name]["restart"] == "no"
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert stack[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", (
            name
        )
    assert stack["superset"]["depends_on"]["superset-init"]["condition"] == "service_completed_successfully"


def test_data_lives_in_named_volumes():
    stack, volumes = services(), set(load(MAIN)["volumes"])
    for name in ("postgres", "clickhouse"):
        named = {mount.split(":")[0] for mount in stack[name]["volumes"] if not mount.startswith(".")}
        assert named and named <= volumes, name


def _variables_in(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def test_every_variable_the_stack_reads_is_in_env_example():
    used: set[str] = set()
    for path in [MAIN, *OVERLAYS, *DOCKERFILES]:
        used |= _variables_in(path.read_text())
    # the variables of the init jobs' secret check
    for service in ("airflow-init", "superset-init"):
        command = " ".join(services()[service]["command"])
        used |= set(re.findall(r"check-secrets\.sh ([A-Z_ ]+)", command)[0].split())
    assert used - COMPOSE_BUILTINS - documented() == set()


def test_every_setting_the_dag_profiles_and_superset_read_is_set_by_the_stack():
    """What the DAG (tshop/config.py), the dbt profiles and Superset's side read must be in the stack's
    environment or have a default."""
    from tshop.config import DEFAULTS

    airflow_env = services()["airflow-scheduler"]["environment"]
    superset_env = services()["superset"]["environment"]
    profiles = (REPO_ROOT / "dbt_tshop" / "postgres" / "profiles.yml").read_text()
    profiles += (REPO_ROOT / "dbt_tshop" / "clickhouse" / "profiles.yml").read_text()
    for name in set(re.findall(r"env_var\('([A-Z_]+)'", profiles)):
        assert name in airflow_env or name in DEFAULTS or name.startswith("TSHOP_PG_"), name
    for module in ("superset_config.py", "superset_cli.py"):
        text = (REPO_ROOT / "tshop" / module).read_text()
        for name in set(re.findall(r'os\.environ\["([A-Z_]+)"\]', text)):
            assert name in superset_env, (module, name)


def test_addresses_agree_with_the_services():
    stack = services()
    airflow_env = stack["airflow-scheduler"]["environment"]
    assert "@postgres:5432/" in airflow_env["TSHOP_PG_DSN"]
    assert airflow_env["TSHOP_CLICKHOUSE_URL"].endswith("@clickhouse:8123")
    assert "@postgres:5432/airflow" in airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
        "http://airflow-api-server:8080/"
    )
    superset_env = stack["superset"]["environment"]
    assert superset_env["TSHOP_SUPERSET_CLICKHOUSE_URI"].endswith("@clickhouse:8123/cdm")
    assert "@postgres:5432/superset" in superset_env["TSHOP_SUPERSET_DATABASE_URI"]
    # the dashboard bundle's database file names the compose service and port
    database = load(next((REPO_ROOT / "superset_assets" / "databases").glob("*.yaml")))
    assert "@clickhouse:8123/cdm" in database["sqlalchemy_uri"]
    assert "8123" in " ".join(stack["clickhouse"]["ports"])
    # the landing zone is a bucket in the stack's MinIO, which the Airflow services wait for
    assert airflow_env["TSHOP_LANDING_URL"].startswith("s3://")
    assert airflow_env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert "9000" in " ".join(stack["minio"]["ports"])
    assert (
        stack["airflow-scheduler"]["depends_on"]["minio-init"]["condition"]
        == "service_completed_successfully"
    )
    assert "mc mb --ignore-existing" in " ".join(stack["minio-init"]["entrypoint"])
    # Airflow's and Superset's databases are made beside the warehouse
    created = (COMPOSE / "postgres" / "create-databases.sql").read_text()
    assert "create database airflow" in created and "create database superset" in created


ADMIN_PASSWORDS = ("${POSTGRES_PASSWORD", "${CLICKHOUSE_PASSWORD")


@pytest.mark.parametrize("path", [MAIN, *OVERLAYS], ids=lambda path: path.name)
def test_only_the_setup_holds_an_admin_login(path):
    """The running services connect with their roles' logins; a compromised task finds no superuser's. Only
    the servers themselves and the one-shot setup jobs (`*-init`: roles, logins, the secrets check) hold one."""
    for name, service in (load(path).get("services") or {}).items():
        if name == "postgres" or name.startswith("clickhouse") or name.endswith("-init"):
            continue
        environment = service.get("environment") or {}
        values = environment.values() if isinstance(environment, dict) else environment
        for value in values:
            assert not any(admin in str(value) for admin in ADMIN_PASSWORDS), (name, value)
        assert "env_file" not in service, name
    for name, value in (load(path).get("x-tshop-env") or {}).items():
        assert not any(admin in str(value) for admin in ADMIN_PASSWORDS), name


def test_paths_in_the_images_agree_with_the_stack():
    airflow = (COMPOSE / "airflow.Dockerfile").read_text()
    env = services()["airflow-scheduler"]["environment"]
    assert f"COPY --chown=airflow:root airflow/dags {env['AIRFLOW__CORE__DAGS_FOLDER']}" in airflow
    assert "COPY --chown=airflow:root dbt_tshop /opt/tshop/dbt_tshop" in airflow
    assert env["TSHOP_DBT_EXECUTABLE"] == "/opt/dbt/bin/dbt" and "python -m venv /opt/dbt" in airflow
    superset = (COMPOSE / "superset.Dockerfile").read_text()
    superset_env = services()["superset-init"]["environment"]
    assert superset_env["SUPERSET_CONFIG_PATH"] == "/opt/tshop/tshop/superset_config.py"
    assert "superset_assets /opt/tshop/superset_assets" in superset
    assert "/opt/tshop/superset_assets" in " ".join(services()["superset-init"]["command"])
    for dockerfile in DOCKERFILES:
        for source in re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile.read_text(), flags=re.M):
            for path in source.split():
                assert (REPO_ROOT / path).exists(), (dockerfile.name, path)


def _locked(lockfile: Path) -> dict[str, str]:
    return {package["name"]: package["version"] for package in tomllib.loads(lockfile.read_text())["package"]}


def test_pinned_versions_agree_with_the_lockfiles():
    airflow_lock = _locked(REPO_ROOT / "uv.lock")
    dbt_lock = _locked(REPO_ROOT / "envs" / "dbt" / "uv.lock")
    superset_lock = _locked(REPO_ROOT / "envs" / "superset" / "uv.lock")
    airflow = (COMPOSE / "airflow.Dockerfile").read_text()
    superset = (COMPOSE / "superset.Dockerfile").read_text()

    assert f"FROM apache/airflow:{airflow_lock['apache-airflow']}-python3.11" in airflow
    assert services()["airflow-scheduler"]["image"].endswith(f":{airflow_lock['apache-airflow']}")
    assert f"FROM apache/superset:{superset_lock['apache-superset']}" in superset
    assert services()["superset"]["image"].endswith(f":{superset_lock['apache-superset']}")
    pins = {
        airflow: {
            **airflow_lock,
            **{name: dbt_lock[name] for name in ("dbt-core", "dbt-postgres", "dbt-clickhouse")},
        },
        superset: superset_lock,
    }
    for dockerfile, lock in pins.items():
        for name, version in re.findall(r"([a-z][a-z0-9-]+)(?:\[[a-z]+\])?==([0-9][0-9.]*)", dockerfile):
            assert lock[name] == version, (name, version, lock.get(name))


@pytest.mark.parametrize("value", ["", "change-me"])
def test_the_init_jobs_refuse_example_passwords(value):
    check = COMPOSE / "check-secrets.sh"
    env = {"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "s3cret-Pg", "CLICKHOUSE_PASSWORD": value}
    refused = subprocess.run(
        ["sh", str(check), "POSTGRES_PASSWORD", "CLICKHOUSE_PASSWORD"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "CLICKHOUSE_PASSWORD is empty or still 'change-me'" in refused.stderr
    assert "POSTGRES_PASSWORD" not in refused.stderr

    env["CLICKHOUSE_PASSWORD"] = "s3cret-Ch"
    accepted = subprocess.run(["sh", str(check), "POSTGRES_PASSWORD", "CLICKHOUSE_PASSWORD"], env=env)
    assert accepted.returncode == 0


def test_env_example_holds_no_secret():
    for line in ENV_EXAMPLE.read_text().splitlines():
        if re.match(r"^[A-Z_]*(PASSWORD|SECRET|KEY)[A-Z_]*=", line):
            # a placeholder the init jobs refuse, or empty for an optional one (the personal-data keys)
            assert line.split("=", 1)[1] in ("change-me", ""), line


def test_the_clickhouse_cluster_overlay_names_its_own_nodes():
    overlay = services(COMPOSE / "cluster" / "docker-compose.clickhouse-cluster.yml")
    cluster = ET.parse(COMPOSE / "cluster" / "clickhouse" / "cluster.xml").getroot()
    replicas = {host.text for host in cluster.iter("host")}
    assert replicas <= set(overlay)
    assert len(cluster.findall("./remote_servers/tshop/shard")) == 2
    keeper = ET.parse(COMPOSE / "cluster" / "clickhouse" / "keeper.xml").getroot()
    assert {server.findtext("hostname") for server in keeper.iter("server")} <= set(overlay)
    for path in (COMPOSE / "cluster" / "clickhouse").glob("macros-*.xml"):
        macros = ET.parse(path).getroot().find("macros")
        assert macros.findtext("shard") and macros.findtext("replica"), path
    # shard 1, replica 1 keeps the name every client uses
    assert "clickhouse" in overlay


def test_the_celery_overlay_extends_the_airflow_services():
    overlay = services(COMPOSE / "cluster" / "docker-compose.celery.yml")
    main = services()
    for name, service in overlay.items():
        if name.startswith("airflow-") and "extends" not in service:
            assert name in main, name
        if "environment" in service and name.startswith("airflow-"):
            assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    assert overlay["airflow-worker"]["extends"]["service"] in main
