"""The T-Shop simulator: a clothing shop simulated day by day with Polars and mimesis, bulk-loaded into
PostgreSQL's RAW layer (`raw.customer`, `raw.product`, `raw.sales`).

Modules by concern: `vocabulary` (mimesis word pools), `customers`, `products`, `purchases`, `changes`
(what each makes and with which distributions), `record` (the generator's own record of the shop),
`simulation` (the day-by-day driver), `writer` (RAW's DDL, the record's reads and writes, the binary COPY
loads), `errors` (what it refuses), `cli` (the `tshop-datagen` command).
"""

from datagen.errors import ArgumentsDiffer, DayAlreadyLoaded, DaysOutOfRange, Refused
from datagen.simulation import ShopSimulation

__all__ = ["ArgumentsDiffer", "DayAlreadyLoaded", "DaysOutOfRange", "Refused", "ShopSimulation"]
