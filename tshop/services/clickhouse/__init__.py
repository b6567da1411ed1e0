"""The local ClickHouse: the chDB engine (ClickHouse as a library) served over ClickHouse's own HTTP
interface, so clickhouse-connect, dbt-clickhouse, Superset and curl talk to it unchanged.

Modules: `sql` (where an INSERT's data starts, which FORMAT a query asks for, one statement or more),
`engine` (the chDB data directory, connections and sessions), `body` (request bodies, de-chunked and
decompressed a bounded piece at a time), `http` (the HTTP interface), `service` (start/stop/status),
`__main__` (the server process).
"""

from tshop.services.clickhouse.service import LocalClickHouse

__all__ = ["LocalClickHouse"]
