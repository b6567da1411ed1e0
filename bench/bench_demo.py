"""Issue 17's benchmark: `make demo` from a fresh clone with a warm package cache, stage by stage, before and
after, and a second `make demo` on the same clone.

Each revision (BENCH_DEMO_BASELINE, default the last commit before issue 17, and the working tree's HEAD) is
cloned into `.state/bench-demo/`, its environments made by `make envs` from uv's cache (timed apart), then
`make demo` runs twice on local servers and ports of its own, and `make stop` ends it. The stage times are
the ones the demo prints itself. Targets: a first demo under 3 minutes, a second under 60 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from bench.report import markdown_table, write_section
from tshop.config import REPO_ROOT
from tshop.services._process import free_port

BASELINE = os.environ.get("BENCH_DEMO_BASELINE", "206b5a2")
WORK = REPO_ROOT / ".state" / "bench-demo"
PORTS = (
    "TSHOP_PG_PORT", "TSHOP_CLICKHOUSE_PORT", "TSHOP_AIRFLOW_PORT", "TSHOP_SUPERSET_PORT",
    "TSHOP_AIRFLOW_LOG_SERVER_PORT", "TSHOP_AIRFLOW_TRIGGERER_LOG_SERVER_PORT",
)  # fmt: skip
STAGE_LINE = re.compile(r"^\s{2}(\S.*?)\s{2,}(\d+\.\d) s")


def make(clone, target: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(["make", target], cwd=clone, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"`make {target}` failed in {clone}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return seconds, result.stdout


def stages(output: str) -> list[tuple[str, float]]:
    """The demo's own "Stage timings:" table."""
    table = output.split("Stage timings:", 1)[-1].split("\n\n", 1)[0]
    return [(match[1], float(match[2])) for line in table.splitlines() if (match := STAGE_LINE.match(line))]


def measure(revision: str) -> dict:
    clone = WORK / revision
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", revision], cwd=clone, check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TSHOP_", "MAKE"))}
    env |= {name: str(free_port()) for name in PORTS}
    try:
        envs_seconds, _ = make(clone, "envs", env)
        first_seconds, first = make(clone, "demo", env)
        second_seconds, second = make(clone, "demo", env)
    finally:
        subprocess.run(["make", "stop"], cwd=clone, env=env, capture_output=True)
    shutil.rmtree(clone, ignore_errors=True)
    return {
        "envs": envs_seconds,
        "first": first_seconds,
        "second": second_seconds,
        "first_stages": stages(first),
        "second_stages": stages(second),
        "first_lines": len(first.splitlines()),
    }


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    before, after = measure(BASELINE), measure(head)
    rows = [
        (
            "`make envs` from uv's warm cache (fresh clone)",
            f"{before['envs']:.0f}",
            f"{after['envs']:.0f}",
            "",
        ),
        ("first `make demo`", f"{before['first']:.0f}", f"{after['first']:.0f}", "under 180 s"),
        ("second `make demo`", f"{before['second']:.0f}", f"{after['second']:.0f}", "under 60 s"),
        ("lines the first `make demo` prints", before["first_lines"], after["first_lines"], "about 60"),
    ]
    stage_rows = [(f"before: {name}", f"{seconds:.1f}") for name, seconds in before["first_stages"]]
    stage_rows += [(f"after: {name}", f"{seconds:.1f}") for name, seconds in after["first_stages"]]
    stage_rows += [
        (f"after, second demo: {name}", f"{seconds:.1f}") for name, seconds in after["second_stages"]
    ]
    body = (
        f"A fresh clone of each revision ({BASELINE}, before issue 17; {head}, after) with uv's package cache "
        "warm, on local servers and ports of its own: `make envs` timed apart, then `make demo` twice on the "
        "same clone. Before, the demo shop lived in March 2024 and `airflow dags test` ran the pipeline in "
        "the foreground; after, the shop ends yesterday, the Airflow apps start first, the DAG is unpaused and "
        "the demo waits for the scheduler's own run, with the Superset import alongside it.\n\n"
        + markdown_table(["", "before (s)", "after (s)", "target"], rows)
        + "\n\nAfter does more in about the same time: it also starts the scheduler and DAG processor and "
        "waits for the DAG to be registered (the Airflow stage, with Airflow's first database migration), runs "
        "the pipeline through the scheduler (a task process per task instead of `dags test`'s one process) and "
        "builds the dbt docs of both projects; the Superset set-up and import run alongside the pipeline. A "
        "second `make demo` finds everything running and today's run done, and imports the dashboard only when "
        "`superset_assets/` changed."
        + "\n\nStages as each demo printed them:\n\n"
        + markdown_table(["stage", "seconds"], stage_rows)
    )
    write_section("demo", "`make demo`: a fresh clone, then a second run (issue 17)", body)


if __name__ == "__main__":
    main()
