"""The three RAW tables the landing zone feeds (CONTRACT.md 1.1 and 7): their key, their columns in RAW's
order, and what kind of value each column holds, which decides how it is parsed and checked
(tshop/ingest/validate.py) and how it is staged for the merge (tshop/ingest/merge.py)."""

from __future__ import annotations

from dataclasses import dataclass

# kind -> the staging column's PostgreSQL type (what datagen.pgbinary encodes). A price is staged as whole
# cents in a bigint: exact, and binary COPY has no numeric encoder here; the merge turns it back into
# numeric(12,2).
STAGE_TYPES = {
    "bigint": "bigint",
    "text": "text",
    "name": "text",  # text that must not be blank
    "birth_date": "date",  # a date in the past
    "price": "bigint",  # numeric(12,2) > 0, staged as cents
    "quantity": "integer",  # integer > 0
    "timestamp": "timestamp",
    "updated_at": "timestamp",  # not more than 5 minutes past the database's clock
}

# the optional column that turns a row into a deletion of its key as of its updated_at
DELETED = "deleted"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str

    @property
    def stage_name(self) -> str:
        return "price_cents" if self.kind == "price" else self.name

    @property
    def stage_type(self) -> str:
        return STAGE_TYPES[self.kind]


@dataclass(frozen=True)
class TableSpec:
    name: str  # the landing zone's folder and raw.deleted_key's table_name: customer, product, sales
    key: str
    columns: tuple[Column, ...]  # RAW's contract columns in table order: the key first, updated_at last

    @property
    def raw_table(self) -> str:
        return f"raw.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def known_columns(self) -> set[str]:
        return {*self.column_names, DELETED}


TABLES: dict[str, TableSpec] = {
    "customer": TableSpec(
        "customer",
        "customer_id",
        (
            Column("customer_id", "bigint"),
            Column("first_name", "name"),
            Column("last_name", "name"),
            Column("birth_date", "birth_date"),
            Column("updated_at", "updated_at"),
        ),
    ),
    "product": TableSpec(
        "product",
        "product_id",
        (
            Column("product_id", "bigint"),
            Column("name", "text"),
            Column("category", "text"),
            Column("size", "text"),
            Column("price", "price"),
            Column("updated_at", "updated_at"),
        ),
    ),
    "sales": TableSpec(
        "sales",
        "sale_id",
        (
            Column("sale_id", "bigint"),
            Column("order_id", "bigint"),
            Column("sold_at", "timestamp"),
            Column("customer_id", "bigint"),
            Column("product_id", "bigint"),
            Column("quantity", "quantity"),
            Column("updated_at", "updated_at"),
        ),
    ),
}

# folders under incoming/ that belong to the events' ingest (CONTRACT.md section 8), not to this one
EVENT_FOLDERS = ("clickstream", "reviews")
