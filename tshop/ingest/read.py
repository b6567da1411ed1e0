"""A landed file's bytes as a Polars frame, by its extension (CONTRACT.md section 7).

- `.csv`, `.csv.gz`: UTF-8, a header row, comma, RFC 4180 quoting, an empty field is null. Every column is
  read as text, so one bad value becomes one rejected row (tshop/ingest/validate.py) rather than a failed
  file. Polars reads the file in bulk; when it cannot (a row with more fields than the header), the file is
  read again row by row with Python's csv module, and each such row is rejected with its line number.
- `.jsonl`, `.jsonl.gz`: one JSON object per line, read in bulk by Polars (values keep their JSON types);
  when a line is not a JSON object, row by row again, each bad line rejected.
- `.parquet`: read by Polars with its own types.

Column names are matched without case and surrounding white space (a byte-order mark too). The frame gets
a `LINE` column: the 1-based data row (the header is not counted, nor blank lines). A file that is not its
format at all (a truncated gzip, a corrupt Parquet file, 0 bytes, not UTF-8), names a column twice, or lacks
its table's key column raises `FileRejected`: nothing of it loads.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field

import polars as pl

from tshop.ingest.tables import TableSpec

FORMATS = (".csv.gz", ".csv", ".jsonl.gz", ".jsonl", ".parquet")
LINE = "__line_number"  # the data row, 1-based (a name no source column is expected to have)


class FileRejected(Exception):
    """The whole file is rejected; the message is sl.landing_file.error."""


@dataclass
class ReadResult:
    frame: pl.DataFrame  # normalised column names, plus LINE
    # rows that could not even be split into fields: (line, reason, row_data as JSON text)
    broken_rows: list[tuple[int, str, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def format_of(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1].lower()
    return next((fmt for fmt in FORMATS if name.endswith(fmt)), None)


def read_file(data: bytes, path: str, spec: TableSpec) -> ReadResult:
    fmt = format_of(path)
    if fmt is None:
        raise FileRejected(f"not a landing format: the name must end in one of {', '.join(FORMATS)}")
    if not data:
        raise FileRejected("the file is empty (0 bytes)")
    if fmt.endswith(".gz"):
        data = _gunzip(data)
    if fmt.startswith(".csv"):
        result = _read_csv(data)
    elif fmt.startswith(".jsonl"):
        result = _read_jsonl(data)
    else:
        result = _read_parquet(data)
    result.frame = _normalise_columns(result.frame)
    if spec.key not in result.frame.columns:
        raise FileRejected(f"the file has no {spec.key} column (the key of raw.{spec.name}): nothing loaded")
    result.ignored_columns = [
        column for column in result.frame.columns if column != LINE and column not in spec.known_columns
    ]
    return result


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise FileRejected(f"not a readable gzip file: {error}") from None


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FileRejected(f"not UTF-8 text: {error}") from None


# -- CSV -----------------------------------------------------------------------------------------------------
def _read_csv(data: bytes) -> ReadResult:
    try:
        frame = pl.read_csv(
            io.BytesIO(data),
            infer_schema=False,
            has_header=True,
            separator=",",
            quote_char='"',
            raise_if_empty=True,
        )
    except pl.exceptions.NoDataError:
        raise FileRejected("the file holds no header row") from None
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        return _read_csv_by_row(_utf8(data))
    _refuse_duplicated(frame.columns)
    return ReadResult(frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64)))


def _read_csv_by_row(text: str) -> ReadResult:
    """The slow path: Python's csv module, one row at a time, rejecting rows with more fields than the
    header (a row with fewer gets nulls, as in the bulk path)."""
    csv.field_size_limit(1 << 30)
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows)
        columns: dict[str, list[str | None]] = {name: [] for name in header}
        if len(columns) < len(header):
            raise FileRejected(f"a column is named twice in the header: {header}")
        lines: list[int] = []
        broken: list[tuple[int, str, str]] = []
        line = 0
        for row in rows:
            if not row:
                continue
            line += 1
            if len(row) > len(header):
                reason = f"the row has {len(row)} fields; the header has {len(header)}"
                broken.append((line, reason, json.dumps({"fields": row})))
                continue
            lines.append(line)
            for name, value in zip(header, row + [None] * (len(header) - len(row))):
                columns[name].append(value if value != "" else None)
    except StopIteration:
        raise FileRejected("the file holds no header row") from None
    except csv.Error as error:
        raise FileRejected(f"not readable as CSV: {error}") from None
    frame = pl.DataFrame(
        {LINE: lines, **columns}, schema={LINE: pl.Int64, **dict.fromkeys(columns, pl.String)}
    )
    return ReadResult(frame, broken)


def _refuse_duplicated(columns: list[str]) -> None:
    # Polars renames a repeated header name `<name>_duplicated_<n>`
    for column in columns:
        match = re.fullmatch(r"(.*)_duplicated_\d+", column)
        if match and match.group(1) in columns:
            raise FileRejected(f"the column {match.group(1)!r} is named twice in the header")


# -- JSON lines ----------------------------------------------------------------------------------------------
def _read_jsonl(data: bytes) -> ReadResult:
    if not data.strip():
        return ReadResult(pl.DataFrame(schema={LINE: pl.Int64}))
    try:
        frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        return _read_jsonl_by_line(_utf8(data))
    return ReadResult(frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64)))


def _read_jsonl_by_line(text: str) -> ReadResult:
    """The slow path: each non-blank line on its own; one that is not a JSON object is a broken row. Values
    become text (JSON for arrays and objects) and are parsed like CSV's."""
    records: list[dict] = []
    lines: list[int] = []
    broken: list[tuple[int, str, str]] = []
    line = 0
    for raw_line in text.splitlines():
        if not raw_line.strip():
            continue
        line += 1
        try:
            record = json.loads(raw_line)
        except ValueError as error:
            broken.append((line, f"not valid JSON: {error}", json.dumps({"line": raw_line})))
            continue
        if not isinstance(record, dict):
            broken.append((line, "not a JSON object", json.dumps({"line": raw_line})))
            continue
        lines.append(line)
        records.append(record)
    names = list(dict.fromkeys(name for record in records for name in record))
    columns = {name: [_as_text(record.get(name)) for record in records] for name in names}
    frame = pl.DataFrame({LINE: lines, **columns}, schema={LINE: pl.Int64, **dict.fromkeys(names, pl.String)})
    return ReadResult(frame, broken)


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


# -- Parquet -------------------------------------------------------------------------------------------------
def _read_parquet(data: bytes) -> ReadResult:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as error:
        raise FileRejected(f"not a readable Parquet file: {error}") from None
    return ReadResult(frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64)))


# -- column names --------------------------------------------------------------------------------------------
def _normalise_columns(frame: pl.DataFrame) -> pl.DataFrame:
    names = {column: column if column == LINE else column.strip().lstrip("\ufeff").strip().lower()
             for column in frame.columns}  # fmt: skip
    seen: dict[str, str] = {}
    for original, name in names.items():
        if name in seen:
            raise FileRejected(f"the columns {seen[name]!r} and {original!r} are the same column")
        seen[name] = original
    return frame.rename(names)
