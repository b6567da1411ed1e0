"""`python -m tshop.services.clickhouse`: serve one chDB engine over ClickHouse's HTTP interface.

The logins come from the environment (TSHOP_CLICKHOUSE_USER/_PASSWORD, the writer's and the reader's
TSHOP_CLICKHOUSE_WRITER_USER/_PASSWORD and TSHOP_CLICKHOUSE_READER_USER/_PASSWORD; access.py), never the command
line, which other users of the machine can read. `tshop services start` runs this in the background.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import threading
from pathlib import Path

from tshop.services.clickhouse.access import logins
from tshop.services.clickhouse.engine import Engine
from tshop.services.clickhouse.http import ClickHouseHTTPServer


def _login(user_variable: str, default_user: str, password_variable: str) -> tuple[str, str]:
    password = os.environ.get(password_variable, "")
    if not password and user_variable != "TSHOP_CLICKHOUSE_USER":
        # a login without a password would let anyone in under its name: one nobody knows instead
        password = secrets.token_urlsafe(24)
    return os.environ.get(user_variable) or default_user, password


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    spool = arguments.data_dir / "tmp"
    spool.mkdir(parents=True, exist_ok=True)
    for leftover in spool.iterdir():  # insert data of requests a killed server never finished
        leftover.unlink(missing_ok=True)
    engine = Engine(str(arguments.data_dir / "engine"))
    known = logins(
        _login("TSHOP_CLICKHOUSE_USER", "default", "TSHOP_CLICKHOUSE_PASSWORD"),
        _login("TSHOP_CLICKHOUSE_WRITER_USER", "tshop_writer", "TSHOP_CLICKHOUSE_WRITER_PASSWORD"),
        _login("TSHOP_CLICKHOUSE_READER_USER", "tshop_reader", "TSHOP_CLICKHOUSE_READER_PASSWORD"),
    )
    server = ClickHouseHTTPServer((arguments.host, arguments.port), engine, known, spool)

    def shut_down(signum, frame) -> None:
        # shutdown() waits for serve_forever to return: call it from another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    logging.getLogger("tshop.clickhouse").info(
        "chDB %s serving ClickHouse HTTP on %s:%s", engine.version, arguments.host, arguments.port
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        logging.getLogger("tshop.clickhouse").info("stopped")


if __name__ == "__main__":
    main()
