"""A local S3-compatible server: moto's standalone server (`python -m moto.server`), for the tests of an
`s3://` landing zone and for trying one out locally. Not part of `make services`: nothing in the pipeline
needs it unless TSHOP_LANDING_URL points at it.

It keeps its buckets in memory (a restart empties it), listens on TSHOP_S3_HOST:TSHOP_S3_PORT, and is
reached like any S3 service: by the standard AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_REGION, which `client_env()` gives (moto accepts any key pair; the secret is generated per install like
the other services' passwords, so none is written in the repository).
"""

from __future__ import annotations

import os
import socket
import sys

from tshop.config import Settings, settings
from tshop.services._process import ServiceError, ServiceStatus, wait_until
from tshop.services.background import BackgroundProcess

NAME = "s3"
ACCESS_KEY_ID = "tshop"
REGION = "eu-central-1"  # any but us-east-1, which S3 wants named by no location constraint


class LocalS3:
    """moto's S3 server in a background process of its own, with a pid file and a log."""

    def __init__(self, config: Settings | None = None):
        self.config = config or settings()
        self.process = BackgroundProcess(
            NAME,
            [
                sys.executable,
                "-m",
                "moto.server",
                "--host",
                self.config.s3_host,
                "--port",
                str(self.config.s3_port),
            ],
            self.config.state_dir / "s3",
            self.address,
            {**os.environ, "TZ": "UTC"},
        )

    @property
    def address(self) -> str:
        return f"{self.config.s3_host}:{self.config.s3_port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}"

    def client_env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (s3fs, boto3, the AWS CLI) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": self.config.secret("TSHOP_S3_SECRET_ACCESS_KEY"),
            "AWS_REGION": REGION,
        }

    def status(self) -> ServiceStatus:
        return self.process.status()

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.config.s3_host, self.config.s3_port), timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> ServiceStatus:
        """Start it unless it runs (in its own session, so it outlives the shell that started it)."""
        if self.status().state == "running":
            return self.status()
        self.process.refuse_busy_port("S3 server", self.config.s3_port, "TSHOP_S3_PORT")
        self.process.start()
        if not wait_until(
            lambda: self._answers() or self.status().state != "running", timeout=60, interval=0.1
        ):
            raise ServiceError(f"the S3 server did not answer on {self.address}; see {self.process.log_file}")
        if self.status().state != "running":
            log = self.process.log_file.read_text(errors="replace").splitlines()[-15:]
            raise ServiceError("the S3 server exited:\n" + "\n".join(log))
        return self.status()

    def stop(self) -> ServiceStatus:
        return self.process.stop()
