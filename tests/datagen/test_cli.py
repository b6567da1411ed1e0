"""`tshop-datagen generate` as a user runs it: what it refuses ends in one clear line and exit 1 (or
click's usage error, exit 2), never in a traceback, with nothing written."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tshop.config import REPO_ROOT

# nothing listens here: a refusal that needs no database must come before connecting to one
NO_SERVER = "postgresql://tshop@127.0.0.1:9/nowhere?connect_timeout=1"


def generate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datagen.cli", "generate", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("arguments", "status", "says"),
    [
        (["--start-date", "9999-12-30", "--days", "5"], 1, "5 days from 9999-12-30 run past 9999-12-31"),
        (["--start-date", "1899-12-31"], 1, "before 1900-01-01"),
        (["--seed", "-1"], 2, "Invalid value for '--seed'"),
        (["--seed", str(2**63)], 2, "Invalid value for '--seed'"),
        (["--days", "0"], 2, "Invalid value for '--days'"),
        (["--customers", "0"], 2, "Invalid value for '--customers'"),
        (["--start-date", "2024-02-30"], 2, "Invalid value for '--start-date'"),
    ],
)
def test_arguments_out_of_range_are_refused_without_a_traceback(arguments, status, says):
    result = generate(*arguments, "--dsn", NO_SERVER)
    assert result.returncode == status, result.stderr
    assert says in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_server_that_cannot_be_reached_is_one_line_not_a_traceback():
    result = generate("--days", "1", "--dsn", NO_SERVER)
    assert result.returncode == 1
    assert "error: PostgreSQL:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_other_customers_for_a_shop_in_raw_are_refused_and_the_same_accepted(new_database, raw_digest):
    dsn = new_database("cli_customers")
    first = generate("--customers", "2000", "--seed", "3", "--days", "1", "--dsn", dsn)
    assert first.returncode == 0, first.stderr
    before = raw_digest(dsn)

    refused = generate("--customers", "2500", "--days", "1", "--start-date", "2024-03-05", "--dsn", dsn)
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "2,500 initial customers (--customers), but it began with 2,000" in message, message
    assert "nothing was written" in message and "Traceback" not in message
    assert raw_digest(dsn) == before

    # the same number again, as the DAG passes its own every day; and none at all
    again = generate("--customers", "2000", "--days", "1", "--start-date", "2024-03-05", "--dsn", dsn)
    assert again.returncode == 0, again.stderr
    none = generate("--days", "1", "--start-date", "2024-03-06", "--dsn", dsn)
    assert none.returncode == 0, none.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select seed, initial_customers from raw.generator_shop").fetchone() == (3, 2000)
        assert conn.execute("select count(*), min(seed) from raw.generated_day").fetchone() == (3, 3)
