"""`tshop-datagen generate --to landing --encrypt-personal-data` (tshop/personal_data.py): the customer files and
the generator's own state hold the personal columns as envelopes, and decrypted they are the rows the
plaintext landing holds, also across runs that read the encrypted state back, compaction, and a run that
does not encrypt. No database: the files are read back with Polars."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import fsspec
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from datagen import ShopSimulation, landing
from datagen.cli import app
from datagen.errors import RecordUnreadable
from datagen.landing import LandingWriter
from datagen.memory import MemoryWriter
from datagen.shop_writer import SCHEMAS
from tshop.config import read_env_file
from tshop.personal_data import KEY_ID_VARIABLE, KEYS_VARIABLE, Keyring

START = dt.date(2024, 3, 4)  # a Monday


@pytest.fixture
def keys() -> Keyring:
    return Keyring({"k20261125a": os.urandom(32)}, "k20261125a")


@pytest.fixture(scope="module")
def reference() -> MemoryWriter:
    writer = MemoryWriter()
    ShopSimulation(writer, seed=5, initial_customers=3_000).run(START, 6)
    return writer


def simulate(writer: LandingWriter, days: int, start: dt.date = START) -> None:
    ShopSimulation(writer, seed=5, initial_customers=3_000).run(start, days)


def landed_customers(url: str, keys: Keyring) -> pl.DataFrame:
    """Every customer file's rows decrypted, per key the latest: what ingest would leave in RAW."""
    fs, root = fsspec.core.url_to_fs(url)
    frames = []
    for path in sorted(fs.find(f"{root}/incoming/customer")):
        with fs.open(path, "rb") as file:
            frames.append(pl.read_csv(file, infer_schema=False))
    rows = keys.decrypt(pl.concat(frames)).select(
        pl.col("customer_id").cast(pl.Int64),
        "first_name",
        "last_name",
        pl.col("birth_date").str.to_date("%Y-%m-%d"),
        pl.col("updated_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"),
    )
    return rows.sort("customer_id", "updated_at").unique("customer_id", keep="last", maintain_order=True)


def test_encrypted_days_over_runs_and_compaction_decrypt_to_the_plaintext_rows(
    tmp_path, keys, reference, monkeypatch
):
    """Each run after the first reads the encrypted state back (a renamed customer's first_name and
    birth_date come from it), and compaction rewrites it encrypted: decrypted, the files hold the rows of the
    shop in memory, and no file holds a name in plaintext."""
    monkeypatch.setattr(landing, "MAX_CUSTOMER_FILES", 2)
    url = (tmp_path / "landing").as_uri()
    simulate(LandingWriter(url, encrypt_with=keys), 2)
    for offset in range(2, 6):
        simulate(LandingWriter(url, encrypt_with=keys), 1, START + dt.timedelta(days=offset))
    assert sum(day["last_name_changes"] for day in reference.days.values()) > 0
    assert_frame_equal(landed_customers(url, keys), reference.rows("raw.customer"), check_exact=True)
    customer_file = next((tmp_path / "landing" / "incoming" / "customer").rglob("*.csv")).read_text()
    names = set(reference.rows("raw.customer")["last_name"])
    assert not names & set(customer_file.replace("\n", ",").split(","))
    state = sorted((tmp_path / "landing" / "_generator").glob("customer-*.parquet"))
    assert 1 <= len(state) <= 2
    for path in state:
        people = pl.read_parquet(path)
        assert people["first_name"].str.starts_with("enc:v1:k20261125a:").all()
        assert people["birth_date"].str.starts_with("enc:v1:k20261125a:").all()


def test_a_run_that_does_not_encrypt_reads_the_encrypted_state_with_the_installs_keys(
    tmp_path, keys, reference, monkeypatch
):
    monkeypatch.setenv(KEY_ID_VARIABLE, keys.current_id)
    monkeypatch.setenv(
        KEYS_VARIABLE, ",".join(f"{i}:{base64.urlsafe_b64encode(k).decode()}" for i, k in keys.keys.items())
    )
    url = (tmp_path / "landing").as_uri()
    simulate(LandingWriter(url, encrypt_with=keys), 3)
    simulate(LandingWriter(url), 2, START + dt.timedelta(days=3))  # plaintext days on encrypted state
    simulate(LandingWriter(url, encrypt_with=keys), 1, START + dt.timedelta(days=5))  # and back
    assert_frame_equal(landed_customers(url, keys), reference.rows("raw.customer"), check_exact=True)
    plain_day = tmp_path / "landing" / "_generator" / f"customer-{START + dt.timedelta(days=3)}.parquet"
    assert pl.read_parquet(plain_day).schema["birth_date"] == pl.Date


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_command_line_encrypts_with_a_key_made_in_the_installs_secrets_file(tmp_path, how):
    state, url = tmp_path / "state", (tmp_path / "landing").as_uri()
    env = {"TSHOP_STATE_DIR": str(state), KEY_ID_VARIABLE: None, KEYS_VARIABLE: None}
    arguments = ["generate", "--to", "landing", "--landing-url", url, "--customers", "300", "--days", "1"]
    arguments += ["--start-date", START.isoformat(), "--no-events"]
    if how == "option":
        arguments.append("--encrypt-personal-data")
    else:
        env["TSHOP_ENCRYPT_PERSONAL_DATA"] = "true"
    result = CliRunner().invoke(app, arguments, env=env)
    assert result.exit_code == 0, result.output
    key_id = read_env_file(state / "secrets.env")[KEY_ID_VARIABLE]
    [customer_file] = (tmp_path / "landing" / "incoming" / "customer").rglob("*.csv")
    landed = pl.read_csv(customer_file, infer_schema=False)
    assert landed.height >= 300  # the initial customers, and the day's new ones
    for column in ("first_name", "last_name", "birth_date"):
        assert landed[column].str.starts_with(f"enc:v1:{key_id}:").all()


def test_without_the_option_the_files_stay_plaintext_and_no_key_is_made(tmp_path):
    state, url = tmp_path / "state", (tmp_path / "landing").as_uri()
    env = {"TSHOP_STATE_DIR": str(state), "TSHOP_ENCRYPT_PERSONAL_DATA": None}
    arguments = ["generate", "--to", "landing", "--landing-url", url, "--customers", "300", "--days", "1"]
    result = CliRunner().invoke(app, [*arguments, "--start-date", START.isoformat(), "--no-events"], env=env)
    assert result.exit_code == 0, result.output
    assert not Path(state / "secrets.env").exists()
    [customer_file] = (tmp_path / "landing" / "incoming" / "customer").rglob("*.csv")
    landed = pl.read_csv(customer_file, infer_schema=False)
    assert not landed["first_name"].str.starts_with("enc:").any()
    assert landed.schema.names() == SCHEMAS["raw.customer"].names()


def test_encrypted_state_under_a_key_the_install_lacks_is_refused(tmp_path, keys, monkeypatch):
    """A renamed customer's full row needs the state's first_name and birth_date: without their key the day
    that needs them is refused (the command exits 1 without a traceback), and nothing of it is written."""
    url = (tmp_path / "landing").as_uri()
    simulate(LandingWriter(url, encrypt_with=keys), 1)
    monkeypatch.setenv(KEY_ID_VARIABLE, "")
    monkeypatch.setenv(KEYS_VARIABLE, "")
    monkeypatch.setenv("TSHOP_STATE_DIR", str(tmp_path / "other-install"))
    with pytest.raises(
        RecordUnreadable, match="under key k20261125a cannot be decrypted: the install has no key"
    ):
        simulate(LandingWriter(url), 5, START + dt.timedelta(days=1))
    state = json.loads((tmp_path / "landing" / "_generator" / "shop.json").read_text())
    landed_days = {path.name for path in (tmp_path / "landing" / "incoming" / "customer").iterdir()}
    assert state["writing"] is None and landed_days <= set(state["days"]) and len(state["days"]) < 6
