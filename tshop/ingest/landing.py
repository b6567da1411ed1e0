"""The landing zone as a filesystem: where it is, which files are waiting in it, and their bytes.

fsspec (`fsspec.core.url_to_fs`) gives one interface over `file://` and `s3://` (s3fs), so the same code
lists and reads a local folder and a bucket. A file is read whole into memory once: its sha256 and the rows
the readers parse come from the same bytes, so what `sl.landing_file` says was loaded is what was loaded,
even when a source system replaces the file meanwhile.

Layout: `<landing>/incoming/<table>/**/<file>`, `<table>` one of customer, product, sales (RAW's ingest) or
clickstream, reviews (the events' load, `tshop.ingest.events`). Names starting with `.` or `_` are not files to ingest (a file still
being written under a temporary name, Spark's `_SUCCESS`), nor is any folder so named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tshop.config import Settings
from tshop.errors import TShopError
from tshop.ingest.tables import TABLES

INCOMING = "incoming"


class LandingUnreachable(TShopError):
    """The landing zone cannot be listed or read (wrong URL, missing bucket, server down, credentials)."""


@dataclass(frozen=True)
class LandedFile:
    path: str  # relative to the landing URL: incoming/<table>/...
    table: str
    size: int
    # what the listing says of this version of the file: its modification time (local) or ETag (S3); a file
    # listed with the path, size and stamp of one already ingested is not read again (see `stamp`)
    stamp: str | None = None


@dataclass(frozen=True)
class LandingZone:
    url: str
    fs: fsspec.AbstractFileSystem
    root: str  # the landing URL's path in `fs`

    @classmethod
    def open(cls, config: Settings) -> LandingZone:
        url = config.landing_url
        try:
            fs, root = fsspec.core.url_to_fs(url, **config.landing_storage_options())
        except (ImportError, ValueError) as error:
            # an unknown scheme, or one whose fsspec implementation is not installed
            raise LandingUnreachable(f"TSHOP_LANDING_URL={_redact(url)} cannot be opened: {error}") from None
        return cls(url, fs, root.rstrip("/"))

    def files(self, folders: Collection[str] = TABLES) -> list[LandedFile]:
        """The files waiting under incoming/<folder>/ for the given folders (the three RAW tables' by
        default), in path order."""
        incoming = f"{self.root}/{INCOMING}"
        try:
            if isinstance(self.fs, LocalFileSystem):
                # a new install: the folder a source system drops into exists from the first ingest on
                self.fs.makedirs(incoming, exist_ok=True)
            else:
                self.fs.invalidate_cache()
                # a missing bucket answers a listing with nothing on some stores: ask for the bucket itself
                self.fs.ls(self.root.split("/", 1)[0], detail=False)
            found = self.fs.find(incoming, detail=True)
        except Exception as error:  # s3fs and botocore raise many kinds; any of them means unreachable
            raise LandingUnreachable(
                f"cannot list the landing zone {_redact(self.url)}: {type(error).__name__}: {error}"
            ) from error
        files = []
        for name, info in found.items():
            if info.get("type", "file") != "file":
                continue
            relative = name[len(self.root) + 1 :] if name.startswith(self.root + "/") else name
            parts = relative.split("/")
            if len(parts) < 3 or parts[1] not in folders:
                continue  # another reader's folder, or a folder of no table
            if any(part.startswith((".", "_")) for part in parts[2:]):
                continue
            files.append(LandedFile(relative, parts[1], int(info.get("size") or 0), stamp(info)))
        return sorted(files, key=lambda landed: landed.path)

    def path_of(self, landed: LandedFile) -> str:
        """The file's path in the filesystem: the absolute path of a local file, `bucket/key` on S3 (what
        ClickHouse's file() and s3() call `_path`)."""
        return f"{self.root}/{landed.path}"

    def read(self, landed: LandedFile) -> bytes | None:
        """The file's bytes; None when it vanished since it was listed."""
        try:
            return self.fs.cat_file(self.path_of(landed))
        except FileNotFoundError:
            return None
        except Exception as error:
            raise LandingUnreachable(
                f"cannot read {landed.path} from the landing zone {_redact(self.url)}: "
                f"{type(error).__name__}: {error}"
            ) from error


def stamp(info: dict) -> str | None:
    """The listing's mark of a file's version: S3's ETag (a hash of the content), else the modification time
    as the filesystem reports it; None when the listing gives neither. Only a shortcut past reading a file
    again: a file whose stamp is new is read and known by its sha256 as before."""
    for name in ("ETag", "etag"):
        if info.get(name):
            return "etag:" + str(info[name]).strip('"')
    for name in ("mtime", "LastModified", "last_modified"):
        if info.get(name) is not None:
            value = info[name]
            mark = "mtime:" + (value.isoformat() if hasattr(value, "isoformat") else repr(value))
            # a file renamed into place is a new inode, whatever the clock's granularity
            return mark + (f":ino:{info['ino']}" if info.get("ino") is not None else "")
    return None


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _redact(url: str) -> str:
    """The URL without a password it might carry (user:secret@host)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@', 1)[-1]}" if "@" in rest.split("/", 1)[0] else url
