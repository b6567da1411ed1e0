"""The local ClickHouse endpoint through the real clients: clickhouse-connect, SQLAlchemy's clickhousedb://
dialect (what Superset uses) and plain HTTP, as ClickHouse's HTTP interface behaves."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

import clickhouse_connect
import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError

from tshop.config import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def table(clickhouse_client) -> str:
    name = f"default.t_{uuid.uuid4().hex[:8]}"
    clickhouse_client.command(
        f"create table {name} (id Int64, name String, at DateTime64(6, 'UTC'), price Decimal(12, 2)) "
        "engine = MergeTree order by id"
    )
    yield name
    clickhouse_client.command(f"drop table if exists {name}")


def http(clickhouse_url: str):
    url = urlsplit(clickhouse_url)
    return url, urllib3.PoolManager(), urllib3.make_headers(basic_auth=f"{url.username}:{url.password}")


def test_query_query_df_and_query_arrow(clickhouse_client):
    result = clickhouse_client.query("select number as n, toString(number) as s from numbers(5) order by n")
    assert result.column_names == ("n", "s")
    assert result.result_rows == [(i, str(i)) for i in range(5)]
    frame = clickhouse_client.query_df("select number as n from numbers(10)")
    assert frame["n"].sum() == 45
    arrow = clickhouse_client.query_arrow("select number as n from numbers(7)")
    assert arrow.num_rows == 7


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_a_million_rows_insert_plain_and_compressed(clickhouse_url, test_settings, table, compress):
    from tshop import clients

    client = clients.clickhouse(test_settings, compress=compress)
    at = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)
    rows = [(i, f"n{i}", at, Decimal("9.99")) for i in range(1_000_000)]
    summary = client.insert(table, rows, column_names=["id", "name", "at", "price"])
    assert summary.written_rows == 1_000_000
    assert client.query(f"select count(), sum(id), sum(price) from {table}").result_rows == [
        (1_000_000, 499_999_500_000, Decimal("9990000.00"))
    ]
    client.close()


def test_command_and_settings_apply_to_one_query_only(clickhouse_client):
    assert clickhouse_client.command("select 1 + 1") == 2
    assert clickhouse_client.query(
        "select getSetting('max_threads')", settings={"max_threads": 1}
    ).result_rows == [(1,)]
    assert clickhouse_client.query("select getSetting('max_threads')").result_rows != [(1,)]


def test_sessions_keep_settings_and_temporary_tables(test_settings, clickhouse_url):
    from tshop import clients

    session = clients.clickhouse(test_settings, session_id=f"s-{uuid.uuid4().hex}")
    session.command("create temporary table scratch (x Int32)")
    session.command("insert into scratch values (1), (2), (3)")
    session.command("set max_threads = 1")
    assert session.query("select sum(x) from scratch").result_rows == [(6,)]
    assert session.query("select getSetting('max_threads')").result_rows == [(1,)]
    # a per-query setting leaves the session's own value in place
    assert session.query("select getSetting('max_threads')", settings={"max_threads": 2}).result_rows == [
        (2,)
    ]
    assert session.query("select getSetting('max_threads')").result_rows == [(1,)]
    other = clients.clickhouse(test_settings, session_id=f"s-{uuid.uuid4().hex}")
    with pytest.raises(DatabaseError, match="scratch"):
        other.query("select * from scratch")
    session.close()
    other.close()


def test_query_parameters(clickhouse_client):
    result = clickhouse_client.query(
        "select {n:UInt32} * 2 as doubled, {s:String} as s", parameters={"n": 21, "s": "it's"}
    )
    assert result.result_rows == [(42, "it's")]


def test_errors_carry_clickhouse_codes(clickhouse_client):
    with pytest.raises(DatabaseError, match="Code: 62") as syntax:
        clickhouse_client.query("selec 1")
    assert "SYNTAX_ERROR" in str(syntax.value)
    with pytest.raises(DatabaseError, match="Code: 60|Code: 81"):
        clickhouse_client.query("select * from default.no_such_table")


def test_plain_http_query_format_database_and_headers(clickhouse_url):
    url, pool, auth = http(clickhouse_url)
    base = f"http://{url.hostname}:{url.port}"
    assert pool.request("GET", f"{base}/ping").data == b"Ok.\n"

    response = pool.request(
        "POST",
        f"{base}/?database=system&query_id=my-query",
        body=b"select dummy from one format JSONEachRow",
        headers=auth,
    )
    assert response.status == 200
    assert response.headers["X-ClickHouse-Query-Id"] == "my-query"
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert response.headers["X-ClickHouse-Timezone"] == "UTC"
    summary = json.loads(response.headers["X-ClickHouse-Summary"])
    assert int(summary["read_rows"]) == 1

    # what a query read from storage, not what it returned
    counted = pool.request("POST", f"{base}/", body=b"select count() from numbers(100000)", headers=auth)
    assert counted.data == b"100000\n"
    summary = json.loads(counted.headers["X-ClickHouse-Summary"])
    assert (int(summary["read_rows"]), int(summary["result_rows"])) == (100000, 1)

    tsv = pool.request("GET", f"{base}/?query=select+1,2&default_format=CSV", headers=auth)
    assert tsv.data == b"1,2\n"


def test_insert_with_query_in_url_and_chunked_gzip_body(clickhouse_url, clickhouse_client, table):
    url, pool, auth = http(clickhouse_url)
    base = f"http://{url.hostname}:{url.port}"
    csv = "".join(f"{i},n{i},2024-03-04 00:00:00,1.50\n" for i in range(1000)).encode()
    body = gzip.compress(csv)
    chunks = (body[i : i + 700] for i in range(0, len(body), 700))
    response = pool.request(
        "POST",
        f"{base}/?query=insert+into+{table}+format+CSV",
        body=chunks,
        headers={**auth, "Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
        chunked=True,
    )
    assert response.status == 200, response.data
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == "1000"
    assert clickhouse_client.command(f"select count() from {table}") == 1000


def test_compressed_responses_when_asked(clickhouse_url):
    url, pool, auth = http(clickhouse_url)
    base = f"http://{url.hostname}:{url.port}"
    response = pool.request(
        "GET",
        f"{base}/?query=select+number+from+numbers(1000)&enable_http_compression=1",
        headers={**auth, "Accept-Encoding": "gzip"},
        decode_content=False,
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.data).splitlines()[-1] == b"999"


def test_a_wrong_password_is_refused_as_clickhouse_refuses_it(clickhouse_url):
    url = urlsplit(clickhouse_url)
    client_error = None
    try:
        clickhouse_connect.get_client(
            host=url.hostname, port=url.port, username=url.username, password="wrong"
        )
    except DatabaseError as error:
        client_error = str(error)
    assert client_error and "516" in client_error and "AUTHENTICATION_FAILED" in client_error

    pool = urllib3.PoolManager()
    response = pool.request(
        "GET", f"http://{url.hostname}:{url.port}/?query=select+1&user=default&password=wrong"
    )
    assert response.status == 403  # as ClickHouse answers AUTHENTICATION_FAILED
    assert response.headers["X-ClickHouse-Exception-Code"] == "516"
    assert response.data.startswith(b"Code: 516. DB::Exception:")


SQLALCHEMY_PROBE = """
import json, sys
import sqlalchemy as sa
engine = sa.create_engine(sys.argv[1])
inspector = sa.inspect(engine)
columns = [column["name"] for column in inspector.get_columns(sys.argv[2].split(".")[1], schema=sys.argv[2].split(".")[0])]
with engine.connect() as connection:
    rows = connection.execute(sa.text(
        "select name, count() as lines, sum(price) as revenue from " + sys.argv[2] + " group by name order by name"
    )).fetchall()
print(json.dumps({"tables": inspector.get_table_names(schema="default"), "columns": columns,
                  "rows": [[row[0], row[1], str(row[2])] for row in rows]}))
"""


def test_sqlalchemy_clickhousedb_dialect_in_supersets_environment(clickhouse_url, clickhouse_client, table):
    """Superset talks to ClickHouse through this dialect: reflection and a grouped SELECT."""
    clickhouse_client.command(
        f"insert into {table} values (1, 'a', '2024-03-04 00:00:00', 1.50), (2, 'a', '2024-03-04 00:00:00', 2.00), "
        "(3, 'b', '2024-03-04 00:00:00', 4.25)"
    )
    url = urlsplit(clickhouse_url)
    uri = f"clickhousedb://{url.username}:{url.password}@{url.hostname}:{url.port}/default"
    probe = subprocess.run(
        [str(REPO_ROOT / ".venvs/superset/bin/python"), "-c", SQLALCHEMY_PROBE, uri, table],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert table.split(".")[1] in found["tables"]
    assert found["columns"] == ["id", "name", "at", "price"]
    assert found["rows"] == [["a", 2, "3.50"], ["b", 1, "4.25"]]
