"""Issue 16 soak (`make soak`, outside `make test`): consecutive daily pipeline runs with faults injected at
random moments in a third of them, against the same days run without faults.

Each day is one `tshop pipeline --date DAY --generate` process, exactly as an operator runs it. In a faulty
day one of these is killed with SIGKILL at a random moment of the run: the local PostgreSQL, the local
ClickHouse endpoint, or the orchestrator itself (the `tshop pipeline` process, as the OOM killer would). The
run must then fail (exit non-zero) unless it had already finished; the services are started again and the
same day is run again, which must succeed. After the last day, everything a reader sees (RAW, DDS, the CDM
mart and queue, the SL watermarks, ClickHouse's current rows and versions) must equal the state the same days
leave when run without faults. Both series run on servers of their own in `.state/soak`.

Knobs: SOAK_DAYS (default 30), SOAK_SEED (default 16: which days get which fault, and when).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from bench.report import markdown_table, write_section
from tshop.config import REPO_ROOT, Settings, settings
from tshop.reader_state import reader_state
from tshop.services._process import free_port, pid_alive
from tshop.services.clickhouse import LocalClickHouse
from tshop.services.postgres import LocalPostgres

DAYS = int(os.environ.get("SOAK_DAYS", "30"))
SEED = int(os.environ.get("SOAK_SEED", "16"))
FIRST_DAY = dt.date(2024, 3, 4)
STATE = REPO_ROOT / ".state" / "soak"
TSHOP = REPO_ROOT / ".venvs" / "airflow" / "bin" / "tshop"
FAULTS = ("postgres", "clickhouse", "orchestrator")
RUN_TIMEOUT = 1200


@dataclass
class Day:
    day: dt.date
    fault: str | None = None
    delay: float = 0.0
    fault_fired: bool = False
    failed_as_it_should: bool | None = None
    reruns: int = 0
    seconds: float = 0.0


def series_settings(name: str) -> Settings:
    state = STATE / name
    return settings(
        {
            **os.environ,
            "TSHOP_STATE_DIR": str(state),
            "TSHOP_PG_PORT": str(free_port()),
            "TSHOP_CLICKHOUSE_PORT": str(free_port()),
            "TSHOP_RETRIES": "0",
        }
    )


def start_services(config: Settings) -> None:
    LocalPostgres(config).start()
    LocalClickHouse(config).start()


def pipeline(config: Settings, day: dt.date) -> subprocess.Popen:
    log = open(config.state_dir / f"pipeline-{day}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [str(TSHOP), "pipeline", "--date", day.isoformat(), "--generate"],
        env=config.client_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def kill(config: Settings, fault: str, run: subprocess.Popen) -> bool:
    """SIGKILL the fault's target; False when it was not running (the run had already ended)."""
    if fault == "orchestrator":
        pid = run.pid
    else:
        service = LocalPostgres(config) if fault == "postgres" else LocalClickHouse(config)
        pid = service.status().pid
    if pid is None or not pid_alive(pid) or run.poll() is not None:
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def run_day(config: Settings, plan: Day) -> None:
    started = time.monotonic()
    run = pipeline(config, plan.day)
    if plan.fault:
        deadline = time.monotonic() + plan.delay
        while time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        plan.fault_fired = kill(config, plan.fault, run)
    code = run.wait(timeout=RUN_TIMEOUT)
    if plan.fault_fired:
        plan.failed_as_it_should = code != 0
        start_services(config)
        # after a kill -9 of the orchestrator the next run may first have to wait out its orphans
        while True:
            plan.reruns += 1
            code = pipeline(config, plan.day).wait(timeout=RUN_TIMEOUT)
            if code == 0 or plan.reruns >= 3:
                break
            start_services(config)
    plan.seconds = time.monotonic() - started
    if code != 0:
        raise SystemExit(
            f"{plan.day} did not succeed (fault {plan.fault}); see {config.state_dir}/pipeline-{plan.day}.log"
        )


def run_series(name: str, plans: list[Day]) -> dict[str, list[tuple]]:
    config = series_settings(name)
    start_services(config)
    try:
        for plan in plans:
            run_day(config, plan)
            note = f" ({plan.fault} killed after {plan.delay:.0f} s)" if plan.fault_fired else ""
            print(f"{name} {plan.day}: {plan.seconds:.0f} s{note}", flush=True)
        return reader_state(config)
    finally:
        LocalClickHouse(config).stop()
        LocalPostgres(config).stop()


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    rng = random.Random(SEED)
    days = [FIRST_DAY + dt.timedelta(days=offset) for offset in range(DAYS)]
    faulty_days = set(rng.sample(range(DAYS), DAYS // 3))
    faulty = [
        Day(day, rng.choice(FAULTS), rng.uniform(3, 45)) if index in faulty_days else Day(day)
        for index, day in enumerate(days)
    ]
    clean = [Day(day) for day in days]

    started = time.monotonic()
    after_faults = run_series("faulty", faulty)
    faulty_minutes = (time.monotonic() - started) / 60
    started = time.monotonic()
    after_clean = run_series("clean", clean)
    clean_minutes = (time.monotonic() - started) / 60

    different = [name for name in after_clean if after_faults.get(name) != after_clean[name]]
    injected = [plan for plan in faulty if plan.fault]
    rows = []
    for fault in FAULTS:
        of_kind = [plan for plan in injected if plan.fault == fault]
        fired = [plan for plan in of_kind if plan.fault_fired]
        rows.append(
            (
                fault,
                len(of_kind),
                len(fired),
                sum(1 for plan in fired if plan.failed_as_it_should),
                sum(plan.reruns for plan in fired),
            )
        )
    body = "\n".join(
        [
            f"{DAYS} consecutive business days from {FIRST_DAY} of the demo-sized shop, each a `tshop pipeline "
            f"--date DAY --generate` process (Cosmos watcher mode, no task retries), on servers of their own. In "
            f"{len(injected)} of them (seed {SEED}) one SIGKILL at a random moment 3-45 s into the run: the "
            "local PostgreSQL, the local ClickHouse endpoint or the orchestrator (`tshop pipeline` itself); "
            "then the services are started again and the day is run again. A fault that came after the run "
            "had ended is counted as not fired.\n",
            markdown_table(
                [
                    "fault (SIGKILL)",
                    "days drawn",
                    "fired mid-run",
                    "run exited non-zero",
                    "re-runs to succeed",
                ],
                rows,
            ),
            f"\nFaulty series {faulty_minutes:.1f} min, clean series {clean_minutes:.1f} min. End state "
            f"(RAW, DDS, CDM mart and queue, SL watermarks, ClickHouse current rows and versions): "
            + (
                "**equal** to the clean series."
                if not different
                else f"**different** in {', '.join(different)}."
            ),
            "\nTarget: every fired fault fails its run, every re-run succeeds, and the end state equals the "
            "clean series'.",
        ]
    )
    print(write_section("soak", "Soak: daily runs with faults injected (issue 16)", body))
    if different or any(plan.fault_fired and not plan.failed_as_it_should for plan in injected):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
