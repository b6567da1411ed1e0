"""The local servers T-Shop starts itself when no external one is configured."""

from __future__ import annotations

from tshop.config import Settings
from tshop.services._process import ServiceError, ServiceStatus
from tshop.services.clickhouse import LocalClickHouse
from tshop.services.postgres import LocalPostgres

__all__ = ["ServiceError", "ServiceStatus", "LocalClickHouse", "LocalPostgres", "local_services"]


def local_services(config: Settings) -> list:
    """The services in start order (stop goes in reverse): PostgreSQL first, ClickHouse reads from it."""
    return [LocalPostgres(config), LocalClickHouse(config)]
