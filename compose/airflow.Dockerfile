# Airflow 3 with astronomer-cosmos, the T-Shop DAG and runtime, the dbt projects, and dbt in a virtual
# environment of its own (dbt and Airflow pin conflicting packages). Versions agree with uv.lock and
# envs/dbt/uv.lock (tests/compose checks it).
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl=7.* \
    && rm -rf /var/lib/apt/lists/* \
    && python -m venv /opt/dbt \
    && chown -R airflow:root /opt/dbt \
    && mkdir -p /opt/tshop/reports \
    && chown airflow:root /opt/tshop/reports
# (/opt/tshop/reports: the reports' volume, writable by the tasks; a new volume takes this owner)
USER airflow

RUN /opt/dbt/bin/pip install --no-cache-dir \
        dbt-core==1.11.16 dbt-postgres==1.11.0 dbt-clickhouse==1.10.3 \
    && pip install --no-cache-dir \
        astronomer-cosmos==1.15.1 clickhouse-connect==1.12.0 "psycopg[binary]==3.3.9" \
        matplotlib==3.11.2 polars==2.1.0 numpy==2.5.5 mimesis==22.2.0 s3fs==2026.9.0 fsspec==2026.9.0
# (polars, numpy, mimesis: the ingest's readers and datagen's RAW DDL and COPY encoder, which it imports;
# s3fs: the landing zone in MinIO)

# the same layout as the repository: tshop.config finds the dbt projects beside the runtime
COPY --chown=airflow:root tshop /opt/tshop/tshop
COPY --chown=airflow:root datagen /opt/tshop/datagen
COPY --chown=airflow:root airflow/dags /opt/tshop/airflow/dags
COPY --chown=airflow:root dbt_tshop /opt/tshop/dbt_tshop
COPY --chown=airflow:root compose/check-secrets.sh /opt/tshop/compose/check-secrets.sh
ENV PYTHONPATH=/opt/tshop \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False

# the manifests Cosmos renders the DAG from (no dbt ls at parse time); parsing needs no database
# (`dbt deps` installs the sibling folder dbt_tshop/shared: no network)
WORKDIR /opt/tshop/dbt_tshop/postgres
RUN /opt/dbt/bin/dbt deps --quiet --profiles-dir . && /opt/dbt/bin/dbt parse --quiet --profiles-dir .
WORKDIR /opt/tshop/dbt_tshop/clickhouse
RUN /opt/dbt/bin/dbt deps --quiet --profiles-dir . && /opt/dbt/bin/dbt parse --quiet --profiles-dir .
WORKDIR /opt/airflow
