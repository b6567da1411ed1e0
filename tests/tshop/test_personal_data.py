"""The personal-data cipher and keys (tshop/personal_data.py), without a database: a value's round trip, the
associated data that binds it to its row and column, a tampered byte, a wrong key, an unknown key id, a
malformed envelope, and keys made, read and rotated in an install's secrets file."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat

import polars as pl
import pytest

from tshop import personal_data
from tshop.config import read_env_file, settings
from tshop.personal_data import (
    KEY_ID_VARIABLE,
    KEYS_VARIABLE,
    DecryptionFailed,
    Keyring,
    KeySettingError,
    has_envelopes,
    keyring,
    keyring_for_encryption,
    rotate_key,
)

DAY = dt.date(2026, 11, 25)


@pytest.fixture
def keys() -> Keyring:
    return Keyring({"k1": os.urandom(32)}, "k1")


@pytest.fixture
def install(tmp_path):
    """An install's settings with a state folder of its own (its secrets file) and no key variables."""
    env = {name: value for name, value in os.environ.items() if name not in (KEY_ID_VARIABLE, KEYS_VARIABLE)}
    return settings({**env, "TSHOP_STATE_DIR": str(tmp_path / "state")})


def customers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "first_name": ["Ann", None, "Zoë"],
            "last_name": ["Lee", "Ortiz", "Ünal"],
            "birth_date": [dt.date(1990, 5, 1), dt.date(1985, 1, 2), None],
            "updated_at": [dt.datetime(2024, 3, 5, 10)] * 3,
        }
    )


def as_read(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as ingest reads a CSV: every column text, with the line column."""
    return frame.with_columns(pl.all().cast(pl.String)).with_row_index("line", offset=1)


def test_a_frame_round_trips_and_its_files_show_no_plaintext(keys):
    frame = customers()
    encrypted = keys.encrypt(frame)
    assert encrypted["customer_id"].equals(frame["customer_id"])
    assert encrypted["updated_at"].equals(frame["updated_at"])
    for column in personal_data.COLUMNS:
        values = encrypted[column]
        # a null stays null; every other value is an envelope under the current key
        assert values.is_null().to_list() == frame[column].is_null().to_list()
        assert all(value.startswith("enc:v1:k1:") for value in values.drop_nulls())
    text = encrypted.write_csv()
    assert not any(word in text for word in ["Ann", "Lee", "Zoë", "Ortiz", "1990-05-01"])
    decrypted = keys.decrypt(as_read(encrypted), line="line")
    assert decrypted.drop("line").to_dicts() == as_read(frame).drop("line").to_dicts()


def test_equal_values_give_different_envelopes(keys):
    """A fresh nonce per value: equal names are not equal in the file (nor is a file byte-deterministic)."""
    first, second = keys.encrypt_value("Ann", "first_name", 1), keys.encrypt_value("Ann", "first_name", 1)
    assert first != second
    assert keys.decrypt_value(first, "first_name", 1) == keys.decrypt_value(second, "first_name", 1) == "Ann"


def test_plaintext_values_pass_unchanged_and_need_no_key():
    frame = as_read(customers())
    assert not has_envelopes(frame)
    assert Keyring().decrypt(frame, line="line").equals(frame)


@pytest.mark.parametrize(
    ("column", "row_key"),
    [("first_name", 2), ("last_name", 1)],
    ids=["another row", "another column"],
)
def test_a_value_moved_to_another_row_or_column_fails_authentication(keys, column, row_key):
    envelope = keys.encrypt_value("Ann", "first_name", 1)
    with pytest.raises(DecryptionFailed, match="fails authentication") as failed:
        keys.decrypt_value(envelope, column, row_key)
    assert (failed.value.column, failed.value.key_id) == (column, "k1")


def test_a_tampered_byte_refuses_with_the_line_column_and_key_id_and_no_plaintext(keys):
    encrypted = as_read(keys.encrypt(customers()))
    envelope = encrypted["last_name"][1]
    sealed = bytearray(base64.urlsafe_b64decode(envelope.rsplit(":", 1)[1]))
    sealed[-1] ^= 0x01  # one bit of the tag
    tampered = envelope.rsplit(":", 1)[0] + ":" + base64.urlsafe_b64encode(bytes(sealed)).decode()
    frame = encrypted.with_columns(encrypted["last_name"].clone().scatter(1, tampered))
    with pytest.raises(DecryptionFailed) as failed:
        keys.decrypt(frame, line="line")
    assert (failed.value.line, failed.value.column, failed.value.key_id) == (2, "last_name", "k1")
    assert str(failed.value) == (
        "line 2: last_name under key k1 cannot be decrypted: it fails authentication (tampered, moved, or "
        "another key)"
    )
    assert "Ortiz" not in str(failed.value)


def test_a_wrong_key_under_the_same_id_fails_authentication(keys):
    envelope = keys.encrypt_value("Ann", "first_name", 1)
    wrong = Keyring({"k1": os.urandom(32)}, "k1")
    with pytest.raises(DecryptionFailed, match="line 1: first_name under key k1 .* fails authentication"):
        wrong.decrypt_value(envelope, "first_name", 1)


def test_an_unknown_key_id_is_named(keys):
    envelope = keys.encrypt_value("Ann", "first_name", 1)
    other = Keyring({"k2": os.urandom(32)}, "k2")
    with pytest.raises(DecryptionFailed, match="under key k1 cannot be decrypted: the install has no key"):
        other.decrypt_value(envelope, "first_name", 1)
    with pytest.raises(DecryptionFailed, match="the install has no key"):
        Keyring().decrypt_value(envelope, "first_name", 1)


@pytest.mark.parametrize(
    "value",
    [
        "enc:v1:k1:not base64!",
        "enc:v1:k1:" + base64.urlsafe_b64encode(b"too short").decode(),
        "enc:v1:k1",
        "enc:v2:k1:AAAA",
    ],
    ids=["not base64", "too short", "no payload", "another version"],
)
def test_a_malformed_envelope_is_refused(keys, value):
    with pytest.raises(DecryptionFailed, match="line 1: first_name cannot be decrypted: not an enc:v1:"):
        keys.decrypt_value(value, "first_name", 1)


def test_a_value_of_a_row_without_an_integer_key_is_left_for_the_checks(keys):
    """The row's own checks reject it (customer_id is not an integer); it stays encrypted there."""
    envelope = keys.encrypt_value("Ann", "first_name", 1)
    frame = pl.DataFrame({"customer_id": ["x"], "first_name": [envelope]})
    assert keys.decrypt(frame)["first_name"][0] == envelope


def test_a_file_may_mix_keys(keys):
    other = Keyring({**keys.keys, "k2": os.urandom(32)}, "k2")
    frame = pl.concat([keys.encrypt(customers()[:2]), other.encrypt(customers()[2:])])
    assert other.decrypt(as_read(frame), line="line").drop("line").equals(as_read(customers()).drop("line"))


def test_the_first_encryption_makes_a_key_in_the_secrets_file_and_keeps_it(install):
    assert keyring(install) == Keyring()  # nothing is made for a reader
    assert not install.secrets_file.exists()
    made = keyring_for_encryption(install, today=DAY)
    assert made.current_id == "k20261125a" and len(made.keys["k20261125a"]) == 32
    stored = read_env_file(install.secrets_file)
    assert stored[KEY_ID_VARIABLE] == "k20261125a"
    assert stored[KEYS_VARIABLE].startswith("k20261125a:")
    assert stat.S_IMODE(install.secrets_file.stat().st_mode) == 0o600
    assert keyring_for_encryption(install, today=DAY + dt.timedelta(days=1)) == made  # kept, not made again
    assert keyring(install) == made
    assert "keys=['k20261125a']" in repr(made) and stored[KEYS_VARIABLE].split(":")[1] not in repr(made)


def test_files_encrypted_before_a_rotation_still_decrypt_after_it(install):
    before = keyring_for_encryption(install, today=DAY)
    old = before.encrypt(customers())
    after = rotate_key(install, today=DAY)
    assert after.current_id == "k20261125b" and set(after.keys) == {"k20261125a", "k20261125b"}
    assert keyring(install) == after
    new = after.encrypt(customers())
    assert new["first_name"][0].startswith("enc:v1:k20261125b:")
    for frame in (old, new):
        assert keyring(install).decrypt(as_read(frame)).drop("line").equals(as_read(customers()).drop("line"))


def test_the_command_rotates_and_prints_ids_never_a_key(install):
    from typer.testing import CliRunner

    from tshop.cli import app

    before = keyring_for_encryption(install)
    result = CliRunner().invoke(app, ["rotate-personal-data-key"], env=install.env)
    assert result.exit_code == 0, result.output
    after = keyring(install)
    assert set(after.keys) == {before.current_id, after.current_id} and after.current_id != before.current_id
    assert f"new current key {after.current_id}" in result.output
    for secret in after.keys.values():
        assert base64.urlsafe_b64encode(secret).decode().rstrip("=") not in result.output
    refused = CliRunner().invoke(
        app, ["rotate-personal-data-key"], env={**install.env, KEY_ID_VARIABLE: "ops1"}
    )
    assert refused.exit_code == 1 and "rotate them there" in refused.output


def test_the_environment_overrides_the_secrets_file(install):
    keyring_for_encryption(install, today=DAY)
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    env = {**install.env, KEY_ID_VARIABLE: "ops1", KEYS_VARIABLE: f"ops1:{secret}"}
    overridden = keyring(settings(env))
    assert overridden.current_id == "ops1" and set(overridden.keys) == {"ops1"}
    with pytest.raises(KeySettingError, match="rotate them there"):
        rotate_key(settings(env))


@pytest.mark.parametrize(
    ("key_id", "keys", "says"),
    [
        ("k1", "k1:" + base64.urlsafe_b64encode(b"short").decode(), "key k1 is not 32 bytes"),
        ("k1", "k1:!!!", "key k1 is not 32 bytes"),
        (
            "k9",
            "k1:" + base64.urlsafe_b64encode(bytes(32)).decode(),
            "TSHOP_PERSONAL_DATA_KEY_ID=k9 names no key",
        ),
        ("k1", "k/1:" + base64.urlsafe_b64encode(bytes(32)).decode(), "a key id must be"),
    ],
    ids=["short key", "not base64", "current id without a key", "bad id"],
)
def test_a_broken_key_setting_is_refused_naming_the_variable_never_the_key(install, key_id, keys, says):
    with pytest.raises(KeySettingError, match=says) as refused:
        keyring(settings({**install.env, KEY_ID_VARIABLE: key_id, KEYS_VARIABLE: keys}))
    assert keys.rsplit(":", 1)[1] not in str(refused.value)
