"""Encrypted personal data in the landing zone, end to end against the test PostgreSQL (tshop/personal_data.py):
the generator's `--encrypt-personal-data` files ingest to exactly the RAW rows of plaintext ones and show no
name or birth date; a tampered file, or one under a key the install lacks, is refused whole with its reason
in sl.landing_file, and nothing of it loads."""

from __future__ import annotations

import base64
import io
import logging
import os

import polars as pl
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from datagen.cli import app
from tshop.config import Settings, read_env_file, settings
from tshop.ingest import ingest
from tshop.ingest.run import IngestError
from tshop.personal_data import KEY_ID_VARIABLE, KEYS_VARIABLE, PARQUET_METADATA_KEY, Keyring

HEADER = "customer_id,first_name,last_name,birth_date,updated_at"
CUSTOMERS = pl.DataFrame(
    {
        "customer_id": [101, 102, 103],
        "first_name": ["Ann", "Björn", "Chidi"],
        "last_name": ["Lee", "Sørensen", "Okafor"],
        "birth_date": ["1990-05-01", "1985-01-02", "2000-12-31"],
        "updated_at": ["2024-03-05 10:00:00"] * 3,
    }
)
GENERATE = ["generate", "--to", "landing", "--customers", "2000", "--days", "3", "--seed", "7"]
GENERATE += ["--start-date", "2024-03-04", "--no-events"]


def key_env(keys: Keyring) -> dict[str, str]:
    """The variables that give an install `keys` (what an operator sets where the generator runs elsewhere)."""
    listed = ",".join(
        f"{key_id}:{base64.urlsafe_b64encode(key).decode()}" for key_id, key in keys.keys.items()
    )
    return {KEY_ID_VARIABLE: keys.current_id or "", KEYS_VARIABLE: listed}


def with_keys(config: Settings, keys: Keyring) -> Settings:
    return settings({**config.env, **key_env(keys)})


def encrypted_csv(keys: Keyring, frame: pl.DataFrame = CUSTOMERS) -> str:
    return keys.encrypt(frame.with_columns(pl.col("customer_id").cast(pl.Int64))).write_csv()


@pytest.fixture
def keys() -> Keyring:
    return Keyring({"k20261125a": os.urandom(32)}, "k20261125a")


def fresh_database(test_settings: Settings, pg_dsn: str, name: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return test_settings.pg_dsn(database=name)


def raw_customers(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select customer_id, first_name, last_name, birth_date, updated_at from raw.customer order by 1"
        ).fetchall()


def test_an_encrypted_landing_ingests_to_the_rows_of_a_plaintext_one_and_shows_no_name(
    test_settings, pg_dsn, tmp_path
):
    """The same seed generated twice, plaintext and `--encrypt-personal-data` (its key made on first use in
    the install's secrets file): RAW gets the same rows from both, and no field of an encrypted customer
    file, nor of the generator's state, is a name or birth date RAW holds."""
    state = tmp_path / "state"
    env = {"TSHOP_STATE_DIR": str(state), KEY_ID_VARIABLE: None, KEYS_VARIABLE: None}
    rows = {}
    for name in ("plain", "encrypted"):
        url = (tmp_path / name).as_uri()
        options = ["--encrypt-personal-data"] if name == "encrypted" else []
        result = CliRunner().invoke(app, [*GENERATE, "--landing-url", url, *options], env=env)
        assert result.exit_code == 0, result.output
        dsn = fresh_database(test_settings, pg_dsn, f"tshop_ingest_personal_{name}")
        # the install's keys as the generator made them; the ingest reads them from its environment
        made = read_env_file(state / "secrets.env")
        config = settings(
            {
                **test_settings.env,
                "TSHOP_PG_DSN": dsn,
                "TSHOP_LANDING_URL": url,
                **{variable: made.get(variable, "") for variable in (KEY_ID_VARIABLE, KEYS_VARIABLE)},
            }
        )
        report = ingest(config, f"personal-{name}")
        assert report.files and not report.rejected and not any(f.rows_rejected for f in report.files)
        rows[name] = raw_customers(dsn)
    assert rows["encrypted"] == rows["plain"] and len(rows["plain"]) > 2000

    key_id = read_env_file(state / "secrets.env")[KEY_ID_VARIABLE]
    secrets = {str(value) for row in rows["plain"] for value in row[1:4]}
    customer_files = sorted((tmp_path / "encrypted" / "incoming" / "customer").rglob("*.csv"))
    assert customer_files
    for path in customer_files:
        landed = pl.read_csv(path, infer_schema=False)
        for column in ("first_name", "last_name", "birth_date"):
            assert landed[column].str.starts_with(f"enc:v1:{key_id}:").all(), (path, column)
        fields = set(landed.drop("customer_id", "updated_at").unpivot()["value"].to_list())
        assert not fields & secrets, path
    for path in sorted((tmp_path / "encrypted" / "_generator").glob("customer-*.parquet")):
        people = pl.read_parquet(path)
        assert people["first_name"].str.starts_with("enc:v1:").all()
        assert people["birth_date"].str.starts_with("enc:v1:").all()
        assert pl.read_parquet_metadata(path)[PARQUET_METADATA_KEY] == key_id


def test_a_tampered_file_is_refused_whole_with_its_reason(config, landing, warehouse, keys, caplog):
    text = encrypted_csv(keys)
    lines = text.splitlines()
    envelope = lines[2].split(",")[2]  # line 2's last_name
    flipped = envelope[:-6] + ("A" if envelope[-6] != "A" else "B") + envelope[-5:]
    lines[2] = lines[2].replace(envelope, flipped)
    landing.drop("incoming/customer/2024-03-05/tampered.csv", "\n".join(lines) + "\n")
    landing.drop("incoming/customer/2024-03-06/good.csv", encrypted_csv(keys, CUSTOMERS[2:]))
    with caplog.at_level(logging.INFO, logger="tshop.ingest.run"):
        report = ingest(with_keys(config, keys), "tampered")

    [tampered, good] = report.files
    assert (tampered.status, good.status, good.rows_loaded) == ("rejected", "loaded", 1)
    reason = (
        "incoming/customer/2024-03-05/tampered.csv line 2: last_name under key k20261125a cannot be decrypted: "
        "it fails authentication (tampered, moved, or another key); nothing of the file loaded"
    )
    recorded = {row["file_path"]: row for row in warehouse.landing_files()}
    assert recorded["incoming/customer/2024-03-05/tampered.csv"]["status"] == "rejected"
    assert recorded["incoming/customer/2024-03-05/tampered.csv"]["error"] == reason
    assert recorded["incoming/customer/2024-03-05/tampered.csv"]["rows_loaded"] == 0
    assert any(reason in message for message in caplog.messages)
    # nothing of it loaded, not even its intact rows; no plaintext in the reason or the rejected rows
    assert [row[:3] for row in warehouse.rows("customer") if row[0] > 100] == [(103, "Chidi", "Okafor")]
    assert warehouse.rejected() == []
    assert not any(name in reason for name in ("Ann", "Björn", "Sørensen", "Lee"))


def test_a_file_under_a_key_the_install_lacks_is_refused(config, landing, warehouse, keys):
    landing.drop("incoming/customer/2024-03-05/elsewhere.csv", encrypted_csv(keys))
    other = Keyring({"k20260101a": os.urandom(32)}, "k20260101a")
    report = ingest(with_keys(config, other), "unknown-key")
    [refused] = report.files
    assert refused.status == "rejected"
    assert refused.error == (
        "incoming/customer/2024-03-05/elsewhere.csv line 1: first_name under key k20261125a cannot be "
        "decrypted: the install has no key of that id; nothing of the file loaded"
    )
    assert [row for row in warehouse.rows("customer") if row[0] > 100] == []
    # an install with no key at all refuses it the same way (nothing is made for a reader)
    landing.drop("incoming/customer/2024-03-06/elsewhere.csv", encrypted_csv(keys))
    without = settings(
        {**config.env, KEY_ID_VARIABLE: "", KEYS_VARIABLE: "", "TSHOP_STATE_DIR": str(landing.root)}
    )
    [again] = ingest(without, "no-key").files
    assert again.status == "rejected" and "the install has no key of that id" in again.error


def test_old_files_load_after_a_rotation_and_plaintext_values_still_load(config, landing, warehouse, keys):
    rotated = Keyring({**keys.keys, "k20261126a": os.urandom(32)}, "k20261126a")
    mixed = pl.concat(
        [
            pl.read_csv(io.StringIO(encrypted_csv(keys, CUSTOMERS[:1])), infer_schema=False),
            pl.read_csv(io.StringIO(encrypted_csv(rotated, CUSTOMERS[1:2])), infer_schema=False),
            # a plaintext row, as an outside system that does not encrypt writes it
            CUSTOMERS[2:].cast(pl.String),
        ]
    )
    landing.drop("incoming/customer/2024-03-05/mixed.csv", mixed.write_csv())
    [loaded] = ingest(with_keys(config, rotated), "rotated").files
    assert (loaded.status, loaded.rows_loaded) == ("loaded", 3)
    assert [row[:3] for row in warehouse.rows("customer") if row[0] > 100] == [
        (101, "Ann", "Lee"),
        (102, "Björn", "Sørensen"),
        (103, "Chidi", "Okafor"),
    ]


def test_a_broken_key_setting_stops_the_ingest_and_records_nothing(config, landing, warehouse, keys):
    landing.drop("incoming/customer/2024-03-05/customers.csv", encrypted_csv(keys))
    broken = settings({**config.env, KEY_ID_VARIABLE: "k1", KEYS_VARIABLE: "k1:tooshort"})
    with pytest.raises(IngestError, match="ingest cannot decrypt personal data: .*key k1 is not 32 bytes"):
        ingest(broken, "broken")
    assert warehouse.landing_files() == []  # the file is taken up again once the setting is fixed
    [loaded] = ingest(with_keys(config, keys), "fixed").files
    assert loaded.status == "loaded"
