"""Personal data in the landing zone: a customer's `first_name`, `last_name` and `birth_date` (CONTRACT.md
section 10) encrypted in the files the generator lands, and decrypted by `tshop ingest`.

**What is protected, from whom.** Someone who can read the landing zone (the bucket or folder, a copy of a
file, a backup of it) but not the install's secrets file sees no name and no birth date: only envelopes, each
AES-256-GCM encrypted. Anyone who has the secrets file (or the environment variables below) can decrypt
every value under its keys: the file is the install's, mode 0600, like its database passwords. Once
ingested, RAW, DDS and CDM hold the values in plaintext: there the database roles protect them (CONTRACT.md
section 10), not this module; `tshop forget-customer` erases them there. The key column, `updated_at`
and the other tables (products, sales, events) are not encrypted: a customer id is not personal data by
itself. GCM authenticates each value, so a changed byte, a value moved to another row or column, or a
value under a key the install lacks refuses its whole file; it does not make a file authentic (nor stop an
older value of the same customer and column from being landed again): ingest still
accepts a plaintext value (files from before encryption, outside systems that do not encrypt), so whoever
may write to the landing zone can still land rows. Writing there is the landing zone's permissions' job.

**Keys.** One per install, in the secrets file (`Settings.secrets_file`, `<state>/secrets.env`):

    TSHOP_PERSONAL_DATA_KEY_ID=k20261125a                     the key new values are encrypted under
    TSHOP_PERSONAL_DATA_KEYS=k20261125a:<base64url of 32 bytes>,k20250101a:...   every key that may decrypt

Environment variables of the same names override the file (each on its own, as `Settings.secret` does), for
an install whose generator runs elsewhere (Docker Compose): both sides then need the same keys. The first
encryption generates the key (`os.urandom(32)`) when there is none; `rotate_key` makes a new current key
and keeps the old ones, so files landed before still decrypt. A key id is in every value, so a file may mix
keys. Random 96-bit nonces keep a key safe for about 2^32 values (NIST SP 800-38D), far beyond a shop's
years of files; rotating resets the count.

**The envelope.** A value is `enc:v1:<key id>:<base64url(nonce 12 bytes || ciphertext || tag 16 bytes)>`,
with the padding. CSV has no place for a file's metadata, so each value carries its key id; a Parquet file
(the generator's state) carries the key id in its key-value metadata too, for a look with any Parquet
tool. The associated data `enc:v1:<key id>:<column>:<customer_id>` binds a value to its column and row: one
copied to another customer or column fails authentication. A null stays null (it is no personal data and
has nothing to hide). A nonce is drawn fresh for each value, so encrypted files are not byte-deterministic
for a seed (unencrypted ones still are), and equal names do not give equal envelopes.

**Speed.** cryptography's AESGCM (OpenSSL) does the cipher; Polars does everything around it in bulk
(spotting and splitting the envelopes, base64, the associated data, putting the values back), so the only
Python loop is `map` over one AESGCM call a value. That call is most of the cost: about 0.56 microseconds
of fixed cost each (the call into cryptography's Rust binding and its cipher context), against nanoseconds
of AES for a name, and it holds the GIL, so threads do not help. Measured on the 2-core development
machine: decrypting 1,000,000 customer rows (3,000,000 values) costs about 3.9 s of CPU (770,000 values/s;
4.6 s wall when the machine was quiet), encrypting about as much; a plaintext file costs a 0.1-0.2 s look
for envelopes, and no key is read.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fcntl
import os
import re
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tshop.config import Settings, _write_env_file, read_env_file
from tshop.errors import TShopError

KEY_ID_VARIABLE = "TSHOP_PERSONAL_DATA_KEY_ID"
KEYS_VARIABLE = "TSHOP_PERSONAL_DATA_KEYS"
# the personal columns of raw.customer, and its key, which the associated data binds each value to
COLUMNS = ("first_name", "last_name", "birth_date")
ROW_KEY = "customer_id"
# the Parquet key-value metadata entry naming the key id a file's values are under
PARQUET_METADATA_KEY = "tshop.personal_data.key_id"

VERSION = "v1"
PREFIX = f"enc:{VERSION}:"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")  # no ":" (the envelope's separator) nor "," (the list's)
# anything shaped like an envelope of any version is taken as one: a v2 value is refused, not loaded as a name
LOOKS_ENCRYPTED = r"^enc:v\d+:"


class PersonalDataError(TShopError):
    """Personal data cannot be encrypted or decrypted; the message says why, never a value or a key."""


class KeySettingError(PersonalDataError):
    """The install's key settings are unusable (a malformed key, a current id with no key): fix the setting."""


class DecryptionFailed(PersonalDataError):
    """A value cannot be decrypted: tampered, under a key the install lacks, or not a well-formed envelope."""

    def __init__(self, line: int | None, column: str, key_id: str | None, reason: str):
        self.line, self.column, self.key_id, self.reason = line, column, key_id, reason
        where = f"line {line}" if line is not None else "a row"
        under = f" under key {key_id}" if key_id else ""
        super().__init__(f"{where}: {column}{under} cannot be decrypted: {reason}")


@dataclass(frozen=True)
class Keyring:
    """The keys that may decrypt, by id, and the one new values are encrypted under (None: decrypt only)."""

    keys: Mapping[str, bytes] = field(default_factory=dict)
    current_id: str | None = None

    def __post_init__(self) -> None:
        if self.current_id is not None and self.current_id not in self.keys:
            raise KeySettingError(
                f"{KEY_ID_VARIABLE}={self.current_id} names no key of {KEYS_VARIABLE}: add the key, or name one "
                "of its ids"
            )

    def __repr__(self) -> str:  # never the key bytes, in a log or a traceback
        return f"Keyring(keys={sorted(self.keys)}, current_id={self.current_id!r})"

    # -- one value (tests, and whoever needs a single one) -------------------------------------------------
    def encrypt_value(self, value: str, column: str, row_key: int) -> str:
        frame = pl.DataFrame({ROW_KEY: [row_key], column: [value]})
        return self.encrypt(frame, [column])[column][0]

    def decrypt_value(self, value: str, column: str, row_key: int) -> str:
        frame = pl.DataFrame({ROW_KEY: [str(row_key)], column: [value]})
        return self.decrypt(frame, [column])[column][0]

    # -- frames -----------------------------------------------------------------------------------------
    def encrypt(
        self, frame: pl.DataFrame, columns: Iterable[str] = COLUMNS, key: str = ROW_KEY
    ) -> pl.DataFrame:
        """`frame` with each of `columns` (those it has) as envelopes under the current key; dates become
        `YYYY-MM-DD` text first. `key`: the integer row key the values are bound to."""
        if self.current_id is None:
            raise KeySettingError(f"no current key to encrypt with: set {KEY_ID_VARIABLE}")
        key_id, cipher = self.current_id, AESGCM(self.keys[self.current_id])
        encrypted = []
        for column in (column for column in columns if column in frame.columns):
            values = frame[column].cast(pl.String)  # a Date as YYYY-MM-DD
            present = values.is_not_null().arg_true()
            plain = values.gather(present).cast(pl.Binary).to_list()
            aads = _associated_data(key_id, column, frame[key].gather(present)).to_list()
            # a fresh random nonce per value, drawn in one call
            drawn = os.urandom(NONCE_BYTES * len(plain))
            nonces = [drawn[start : start + NONCE_BYTES] for start in range(0, len(drawn), NONCE_BYTES)]
            sealed = list(map(bytes.__add__, nonces, map(cipher.encrypt, nonces, plain, aads)))
            payload = (
                pl.Series(sealed, dtype=pl.Binary)
                .bin.encode("base64")
                .str.replace_all("+", "-", literal=True)
                .str.replace_all("/", "_", literal=True)
            )
            envelopes = (PREFIX + key_id + ":") + payload
            encrypted.append(pl.Series(column, [None] * frame.height, pl.String).scatter(present, envelopes))
        return frame.with_columns(encrypted)

    def decrypt(
        self,
        frame: pl.DataFrame,
        columns: Iterable[str] = COLUMNS,
        key: str = ROW_KEY,
        line: str | None = None,
    ) -> pl.DataFrame:
        """`frame` with the envelopes of `columns` decrypted to text; plaintext values (files from before
        encryption) pass unchanged, and so does a value whose row key is not an integer (the row's checks
        reject it, still encrypted). Raises `DecryptionFailed` at the first value that fails, naming its
        line (the `line` column's value, else the 1-based row) and its key id."""
        decrypted = []
        for column in (column for column in columns if column in frame.columns):
            if frame.schema[column] != pl.String:
                continue  # a typed column (a Parquet date) holds no envelope
            values = frame[column]
            looks = values.str.contains(LOOKS_ENCRYPTED).fill_null(False)
            row_keys = _row_keys(frame[key])
            targets = (looks & row_keys.is_not_null()).arg_true()
            if not len(targets):
                continue
            lines = frame[line].gather(targets) if line else targets + 1
            ids, sealed = _split(values.gather(targets))
            malformed = sealed.is_null() | (sealed.bin.size() < NONCE_BYTES + TAG_BYTES)
            if malformed.any():
                first = malformed.arg_true()[0]
                raise DecryptionFailed(
                    lines[first], column, None, f"not an {PREFIX}<key id>:<base64url> envelope"
                )
            unknown = ~ids.is_in(list(self.keys))
            if unknown.any():
                first = unknown.arg_true()[0]
                # an id the install lacks is named (to find the key); text that is no id is not repeated
                named = ids[first] if KEY_ID.fullmatch(ids[first]) else None
                raise DecryptionFailed(lines[first], column, named, "the install has no key of that id")
            aads = _associated_data(ids, column, row_keys.gather(targets))
            key_ids = ids.unique().to_list()
            if len(key_ids) == 1:  # the usual file: one key, no regrouping
                groups = [(key_ids[0], None)]
            else:
                groups = [(key_id, (ids == key_id).arg_true()) for key_id in key_ids]
            plain: list[bytes | None] = [None] * len(targets)
            for key_id, positions in groups:
                chosen = (
                    (sealed, aads)
                    if positions is None
                    else (sealed.gather(positions), aads.gather(positions))
                )
                opened = _open(AESGCM(self.keys[key_id]), *chosen)
                if isinstance(opened, int):  # the index of the first value that failed
                    first = opened if positions is None else positions[opened]
                    raise DecryptionFailed(
                        lines[first],
                        column,
                        key_id,
                        "it fails authentication (tampered, moved, or another key)",
                    )
                if positions is None:
                    plain = opened
                else:
                    for position, value in zip(positions.to_list(), opened):
                        plain[position] = value
            texts = _utf8(pl.Series(plain, dtype=pl.Binary), lines, column, ids)
            decrypted.append(values.clone().scatter(targets, texts))
        return frame.with_columns(decrypted)


def has_envelopes(frame: pl.DataFrame, columns: Iterable[str] = COLUMNS) -> bool:
    """Whether any of `columns` holds a value shaped like an envelope (of any version): a quick look, so
    that plaintext files need no keys."""
    texts = [column for column in columns if column in frame.columns and frame.schema[column] == pl.String]
    if not texts:
        return False
    return bool(frame.select(pl.any_horizontal(pl.col(texts).str.contains(LOOKS_ENCRYPTED).any())).item())


def _split(envelopes: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Each envelope's key id, and its sealed bytes (nonce, ciphertext, tag; null when the envelope is not a
    well-formed v1 one). Slicing at the first ":" after the prefix: a third of a regex's time."""
    body = pl.when(envelopes.str.starts_with(PREFIX)).then(envelopes.str.strip_prefix(PREFIX))
    parts = pl.select(body=body).select(at=pl.col("body").str.find(":", literal=True), body="body")
    split = parts.select(
        key_id=pl.col("body").str.slice(0, pl.col("at")),
        sealed=pl.when(pl.col("at").is_not_null())
        .then(pl.col("body").str.slice(pl.col("at") + 1))
        .str.replace_all("-", "+", literal=True)
        .str.replace_all("_", "/", literal=True)
        .str.decode("base64", strict=False),
    )
    return split["key_id"].fill_null(""), split["sealed"]


def _open(cipher: AESGCM, sealed: pl.Series, aads: pl.Series) -> list[bytes] | int:
    """Each value opened, or the index of the first that fails authentication. The tight loop is `map` over
    lists Polars made (nonces and ciphertexts split in bulk): one AESGCM call a value, no Python bytecode
    between them."""
    nonces, ciphertexts = sealed.bin.slice(0, NONCE_BYTES).to_list(), sealed.bin.slice(NONCE_BYTES).to_list()
    aad_list = aads.to_list()
    try:
        return list(map(cipher.decrypt, nonces, ciphertexts, aad_list))
    except InvalidTag:
        pass
    for index, arguments in enumerate(zip(nonces, ciphertexts, aad_list)):  # which one: only on failure
        try:
            cipher.decrypt(*arguments)
        except InvalidTag:
            return index
    raise AssertionError("a value failed authentication once and not again")  # pragma: no cover


def _associated_data(key_id: str | pl.Series, column: str, row_keys: pl.Series) -> pl.Series:
    """`enc:v1:<key id>:<column>:<row key>` as bytes, for each value: what binds a value to its place."""
    keys = row_keys.cast(pl.Int64).cast(pl.String)
    aad = pl.concat_str(pl.lit(PREFIX), pl.lit(key_id), pl.lit(f":{column}:"), pl.lit(keys))
    return pl.select(aad).to_series().cast(pl.Binary)


def _row_keys(keys: pl.Series) -> pl.Series:
    """The row key as an integer (null where it is none: that row is rejected by the checks anyway)."""
    if keys.dtype.is_integer():
        return keys.cast(pl.Int64)
    if keys.dtype.is_float():
        return pl.select(pl.when(keys == keys.floor()).then(keys.cast(pl.Int64, strict=False))).to_series()
    return keys.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)


def _utf8(values: pl.Series, lines: pl.Series, column: str, ids: pl.Series) -> pl.Series:
    try:
        return values.cast(pl.String)
    except pl.exceptions.ComputeError:
        # authentic, so written by a holder of the key; still no text for RAW. Rare: found one by one
        for index, value in enumerate(values.to_list()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise DecryptionFailed(
                    lines[index], column, ids[index], "its plaintext is not UTF-8"
                ) from None
        raise


# -- the install's keys --------------------------------------------------------------------------------------
def keyring(config: Settings) -> Keyring:
    """The install's keys as they are (nothing is generated): the environment's variables, else the secrets
    file's. An install without any key decrypts nothing (each envelope's key is unknown)."""
    return _parse(*_settings(config))


def keyring_for_encryption(config: Settings, today: dt.date | None = None) -> Keyring:
    """The install's keys with a current one: generated and kept in the secrets file on first need."""
    found = keyring(config)
    if found.current_id is not None:
        return found
    if config.env.get(KEYS_VARIABLE) or config.env.get(KEY_ID_VARIABLE):
        raise KeySettingError(
            f"{KEYS_VARIABLE} comes from the environment without a current key: set {KEY_ID_VARIABLE} too"
        )
    with _secrets_locked(config.secrets_file):
        found = keyring(config)  # another process may have made it meanwhile
        if found.current_id is None:
            found = _add_key(config, found, today)
    return found


def rotate_key(config: Settings, today: dt.date | None = None) -> Keyring:
    """A new current key, kept in the secrets file beside the old ones (which still decrypt what they
    encrypted). Drop an old key from TSHOP_PERSONAL_DATA_KEYS by hand only once no file needs it."""
    if config.env.get(KEYS_VARIABLE) or config.env.get(KEY_ID_VARIABLE):
        raise KeySettingError(
            f"the personal-data keys come from the environment ({KEYS_VARIABLE}, {KEY_ID_VARIABLE}): rotate "
            "them there"
        )
    with _secrets_locked(config.secrets_file):
        return _add_key(config, keyring(config), today)


def new_key_id(taken: Iterable[str], today: dt.date | None = None) -> str:
    """`k<YYYYMMDD><letters>`: the day it was made, and a suffix free among `taken` (a, b, ..., z, za, ...)."""
    day = (today or dt.datetime.now(dt.UTC).date()).strftime("%Y%m%d")
    taken, suffix = set(taken), "a"
    while f"k{day}{suffix}" in taken:
        suffix = suffix[:-1] + chr(ord(suffix[-1]) + 1) if suffix[-1] != "z" else suffix + "a"
    return f"k{day}{suffix}"


def _add_key(config: Settings, found: Keyring, today: dt.date | None) -> Keyring:
    key_id = new_key_id(found.keys, today)
    keys = {**found.keys, key_id: os.urandom(KEY_BYTES)}
    stored = read_env_file(config.secrets_file)
    stored[KEY_ID_VARIABLE] = key_id
    stored[KEYS_VARIABLE] = ",".join(f"{name}:{_b64(secret)}" for name, secret in keys.items())
    _write_env_file(config.secrets_file, stored)
    return Keyring(keys, key_id)


def _settings(config: Settings) -> tuple[str | None, str | None]:
    stored: dict[str, str] | None = None

    def value(name: str) -> str | None:
        nonlocal stored
        if config.env.get(name):
            return config.env[name]
        if stored is None:
            stored = read_env_file(config.secrets_file)
        return stored.get(name) or None

    return value(KEY_ID_VARIABLE), value(KEYS_VARIABLE)


def _parse(current_id: str | None, listed: str | None) -> Keyring:
    keys: dict[str, bytes] = {}
    for entry in (listed or "").split(","):
        if not entry.strip():
            continue
        key_id, _, encoded = entry.strip().partition(":")
        if not KEY_ID.fullmatch(key_id):
            raise KeySettingError(
                f"{KEYS_VARIABLE}: a key id must be 1-40 letters, digits, - or _: {key_id!r}"
            )
        try:
            secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) != KEY_BYTES:
            # the id, never the key
            raise KeySettingError(f"{KEYS_VARIABLE}: key {key_id} is not {KEY_BYTES} bytes in base64url")
        if key_id in keys:
            raise KeySettingError(f"{KEYS_VARIABLE}: key {key_id} is listed twice")
        keys[key_id] = secret
    return Keyring(keys, current_id.strip() if current_id else None)


def _b64(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode().rstrip("=")


@contextmanager
def _secrets_locked(path: Path):
    """Two processes making the first key at once (the hourly ingest, a generator) agree on one: a lock file
    beside the secrets file is held while it is read, changed and written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
