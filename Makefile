# T-Shop: `make` lists the targets. Parameters are make variables: make generate CUSTOMERS=5000000 DAYS=90
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
UV_VERSION := 0.13.9
VENVS := .venvs
BOOTSTRAP_ENV := $(VENVS)/bootstrap
UV := $(BOOTSTRAP_ENV)/bin/uv
AIRFLOW_ENV := $(VENVS)/airflow
DBT_ENV := $(VENVS)/dbt
SUPERSET_ENV := $(VENVS)/superset
# dlt, only for bench/bench_ingest.py's comparison of loaders (made by `make bench`, never by envs or test)
DLT_ENV := $(VENVS)/dlt
TSHOP := $(AIRFLOW_ENV)/bin/tshop
# the browser of the dashboard test: Debian's (Playwright cannot download its own here)
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# the compose-spec JSON schema the compose tests validate against, taken from PyPI (no network beyond it)
COMPOSE_SCHEMA := $(VENVS)/tools/compose-spec.json

# uv uses the machine's Python and never downloads one (only the package registries are reachable)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON = $(value PYTHON)

# A parameter (a variable given on the command line or in the environment) reaches a recipe's shell only as
# $(call quoted,NAME): its text unexpanded ($(value)), in single quotes, its own single quotes escaped. So
# `make generate START_DATE='2024-04-01;id'`, or a backquote or $$( ) in a value, is text, never a command.
quoted = '$(subst ','\'',$(value $(1)))'

##@ The two commands

# VERBOSE=1 shows the generator's, Airflow's and dbt's output as it comes instead of writing it to log files
VERBOSE_FLAG = $(if $(filter 1 true yes,$(value VERBOSE)),--verbose)

.PHONY: demo
demo: envs services ## set everything up: a shop through yesterday (DEMO_DAYS, default 14), scheduled runs, the dashboard
	@$(TSHOP) demo $(if $(value DEMO_DAYS),--days $(call quoted,DEMO_DAYS)) $(VERBOSE_FLAG)

.PHONY: test
test: envs $(CHROMIUM) $(COMPOSE_SCHEMA) ## run the whole test suite against real local servers (what .ci/run runs)
	$(PYTEST_WITH_ARGS) $(AIRFLOW_ENV)/bin/pytest

.PHONY: test-fast
test-fast: $(AIRFLOW_ENV)/.synced ## run the quick tests only (no end-to-end runs)
	$(PYTEST_WITH_ARGS) $(AIRFLOW_ENV)/bin/pytest -m "not slow"

# PYTEST_ARGS (several arguments, shell-style quotes allowed: PYTEST_ARGS="-k 'a or b' -x") reach pytest
# through PYTEST_ADDOPTS, which pytest splits itself (shlex), so nothing in them is run by the shell
PYTEST_WITH_ARGS = $(if $(value PYTEST_ARGS),PYTEST_ADDOPTS="$${PYTEST_ADDOPTS:-} "$(call quoted,PYTEST_ARGS))

##@ Local services

.PHONY: services
services: $(AIRFLOW_ENV)/.synced ## start the local PostgreSQL and ClickHouse (harmless when running)
	@$(TSHOP) services start

.PHONY: stop
stop: ## stop everything the project started locally (web apps, then services)
	@if [ -x $(TSHOP) ]; then $(TSHOP) webapps stop && $(TSHOP) services stop; fi

.PHONY: status
status: $(AIRFLOW_ENV)/.synced ## show whether the local services run
	@$(TSHOP) services status

.PHONY: env
env: $(AIRFLOW_ENV)/.synced ## print export lines for the running services: eval "$(make env)"
	@$(TSHOP) env

.PHONY: psql
psql: $(AIRFLOW_ENV)/.synced ## open psql (the bundled PostgreSQL 18 client) on the warehouse
	@eval "$$($(TSHOP) env)"; "$$($(AIRFLOW_ENV)/bin/python -c 'from tshop.services.postgres import binary; print(binary("psql"))')" "$$TSHOP_PG_DSN"

##@ Benchmarks

# Each bench/bench_*.py measures one issue's numbers and rewrites its own section of docs/benchmarks.md.
# in issue order: the warehouse benchmark leaves the full-scale shop that the ClickHouse mart's reads
BENCHES ?= bench/bench_clickhouse_endpoint.py bench/bench_datagen.py bench/bench_warehouse.py \
	bench/bench_clickhouse_mart.py bench/bench_pipeline.py bench/bench_late_data.py bench/bench_demo.py \
	bench/bench_star_schema.py bench/bench_ingest.py bench/bench_events.py bench/bench_erasure.py \
	bench/bench_tiles.py
# the dlt environment only when bench_ingest.py is among them (BENCHES read as text, never expanded)
BENCH_ENVS = $(if $(filter %bench_ingest.py,$(value BENCHES)),$(DLT_ENV)/.synced)

.PHONY: bench
bench: envs $(BENCH_ENVS) ## run the benchmarks (BENCHES=bench/bench_x.py for one) and print their tables
	@benches=$(call quoted,BENCHES); set -f; for bench in $$benches; do \
		echo "== $$bench"; $(AIRFLOW_ENV)/bin/python -m "bench.$$(basename "$$bench" .py)"; done

.PHONY: soak
soak: envs ## 30 daily pipeline runs with random kill -9s against the same days without (SOAK_DAYS, SOAK_SEED)
	@$(AIRFLOW_ENV)/bin/python -m bench.soak

##@ Data

# Only the parameters set reach the generator, whose defaults make the demo-sized shop (CUSTOMERS=20000
# DAYS=7 SEED=42 START_DATE=2024-03-04; the contract's full scale is CUSTOMERS=5000000 DAYS=90). A shop
# already in RAW keeps its own customers and seed and refuses others, so passing defaults from here would
# refuse every shop made with other ones.
generate_option = $(if $(value $(1)),--$(2) $(call quoted,$(1)))
GENERATE_ARGS = $(call generate_option,CUSTOMERS,customers) $(call generate_option,DAYS,days) \
	$(call generate_option,SEED,seed) $(call generate_option,START_DATE,start-date)

# TARGET=compose: into the Docker Compose stack's PostgreSQL (the generator always runs on the host)
TARGET ?= local
ifeq ($(TARGET),compose)
GENERATE_DEPS := $(AIRFLOW_ENV)/.synced compose/.env
GENERATE_ENV := set -a; . compose/.env; set +a; \
	export TSHOP_PG_DSN="postgresql://$$POSTGRES_USER:$$POSTGRES_PASSWORD@127.0.0.1:$${POSTGRES_PORT:-5432}/$${POSTGRES_DB:-tshop}"
else
GENERATE_DEPS := services
GENERATE_ENV := eval "$$($(TSHOP) env)"
endif

.PHONY: generate
generate: $(GENERATE_DEPS) ## simulate DAYS days of the shop into RAW (CUSTOMERS, DAYS, SEED, START_DATE, TARGET=compose)
	@$(GENERATE_ENV); $(AIRFLOW_ENV)/bin/tshop-datagen generate $(GENERATE_ARGS)

##@ Pipeline

.PHONY: pipeline
pipeline: envs services ## run one pipeline cycle over the current RAW through Airflow (DATE=business day; no generation)
	@$(TSHOP) pipeline $(if $(value DATE),--date $(call quoted,DATE)) $(VERBOSE_FLAG)

.PHONY: webapps
webapps: envs services ## start the Airflow and Superset web apps in the background
	@$(TSHOP) webapps start

##@ Dashboard

.PHONY: dashboard
dashboard: envs services ## set up Superset, import both dashboards (superset_assets/), print the login
	@$(TSHOP) dashboard import

.PHONY: dashboard-export
dashboard-export: envs services ## save the dashboards as the running Superset holds them into superset_assets/
	@$(TSHOP) dashboard export

##@ Docker Compose (the full stack, for machines with a Docker engine)

COMPOSE := docker compose --file compose/docker-compose.yml --env-file compose/.env

.PHONY: up
up: compose/.env ## build and start the full stack in Docker Compose, waiting until it is healthy
	$(COMPOSE) up --detach --build --wait

.PHONY: down
down: compose/.env ## stop the Docker Compose stack (its volumes, and so its data, stay)
	$(COMPOSE) down

compose/.env:
	@echo "compose/.env is missing: cp compose/.env.example compose/.env, then replace every change-me" >&2
	@exit 1

##@ Environments (made by uv from the lockfiles, each in its own virtual environment)

.PHONY: envs
envs: $(AIRFLOW_ENV)/.synced $(DBT_ENV)/.synced $(SUPERSET_ENV)/.synced ## create or update all environments

$(UV):
	$(call quoted,PYTHON) -m venv $(BOOTSTRAP_ENV)
	$(BOOTSTRAP_ENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Airflow 3 + astronomer-cosmos + the runtime (tshop) and the generator (datagen), with the dev tools
$(AIRFLOW_ENV)/.synced: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(AIRFLOW_ENV) $(UV) sync --locked --quiet >&2
	@touch $@

# dbt-core 1.11 with dbt-postgres and dbt-clickhouse
$(DBT_ENV)/.synced: envs/dbt/pyproject.toml envs/dbt/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(DBT_ENV) $(UV) sync --locked --quiet --project envs/dbt >&2
	@touch $@

# Superset 6.1 with the clickhousedb:// driver
$(SUPERSET_ENV)/.synced: envs/superset/pyproject.toml envs/superset/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(SUPERSET_ENV) $(UV) sync --locked --quiet --project envs/superset >&2
	@touch $@

# dlt 1.31 with its PostgreSQL destination: bench/dlt_merge.py, the loader bench/bench_ingest.py measures ours against
$(DLT_ENV)/.synced: envs/dlt/pyproject.toml envs/dlt/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(DLT_ENV) $(UV) sync --locked --quiet --project envs/dlt >&2
	@touch $@

# docker-compose 1.29.2, the last Python Compose, ships the compose-spec schema; only the schema is used
$(COMPOSE_SCHEMA): | $(UV)
	mkdir -p $(VENVS)/tools/download
	$(BOOTSTRAP_ENV)/bin/pip download --quiet --disable-pip-version-check --no-deps docker-compose==1.29.2 \
		--dest $(VENVS)/tools/download >&2
	$(call quoted,PYTHON) -c 'import glob, sys, zipfile; \
		wheel = zipfile.ZipFile(glob.glob(sys.argv[1])[0]); open(sys.argv[2], "wb").write(wheel.read("compose/config/compose_spec.json"))' \
		"$(VENVS)/tools/download/docker_compose-1.29.2-*.whl" $@
	rm -rf $(VENVS)/tools/download

$(CHROMIUM):
	$(SUDO) apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >&2

.PHONY: lock
lock: | $(UV) ## re-resolve the four lockfiles after changing a pyproject.toml
	$(UV) lock
	$(UV) lock --project envs/dbt
	$(UV) lock --project envs/superset
	$(UV) lock --project envs/dlt

.PHONY: lint
lint: $(AIRFLOW_ENV)/.synced ## ruff lint and format check
	$(AIRFLOW_ENV)/bin/ruff check .
	$(AIRFLOW_ENV)/bin/ruff format --check .

.PHONY: clean
clean: stop ## stop the services and delete the environments and all local data
	rm -rf $(VENVS) .state

##@ Help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} \
	  /^##@/ {printf "\n%s\n", substr($$0, 5); next} \
	  /^[a-zA-Z_-]+:.*## / {printf "  make %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Parameters: make generate CUSTOMERS=... DAYS=... SEED=... START_DATE=YYYY-MM-DD"
