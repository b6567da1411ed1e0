"""The T-Shop simulator: a clothing shop simulated day by day with Polars and mimesis, bulk-loaded into
PostgreSQL's RAW layer (`raw.customer`, `raw.product`, `raw.sales`) or written as files into the landing zone.

Modules by concern: `vocabulary` (mimesis word pools), `customers`, `products`, `purchases`, `changes`,
`events` (the web clickstream and reviews; what each makes and with which distributions), `record` (the
generator's own record of the shop), `simulation` (the day-by-day driver), `shop_writer` (the `ShopWriter`
protocol: where the days go), `writer` (RAW's DDL and `RawWriter`: the record's reads and writes, the binary
COPY loads; `pgbinary` encodes them), `landing` (`LandingWriter`: the days as CSV and Parquet files in the
landing zone; `LandingEventSink`: the events as JSON lines there), `memory` (`MemoryWriter`,
`MemoryEventSink`: the tables and events as frames, for tests), `errors` (what it refuses), `cli` (the
`tshop-datagen` command).
"""

from datagen.errors import ArgumentsDiffer, DayAlreadyLoaded, DaysOutOfRange, Refused
from datagen.simulation import ShopSimulation

__all__ = ["ArgumentsDiffer", "DayAlreadyLoaded", "DaysOutOfRange", "Refused", "ShopSimulation"]
