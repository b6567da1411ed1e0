"""An `s3://` landing zone, against the local S3-compatible server (moto's, started once per session by the
`s3_env` fixture): the same ingest as from a folder, with the endpoint and credentials taken from the
standard AWS_* variables."""

from __future__ import annotations

import datetime as dt
import uuid

import fsspec
import polars as pl
import pytest

from tshop.config import settings
from tshop.ingest import IngestError, ingest


@pytest.fixture
def s3_landing(test_settings, ingest_dsn, s3_env):
    """(config, filesystem, root): a new bucket, its `zone/` prefix as the landing URL."""
    bucket = f"landing-{uuid.uuid4().hex[:12]}"
    config = settings(
        {
            **test_settings.env,
            **s3_env,
            "TSHOP_PG_DSN": ingest_dsn,
            "TSHOP_LANDING_URL": f"s3://{bucket}/zone",
        }
    )
    fs, root = fsspec.core.url_to_fs(config.landing_url, **config.landing_storage_options())
    fs.mkdir(bucket)
    return config, fs, root


def test_an_s3_landing_zone_is_ingested_like_a_folder(s3_landing, landing, warehouse):
    """Kept: a Parquet file of sales and a gzip'd CSV of customers from the bucket (a bad row refused). Skipped:
    both on the next ingest. Ingested again: the object overwritten with new bytes."""
    config, fs, root = s3_landing
    sales = pl.DataFrame(
        {
            "sale_id": [100, 101],
            "order_id": [7, 7],
            "sold_at": [dt.datetime(2024, 3, 5, 9)] * 2,
            "customer_id": [100, 100],
            "product_id": [1, 2],
            "quantity": [1, 2],
            "updated_at": [dt.datetime(2024, 3, 5, 9)] * 2,
        }
    )
    fs.pipe_file(f"{root}/incoming/sales/2024-03-05/sales.parquet", landing.parquet(sales))
    customers = landing.csv(
        "customer_id,first_name,last_name,birth_date,updated_at",
        "100,Ann,Lee,1990-05-01,2024-03-05 09:00:00",
        "101,,Ray,1990-05-01,2024-03-05 09:00:00",
    )
    fs.pipe_file(f"{root}/incoming/customer/2024-03-05/customers.csv.gz", landing.gzip(customers))
    fs.pipe_file(f"{root}/incoming/reviews/r.jsonl", b'{"review_id": 1}\n')
    first = ingest(config, "s3-1")
    assert [(f.path, f.status, f.rows_loaded, f.rows_rejected) for f in first.files] == [
        ("incoming/customer/2024-03-05/customers.csv.gz", "loaded", 1, 1),
        ("incoming/sales/2024-03-05/sales.parquet", "loaded", 2, 0),
    ]
    assert [row[0] for row in warehouse.rows("sales")] == [1, 2, 3, 100, 101]
    assert warehouse.rejected()[0][3] == "first_name is missing"
    again = ingest(config, "s3-2")
    assert (again.files, again.skipped) == ([], 2)
    fs.pipe_file(
        f"{root}/incoming/sales/2024-03-05/sales.parquet",
        landing.parquet(sales.with_columns(quantity=pl.lit(5), updated_at=pl.lit(dt.datetime(2024, 3, 6)))),
    )
    third = ingest(config, "s3-3")
    assert [(f.path, f.rows_loaded) for f in third.files] == [("incoming/sales/2024-03-05/sales.parquet", 2)]
    assert warehouse.query("select sum(quantity) from raw.sales where sale_id >= 100") == [(10,)]


def test_a_missing_bucket_fails_the_ingest(test_settings, ingest_dsn, s3_env, warehouse):
    """Refused: an ingest whose landing zone cannot be listed (no such bucket), with a clear message."""
    config = settings(
        {
            **test_settings.env,
            **s3_env,
            "TSHOP_PG_DSN": ingest_dsn,
            "TSHOP_LANDING_URL": "s3://no-such-bucket/x",
        }
    )
    with pytest.raises(IngestError, match=r"cannot list the landing zone s3://no-such-bucket/x"):
        ingest(config)
    assert warehouse.landing_files() == []
