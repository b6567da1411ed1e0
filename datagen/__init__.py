"""The T-Shop simulator: a clothing shop simulated day by day with Polars and mimesis, bulk-loaded into
PostgreSQL's RAW layer (`raw.customer`, `raw.product`, `raw.sales`).

Modules by concern: `vocabulary` (mimesis word pools), `customers`, `products`, `purchases`, `changes`
(what each makes and with which distributions), `simulation` (the day-by-day driver), `writer` (RAW's DDL
and the binary COPY loads), `cli` (the `tshop-datagen` command).
"""

from datagen.simulation import DayAlreadyLoaded, ShopSimulation

__all__ = ["DayAlreadyLoaded", "ShopSimulation"]
