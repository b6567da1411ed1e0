"""`dbt docs generate` works on a built warehouse, and every model, snapshot, source and column that exists in
the database is documented in YAML."""

from __future__ import annotations

import json

import pytest

from tshop.dbt import POSTGRES_PROJECT, run_dbt

pytestmark = pytest.mark.slow


def test_docs_generate_and_everything_built_is_documented(warehouse):
    warehouse.execute("insert into raw.customer values (1, 'Ann', 'Lee', '1990-05-10', '2024-01-01 10:00')")
    warehouse.execute(
        "insert into raw.product values (10, 'Oxford shirt', 'Shirts', 'M', 20, '2024-01-01 09:00')"
    )
    warehouse.execute(
        "insert into raw.sales values (100, 1000, '2024-01-02 12:00', 1, 10, 2, '2024-01-02 12:00')"
    )
    warehouse.build()
    run_dbt(warehouse.config, ["docs", "generate"])

    target = POSTGRES_PROJECT / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    undocumented = []
    for unique_id, node in {**catalog["nodes"], **catalog["sources"]}.items():
        documented = manifest["nodes"].get(unique_id) or manifest["sources"][unique_id]
        if not documented["description"].strip():
            undocumented.append(unique_id)
        for column in node["columns"]:
            described = documented["columns"].get(column.lower(), {}).get("description", "")
            if not described.strip() and not column.startswith("dbt_"):
                undocumented.append(f"{unique_id}.{column}")
    assert catalog["nodes"], "the catalog lists the built relations"
    assert undocumented == []
