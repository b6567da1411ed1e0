"""The format readers on their own (no database): which files become frames, which rows are broken, which
files are rejected whole."""

from __future__ import annotations

import gzip
import io

import polars as pl
import pytest

from tshop.ingest.read import LINE, FileRejected, read_file
from tshop.ingest.tables import TABLES

CUSTOMER = TABLES["customer"]


def test_csv_header_names_are_matched_without_case_blanks_or_bom():
    result = read_file("\ufeff Customer_ID ,FIRST_NAME\n1,Ann\n".encode(), "x.csv", CUSTOMER)
    assert result.frame.columns == [LINE, "customer_id", "first_name"]
    assert result.frame.rows() == [(1, "1", "Ann")]


def test_csv_empty_fields_are_null_and_a_header_alone_is_no_rows():
    result = read_file(b"customer_id,first_name\n1,\n", "x.csv", CUSTOMER)
    assert result.frame.rows() == [(1, "1", None)]
    assert read_file(b"customer_id,first_name\n", "x.csv", CUSTOMER).frame.height == 0


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("twice.csv", b"customer_id,Customer_Id\n1,2\n", "same column"),
        ("twice_exact.csv", b"customer_id,customer_id\n1,2\n", "named twice"),
        ("latin1.csv", b"customer_id,first_name\n1,Andr\xe9\n2,x,y\n", "not UTF-8"),
        ("no_key.jsonl", b'{"first_name": "Ann"}\n', "no customer_id column"),
        ("empty.jsonl.gz", b"", r"empty \(0 bytes\)"),
        ("not_gzip.csv.gz", b"customer_id\n1\n", "not a readable gzip file"),
        ("header.parquet", b"PAR1", "not a readable Parquet file"),
        ("data.xlsx", b"PK", "not a landing format"),
    ],
)
def test_files_rejected_whole(name, data, error):
    with pytest.raises(FileRejected, match=error):
        read_file(data, f"incoming/customer/{name}", CUSTOMER)


def test_a_truncated_parquet_file_is_rejected_whole():
    buffer = io.BytesIO()
    pl.DataFrame({"customer_id": range(10_000)}).write_parquet(buffer)
    data = buffer.getvalue()
    with pytest.raises(FileRejected, match="Parquet"):
        read_file(data[: len(data) // 2], "x.parquet", CUSTOMER)


def test_jsonl_lines_that_are_no_object_are_broken_rows_and_the_rest_is_read():
    data = b'{"customer_id": 1, "first_name": "Ann"}\n\n{"customer_id": 2,\n[3]\n{"customer_id": "4", "x": {"a": 1}}\n'
    result = read_file(gzip.compress(data), "x.jsonl.gz", CUSTOMER)
    assert result.frame.select(LINE, "customer_id", "x").rows() == [(1, "1", None), (4, "4", '{"a": 1}')]
    assert [(line, reason.split(":")[0]) for line, reason, _ in result.broken_rows] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
    ]
    assert result.ignored_columns == ["x"]
