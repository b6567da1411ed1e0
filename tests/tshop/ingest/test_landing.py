"""The landing zone as a filesystem (no database): how an s3:// zone is reached, what a listing takes and
leaves, and that a missing local zone is made rather than refused."""

from __future__ import annotations

from tshop.config import settings
from tshop.ingest.landing import LandingZone, checksum


def test_s3_options_come_from_the_standard_aws_variables():
    config = settings(
        {
            "TSHOP_LANDING_URL": "s3://bucket/landing/",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "key",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION": "eu-central-1",
        }
    )
    assert config.landing_url == "s3://bucket/landing"
    options = config.landing_storage_options()
    assert (options["endpoint_url"], options["key"], options["secret"]) == (
        "http://127.0.0.1:9000",
        "key",
        "secret",
    )
    assert options["client_kwargs"] == {"region_name": "eu-central-1"}
    assert options["use_listings_cache"] is False
    assert settings({"TSHOP_LANDING_URL": "file:///tmp/x"}).landing_storage_options() == {}


def test_a_listing_takes_the_three_tables_files_in_path_order(tmp_path):
    for path in [
        "incoming/sales/2024-03-05/b.parquet",
        "incoming/customer/z.csv",
        "incoming/customer/2024/a.csv.gz",
        "incoming/customer/.writing.csv",
        "incoming/customer/_tmp/x.csv",
        "incoming/reviews/r.jsonl",
        "incoming/stock/s.csv",
        "incoming/loose.csv",
        "_generator/shop.json",
    ]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"12345")
    zone = LandingZone.open(settings({"TSHOP_LANDING_URL": tmp_path.as_uri()}))
    files = zone.files()
    assert [(f.path, f.table, f.size) for f in files] == [
        ("incoming/customer/2024/a.csv.gz", "customer", 5),
        ("incoming/customer/z.csv", "customer", 5),
        ("incoming/sales/2024-03-05/b.parquet", "sales", 5),
    ]
    assert checksum(zone.read(files[0])) == "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5"


def test_a_new_local_landing_zone_is_made_empty(tmp_path):
    zone = LandingZone.open(settings({"TSHOP_LANDING_URL": (tmp_path / "new").as_uri()}))
    assert zone.files() == []
    assert (tmp_path / "new" / "incoming").is_dir()
