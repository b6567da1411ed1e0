"""The Makefile's parameters reach the commands as text, never as shell: each test runs a real target of the
Makefile with stand-ins for the programs it calls (a throwaway VENVS holding a fake `tshop`,
`tshop-datagen`, `pytest` and `python` that record their arguments), so no server starts."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tshop.config import REPO_ROOT

# what the real environments hold, faked; each records how it was called
FAKES = {
    "airflow/bin/tshop": "if sys.argv[1:] == ['env']: print('export TSHOP_PG_DSN=postgresql://fake')",
    "airflow/bin/tshop-datagen": "",
    "airflow/bin/pytest": "",
    "airflow/bin/python": "",
}
STAMPS = ["bootstrap/bin/uv", "airflow/.synced", "dbt/.synced", "superset/.synced"]
# a parameter of `make generate` reaching the shell would run these
PARAMETERS = ("CUSTOMERS", "DAYS", "SEED", "START_DATE", "PYTEST_ARGS", "PYTEST_ADDOPTS", "BENCHES", "PYTHON")


@pytest.fixture
def fake_venvs(tmp_path: Path) -> Path:
    venvs = tmp_path / "venvs"
    for name, body in FAKES.items():
        program = venvs / name
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            "with open(os.environ['FAKE_LOG'], 'a') as log:\n"
            "    log.write(json.dumps({'program': os.path.basename(sys.argv[0]), 'args': sys.argv[1:], "
            "'PYTEST_ADDOPTS': os.environ.get('PYTEST_ADDOPTS')}) + '\\n')\n"
            f"{body}\n"
        )
        program.chmod(0o755)
    # newer than the lockfiles: make takes the environments as built
    for stamp in STAMPS:
        (venvs / stamp).parent.mkdir(parents=True, exist_ok=True)
        (venvs / stamp).touch()
    return venvs


def make(venvs: Path, target: str, **parameters: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    log = venvs.parent / "calls.jsonl"
    # nothing inherited: not the outer `make test`'s variables (MAKEFLAGS), nor a parameter in the environment
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PARAMETERS and not name.startswith(("MAKE", "MFLAGS"))
    }
    env["FAKE_LOG"] = str(log)
    result = subprocess.run(
        ["make", "-s", target, f"VENVS={venvs}", *(f"{name}={value}" for name, value in parameters.items())],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def test_generate_parameters_reach_the_generator_as_text(fake_venvs: Path, tmp_path: Path):
    ran = [tmp_path / f"injected_{n}" for n in range(4)]
    result, calls = make(
        fake_venvs,
        "generate",
        START_DATE=f"2024-04-01;touch {ran[0]}",
        DAYS=f"`touch {ran[1]}`",
        SEED=f"$(touch {ran[2]})",  # neither make's nor the shell's to expand
        CUSTOMERS=f"5'000' && touch {ran[3]} #",
    )
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in ran), "a parameter ran as a command"
    [generator] = [call for call in calls if call["program"] == "tshop-datagen"]
    assert generator["args"] == [
        "generate",
        "--customers", f"5'000' && touch {ran[3]} #",
        "--days", f"`touch {ran[1]}`",
        "--seed", f"$(touch {ran[2]})",
        "--start-date", f"2024-04-01;touch {ran[0]}",
    ]  # fmt: skip


def test_generate_passes_only_the_parameters_that_were_set(fake_venvs: Path):
    # a shop in RAW refuses other customers or another seed: make's own defaults must not reach it
    _, calls = make(fake_venvs, "generate")
    assert [call["args"] for call in calls if call["program"] == "tshop-datagen"] == [["generate"]]
    _, calls = make(fake_venvs, "generate", DAYS="3")
    assert [call["args"] for call in calls if call["program"] == "tshop-datagen"][-1] == [
        "generate",
        "--days",
        "3",
    ]


def test_pytest_arguments_are_split_by_pytest_not_run_by_the_shell(fake_venvs: Path, tmp_path: Path):
    ran = tmp_path / "injected"
    result, calls = make(fake_venvs, "test-fast", PYTEST_ARGS=f"-k 'a or b' -x; touch {ran}")
    assert result.returncode == 0, result.stderr
    assert not ran.exists()
    [pytest_call] = calls
    assert pytest_call["args"] == ["-m", "not slow"]
    assert shlex.split(pytest_call["PYTEST_ADDOPTS"]) == ["-k", "a or b", "-x;", "touch", str(ran)]


def test_benches_are_file_names_not_commands(fake_venvs: Path, tmp_path: Path):
    ran = tmp_path / "injected"
    result, calls = make(fake_venvs, "bench", BENCHES=f"bench/bench_datagen.py `touch {ran}` *")
    assert result.returncode == 0, result.stderr
    assert not ran.exists()
    assert [call["args"] for call in calls] == [
        ["-m", "bench.bench_datagen"], ["-m", "bench.`touch"], ["-m", f"bench.{ran.name}`"], ["-m", "bench.*"],
    ]  # fmt: skip


def test_the_python_that_bootstraps_uv_is_a_program_name_not_a_command(fake_venvs: Path, tmp_path: Path):
    ran = tmp_path / "injected"
    (fake_venvs / "bootstrap/bin/uv").unlink()  # so make runs the recipe that calls PYTHON
    result, _ = make(fake_venvs, str(fake_venvs / "bootstrap/bin/uv"), PYTHON=f"`touch {ran}`false")
    assert result.returncode != 0, "no program has that name"
    assert not ran.exists()
