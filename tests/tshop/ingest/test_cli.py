"""`tshop ingest` as a user runs it: exit 0 when every file was processed (rejected rows and files included,
and reported), exit 1 with a clear message when the ingest itself could not run."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

from tshop.services._process import free_port


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tshop.cli", "ingest", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exit_0_with_a_line_per_file_rejections_included(config, landing, warehouse):
    landing.drop(
        "incoming/customer/c.csv",
        landing.csv(
            "customer_id,first_name,last_name,birth_date,updated_at", "100,Ann,,1990-05-01,2024-03-05"
        ),
    )
    landing.drop("incoming/product/p.parquet", b"not parquet")
    result = run_cli(config.env, "--run-id", "scheduled__2024-03-06T02:00:00+00:00")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("loaded   incoming/customer/c.csv: read 1, loaded 0, rejected 1")
    assert lines[1].startswith("rejected incoming/product/p.parquet: not a readable Parquet file")
    assert lines[2].startswith("ingested 2 files from file://")
    assert {row["run_id"] for row in warehouse.landing_files()} == {"scheduled__2024-03-06T02:00:00+00:00"}


def test_exit_1_when_postgresql_is_down_or_the_password_is_wrong(config, landing):
    landing.drop("incoming/customer/c.csv", "customer_id\n1\n")
    url = urlsplit(config.pg_dsn())
    down = url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{free_port()}").geturl()
    result = run_cli({**config.env, "TSHOP_PG_DSN": down})
    assert result.returncode == 1
    assert result.stderr.startswith("error: ingest cannot connect to PostgreSQL")
    # the ingest logs in as the loader (CONTRACT.md section 10)
    result = run_cli({**config.env, "TSHOP_PG_LOADER_PASSWORD": "wrong"})
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_exit_1_when_the_landing_url_is_unusable(config):
    result = run_cli({**config.env, "TSHOP_LANDING_URL": "nosuchscheme://x/y"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: TSHOP_LANDING_URL=nosuchscheme://x/y cannot be opened")
