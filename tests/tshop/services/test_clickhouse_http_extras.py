"""The parts of ClickHouse's HTTP interface the local endpoint added for its clients: query parameters named
with `$`, `client_protocol_version`, external data, multipart/form-data query bodies and system.query_log.

Everything goes to the real endpoint through real clients: clickhouse-connect, and httpx for the protocol's
details."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import clickhouse_connect
import httpx
import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.external import ExternalData

from tshop import clients

pytestmark = pytest.mark.slow


@pytest.fixture
def http(clickhouse_url):
    url = urlsplit(clickhouse_url)
    with httpx.Client(
        base_url=f"http://{url.hostname}:{url.port}/", auth=(url.username, url.password), timeout=120
    ) as client:
        yield client


def assert_error(answer: httpx.Response, code: int, *words: str) -> None:
    assert answer.status_code >= 400, answer.text
    assert answer.headers["x-clickhouse-exception-code"] == str(code), answer.text
    assert answer.text.startswith(f"Code: {code}. DB::Exception: "), answer.text
    for word in words:
        assert word in answer.text, answer.text


def multipart(fields: dict[str, str], files: dict[str, bytes] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body as clickhouse-connect builds one (urllib3), and its Content-Type."""
    parts = {**fields, **{name: (f"{name}.dat", data) for name, data in (files or {}).items()}}
    return urllib3.encode_multipart_formdata(parts)


# -- 1. query parameters named with `$` --------------------------------------------------------------
def test_parameters_named_with_a_dollar_are_bound(http):
    answer = http.get(
        "/",
        params={"query": "SELECT {$1:String}, {a$b:UInt8} + 1, {_x$:Int32}", "param_$1": "one",
                "param_a$b": "4", "param__x$": "-7"},
    )  # fmt: skip
    assert (answer.status_code, answer.text) == (200, "one\t5\t-7\n")


def test_clickhouse_connect_binds_dollar_parameters(clickhouse_client):
    result = clickhouse_client.query(
        "SELECT {$1:String} AS a, {$2:UInt32} * 2 AS b", parameters={"$1": "x", "$2": 21}
    )
    assert result.result_rows == [("x", 42)]


def test_a_session_sets_a_dollar_parameter(http):
    session = {"session_id": f"s-{uuid.uuid4().hex}"}
    assert http.post("/", params=session, content=b"SET param_$1 = 'kept'").status_code == 200
    answer = http.post("/", params=session, content=b"SELECT {$1:String}")
    assert answer.text == "kept\n"


def test_an_unknown_dollar_parameter_is_refused(http):
    answer = http.get("/", params={"query": "SELECT {$2:String}", "param_$1": "one"})
    assert_error(answer, 456, "UNKNOWN_QUERY_PARAMETER", "$2")


@pytest.mark.parametrize("name", ["a-b", "$", "", "x y", "1"])
def test_a_parameter_name_no_placeholder_can_hold_is_refused(http, name):
    answer = http.get("/", params={"query": "SELECT 1", f"param_{name}": "v"})
    assert_error(answer, 36, "BAD_ARGUMENTS", "Invalid query parameter name")


# -- 2. client_protocol_version ------------------------------------------------------------------------
def test_client_protocol_version_is_accepted_and_not_a_setting(http):
    query = "SELECT toLowCardinality('x') AS s, number AS n FROM numbers(3) FORMAT Native"
    plain = http.get("/", params={"query": query})
    versioned = http.get("/", params={"query": query, "client_protocol_version": "54405"})
    assert plain.status_code == versioned.status_code == 200, versioned.text
    # chDB writes revision 0's Native whatever the client says (see http.py): the same bytes either way
    assert versioned.content == plain.content
    assert versioned.content.startswith(b"\x02\x03\x01s\x16LowCardinality(String)")
    text = http.get("/", params={"query": "SELECT 7", "client_protocol_version": "54405"})
    assert text.text == "7\n"


def test_clickhouse_connect_reads_native_results_after_its_protocol_probe(test_settings):
    client = clients.clickhouse(test_settings)
    try:
        # the probe sends client_protocol_version=54405 and finds revision 0's Native: it stays at 0
        assert client.protocol_version == 0
        rows = client.query("SELECT toLowCardinality(toString(number)) AS s FROM numbers(4)").result_rows
        assert rows == [("0",), ("1",), ("2",), ("3",)]
    finally:
        client.close()


# -- 3. external data ----------------------------------------------------------------------------------
def test_external_data_through_clickhouse_connect(clickhouse_client):
    data = ExternalData(file_name="ext", data=b"1\tone\n2\ttwo\n3\tthree\n", structure="id UInt32, s String")
    data.add_file(file_name="other.csv", data=b"10,a\n20,b\n", fmt="CSV", types="UInt64, String")
    result = clickhouse_client.query(
        "SELECT count(), sum(id), groupArray(s), (SELECT sum(_1) FROM other) FROM ext", external_data=data
    )
    assert result.result_rows == [(3, 6, ["one", "two", "three"], 30)]


def test_external_data_with_large_parameters_through_clickhouse_connect(clickhouse_client):
    """Large parameters and external data together: the query, its parameters and the file in one form."""
    data = ExternalData(file_name="ext", data=b"1\n2\n3\n", structure="id UInt32")
    big = "z" * 20000
    result = clickhouse_client.query(
        "SELECT sum(id), length({big:String}) FROM ext", parameters={"big": big}, external_data=data
    )
    assert result.result_rows == [(6, 20000)]


def test_a_large_external_table_is_streamed(http):
    rows = 2_000_000
    body = b"".join(b"%d\t%d\n" % (i, i % 7) for i in range(rows))  # about 17 MB
    content, content_type = multipart({}, {"big": body})
    answer = http.post(
        "/",
        params={"query": "SELECT count(), sum(id), max(k) FROM big", "big_structure": "id UInt64, k UInt8"},
        content=content,
        headers={"Content-Type": content_type},
    )
    assert (answer.status_code, answer.text) == (200, f"{rows}\t{rows * (rows - 1) // 2}\t6\n")


def test_external_data_in_a_session_is_for_that_query_only(http):
    session = {"session_id": f"s-{uuid.uuid4().hex}"}
    content, content_type = multipart({}, {"ext": b'{"a": 5}\n{"a": 6}\n'})
    answer = http.post(
        "/",
        params={
            **session,
            "query": "SELECT sum(a) FROM ext",
            "ext_format": "JSONEachRow",
            "ext_structure": "a Int8",
        },
        content=content,
        headers={"Content-Type": content_type},
    )
    assert (answer.status_code, answer.text) == (200, "11\n")
    gone = http.post("/", params=session, content=b"SELECT count() FROM ext")
    assert_error(gone, 60, "ext")


def test_an_external_table_without_structure_is_refused(http):
    content, content_type = multipart({}, {"ext": b"1\n"})
    answer = http.post(
        "/", params={"query": "SELECT * FROM ext"}, content=content, headers={"Content-Type": content_type}
    )
    assert_error(answer, 36, "BAD_ARGUMENTS", "ext_structure or ext_types")


@pytest.mark.parametrize(
    ("structure", "code", "word"),
    [("id UInt32, s", 62, "SYNTAX_ERROR"), ("id NoSuchType", 50, "NoSuchType"),
     ("id UInt32) ENGINE = Memory --", 62, "SYNTAX_ERROR")],
)  # fmt: skip
def test_a_malformed_structure_is_refused(http, structure, code, word):
    content, content_type = multipart({}, {"ext": b"1\n"})
    answer = http.post(
        "/",
        params={"query": "SELECT * FROM ext", "ext_structure": structure},
        content=content,
        headers={"Content-Type": content_type},
    )
    assert_error(answer, code, word, "External table 'ext'")


def test_an_unknown_external_format_is_refused(http):
    content, content_type = multipart({}, {"ext": b"1\n"})
    answer = http.post(
        "/",
        params={"query": "SELECT * FROM ext", "ext_structure": "a UInt8", "ext_format": "NoFormat"},
        content=content,
        headers={"Content-Type": content_type},
    )
    assert_error(answer, 73, "NoFormat")


# -- 4. multipart/form-data query bodies ---------------------------------------------------------------
def test_clickhouse_connect_sends_large_parameters_as_a_form(test_settings):
    client = clients.clickhouse(test_settings)
    try:
        value = "ä" + "x" * 9000  # over clickhouse-connect's 4096 bytes of URL parameters: a form
        result = client.query(
            "SELECT length({v:String}), substringUTF8({v:String}, 1, 2)", parameters={"v": value}
        )
        assert result.result_rows == [(9002, "äx")]
    finally:
        client.close()


def test_clickhouse_connect_form_encodes_when_asked(clickhouse_url):
    url = urlsplit(clickhouse_url)
    client = clickhouse_connect.get_client(
        host=url.hostname,
        port=url.port,
        username=url.username,
        password=url.password,
        form_encode_query_params=True,
    )
    try:
        assert client.query("SELECT {a:UInt8} + {$b:UInt8}", parameters={"a": 2, "$b": 3}).result_rows == [
            (5,)
        ]
    finally:
        client.close()


def test_form_fields_are_query_parameters_and_settings(http):
    content, content_type = multipart(
        {
            "query": "SELECT {x:String}, getSetting('max_threads')",
            "param_x": "from the form",
            "max_threads": "1",
        }
    )
    answer = http.post("/", content=content, headers={"Content-Type": content_type})
    assert (answer.status_code, answer.text) == (200, "from the form\t1\n")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT 1',
        ),
        (
            "multipart/form-data",
            b'--b\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT 1\r\n--b--\r\n',
        ),
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Type: text/plain\r\n\r\nSELECT 1\r\n--b--\r\n"),
        ("multipart/form-data; boundary=b", b"garbage that is no multipart body at all"),
    ],
    ids=["no-closing-boundary", "no-boundary", "no-disposition", "garbage"],
)
def test_a_malformed_multipart_body_is_refused(http, content_type, body):
    answer = http.post("/", content=body, headers={"Content-Type": content_type})
    assert_error(answer, 36, "BAD_ARGUMENTS", "multipart/form-data")
    assert http.get("/", params={"query": "SELECT 1"}).text == "1\n"  # the endpoint goes on


# -- 5. system.query_log -------------------------------------------------------------------------------
def _log_rows(http, query_id: str) -> list[list[str]]:
    answer = http.get(
        "/",
        params={"query": "SELECT type, query, user, read_rows, written_rows, exception_code, query_duration_ms >= 0 "
                f"FROM system.query_log WHERE query_id = '{query_id}' ORDER BY event_time_microseconds, type"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return [line.split("\t") for line in answer.text.splitlines()]


def test_query_log_records_a_login_s_queries(http, test_settings):
    writer = (test_settings.clickhouse_writer_user, test_settings.clickhouse_writer_password)
    query_id = f"q-{uuid.uuid4().hex}"
    answer = http.post(
        "/", params={"query_id": query_id}, content=b"SELECT sum(number) FROM numbers(1000)", auth=writer
    )
    assert answer.text == "499500\n"
    assert _log_rows(http, query_id) == [
        ["QueryStart", "SELECT sum(number) FROM numbers(1000)", writer[0], "0", "0", "0", "1"],
        ["QueryFinish", "SELECT sum(number) FROM numbers(1000)", writer[0], "1000", "0", "0", "1"],
    ]


def test_query_log_records_writes_and_failures(http, test_settings):
    table = f"default.log_{uuid.uuid4().hex[:8]}"
    admin = test_settings.clickhouse_user
    http.post("/", content=f"CREATE TABLE {table} (a Int32) ENGINE = Memory".encode())
    try:
        insert_id, failed_id, refused_id = (f"q-{uuid.uuid4().hex}" for _ in range(3))
        http.post(
            "/", params={"query_id": insert_id}, content=f"INSERT INTO {table} VALUES (1), (2), (3)".encode()
        )
        failed = http.post("/", params={"query_id": failed_id}, content=b"SELECT throwIf(1)")
        assert failed.status_code >= 400
        refused = http.post("/", params={"query_id": refused_id}, content=b"SELECT 1; SELECT 2")
        assert refused.status_code == 400
        assert [row[0] for row in _log_rows(http, insert_id)] == ["QueryStart", "QueryFinish"]
        assert _log_rows(http, insert_id)[1][2:5] == [admin, "3", "3"]
        finished = _log_rows(http, failed_id)
        assert [row[0] for row in finished] == ["QueryStart", "ExceptionWhileProcessing"]
        assert finished[1][5] == "395"
        assert [row[0] for row in _log_rows(http, refused_id)] == ["ExceptionBeforeStart"]
    finally:
        http.post("/", content=f"DROP TABLE IF EXISTS {table}".encode())


def test_the_reader_may_not_read_the_query_log(http, test_settings):
    reader = (test_settings.clickhouse_reader_user, test_settings.clickhouse_reader_password)
    answer = http.get("/", params={"query": "SELECT count() FROM system.query_log"}, auth=reader)
    assert_error(answer, 497, "system.query_log")


def test_the_query_log_is_read_through_clickhouse_connect(clickhouse_client, test_settings):
    query_id = f"q-{uuid.uuid4().hex}"
    clickhouse_client.query("SELECT 42", settings={"query_id": query_id})
    rows = clickhouse_client.query(
        "SELECT type, user FROM system.query_log WHERE query_id = {id:String} ORDER BY type",
        parameters={"id": query_id},
    ).result_rows
    admin = test_settings.clickhouse_user
    assert rows == [("QueryStart", admin), ("QueryFinish", admin)]
    clickhouse_client.command("CREATE DATABASE IF NOT EXISTS cdm")  # the reader's default database
    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        clients.clickhouse(test_settings, role="reader").query("SELECT count() FROM system.query_log")
