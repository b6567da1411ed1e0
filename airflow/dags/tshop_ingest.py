"""T-Shop's hourly ingest: the landing zone's new files into RAW (CONTRACT.md section 7).

Outside systems drop exports under `<TSHOP_LANDING_URL>/incoming/<table>/`; every hour this DAG ingests
the files it has not seen (by path and checksum in sl.landing_file): rows that break a RAW rule are kept
aside in raw.rejected_row, unreadable files are recorded as rejected, and the rest is merged into RAW by
SCD1, one file per transaction. The daily `tshop` DAG ingests the same way before it builds, so a day's
build never waits for the next hour; an ingest holds an advisory lock, so the two never take the same
file twice. Rejected rows and files are findings reported in the task log, not failures; the task fails
only when ingest itself cannot work (a server down, a wrong password, an unreachable landing zone).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, get_current_context, task

from tshop.config import settings
from tshop.dag_defaults import dag_arguments

CONFIG = settings()


@dag(
    dag_id="tshop_ingest",
    schedule="@hourly",
    start_date=datetime(2020, 1, 1),
    catchup=False,
    # an hour's ingest takes what is there: two at once would only wait for each other's lock
    max_active_runs=1,
    doc_md=__doc__,
    **dag_arguments(CONFIG),
)
def tshop_ingest():
    @task
    def ingest_landing_zone() -> None:
        """Ingest every new file of the landing zone into RAW and print what became of each."""
        from tshop.ingest import ingest

        report = ingest(settings(), run_id=get_current_context()["run_id"])
        print(report.summary(), flush=True)

    ingest_landing_zone()


tshop_ingest()
