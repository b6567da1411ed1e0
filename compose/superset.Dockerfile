# Superset 6.1 with the clickhousedb:// driver, T-Shop's Superset configuration and the dashboard bundle.
# Versions agree with envs/superset/uv.lock (tests/compose checks it).
FROM apache/superset:6.1.0

USER root
RUN uv pip install --no-cache --python /app/.venv/bin/python \
        clickhouse-connect==1.12.0 cachetools==8.0.1 psycopg2-binary==2.9.13 "flask-caching==2.3.1"
COPY --chown=superset:superset tshop/__init__.py tshop/superset_config.py tshop/superset_cli.py /opt/tshop/tshop/
COPY --chown=superset:superset superset_assets /opt/tshop/superset_assets
COPY --chown=superset:superset compose/check-secrets.sh /opt/tshop/compose/check-secrets.sh
ENV PYTHONPATH=/opt/tshop \
    SUPERSET_CONFIG_PATH=/opt/tshop/tshop/superset_config.py
USER superset
