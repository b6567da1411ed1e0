"""The local ClickHouse endpoint answers as ClickHouse does, with no silent loss and no false success:
each request's parameters, settings and session stay its own (pooled connections included), statements
without a result answer as DDL does, multi-statements are refused, bodies never sit whole in memory,
every error has ClickHouse's form (malformed HTTP too), and it listens on loopback only.

Everything goes through real clients (clickhouse-connect, raw HTTP over a socket) to the real endpoint."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import shutil
import socket
import uuid
from base64 import b64encode
from urllib.parse import quote, urlsplit

import psutil
import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.summary import QuerySummary

from tshop import clients
from tshop.config import REPO_ROOT, settings
from tshop.services._process import free_port
from tshop.services.clickhouse import LocalClickHouse

pytestmark = pytest.mark.slow

MB = 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------------
class Endpoint:
    """Raw HTTP to the endpoint: each request on a fresh connection unless a connection is given."""

    def __init__(self, clickhouse_url: str):
        url = urlsplit(clickhouse_url)
        self.host, self.port = url.hostname, url.port
        self.auth = {
            "Authorization": "Basic " + b64encode(f"{url.username}:{url.password}".encode()).decode()
        }

    def request(self, method: str, path: str, body=None, headers: dict | None = None, connection=None):
        own = connection is None
        connection = connection or http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            connection.request(method, path, body=body, headers={**self.auth, **(headers or {})})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            if own:
                connection.close()

    def post(self, body: bytes, path: str = "/", **kwargs):
        return self.request("POST", path, body, **kwargs)

    def get(self, query: str, params: str = "", **kwargs):
        return self.request("GET", f"/?query={quote(query)}{params}", **kwargs)

    def exchange(self, raw: bytes):
        """Send bytes as they are (malformed HTTP included) and read the one answer."""
        with socket.create_connection((self.host, self.port), timeout=30) as sock:
            sock.sendall(raw)
            response = http.client.HTTPResponse(sock)
            response.begin()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def assert_clickhouse_error(
    status: int, headers: dict, body: bytes, code: int, http_status: int | None = None
):
    """ClickHouse's form: HTTP status, X-ClickHouse-Exception-Code, `Code: N. DB::Exception: ... (NAME)`."""
    assert status == (http_status or status) and status >= 400, (status, body[:300])
    assert headers.get("x-clickhouse-exception-code") == str(code), (headers, body[:300])
    assert headers.get("content-type", "").startswith("text/plain"), headers
    assert body.startswith(f"Code: {code}. DB::Exception: ".encode()), body[:300]
    assert b"(version " in body and body.endswith(b"\n"), body[-200:]
    for internal in (b"<html", b"<!DOCTYPE", b"Traceback", b"codec can't", b"Error response"):
        assert internal not in body, body[:300]


@pytest.fixture
def endpoint(clickhouse_url) -> Endpoint:
    return Endpoint(clickhouse_url)


@pytest.fixture
def local_pid(test_settings, clickhouse_url) -> int:
    if test_settings.external_clickhouse_url:
        pytest.skip("measures the local endpoint's own process")
    return LocalClickHouse(test_settings).status().pid


def pooled_client(test_settings):
    """A client with no session: its requests run on the endpoint's pooled connections."""
    return clients.clickhouse(test_settings, autogenerate_session_id=False)


# -- 1. parameters, settings and sessions stay with their request ------------------------------------
def test_parameters_reach_a_query_on_a_pooled_connection(test_settings, endpoint):
    """The known bug: `SELECT 1` twice puts configured connections in the pool; the next query with a
    parameter got one of them without its parameter (Code 456, substitution not set)."""
    client = pooled_client(test_settings)
    for _ in range(3):
        assert client.command("SELECT 1") == 1
        assert client.query("SELECT {x:String}", parameters={"x": "hello"}).result_rows == [("hello",)]
    client.close()
    for value in ("one", "two", "three"):
        endpoint.get("SELECT 1")
        status, _, body = endpoint.get("SELECT {x:String}", f"&param_x={value}")
        assert (status, body) == (200, f"{value}\n".encode())


def test_a_parameter_never_reaches_a_request_that_did_not_send_it(endpoint):
    for _ in range(3):
        assert endpoint.get("SELECT {x:String}", "&param_x=secret")[2] == b"secret\n"
        status, headers, body = endpoint.get("SELECT {x:String}")
        assert_clickhouse_error(status, headers, body, 456)


def test_settings_of_one_request_never_reach_another(test_settings, endpoint):
    default = endpoint.get("SELECT getSetting('max_threads')")[2]
    for _ in range(3):
        assert endpoint.get("SELECT getSetting('max_threads')", "&max_threads=1")[2] == b"1\n"
        assert endpoint.get("SELECT getSetting('max_threads')")[2] == default
    client = pooled_client(test_settings)
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 1}) == 1
    assert str(client.command("SELECT getSetting('max_threads')")) + "\n" == default.decode()
    client.close()


def test_a_session_keeps_its_own_parameters_and_no_request_leaks_its_own_into_it(test_settings):
    session = clients.clickhouse(test_settings, session_id=f"p-{uuid.uuid4().hex}")
    session.command("SET param_kept = 'mine'")
    # a request's own parameter is for that request only...
    assert session.query("SELECT {once:String}, {kept:String}", parameters={"once": "1"}).result_rows == [
        ("1", "mine")
    ]
    with pytest.raises(DatabaseError, match="456"):
        session.query("SELECT {once:String}")
    # ...and what the session SET itself stays, however many requests with parameters came between
    assert session.command("SELECT {kept:String}") == "mine"
    session.close()


def test_a_sessions_url_database_is_for_that_query_only(endpoint):
    session = f"&session_id=db-{uuid.uuid4().hex}"
    assert endpoint.get("SELECT currentDatabase()", session + "&database=system")[2] == b"system\n"
    assert endpoint.get("SELECT currentDatabase()", session)[2] == b"default\n"


def test_async_client_parameters_on_pooled_connections(test_settings, clickhouse_url):
    pytest.importorskip("aiohttp", reason="clickhouse-connect's async client needs aiohttp")
    import clickhouse_connect

    url = urlsplit(clickhouse_url)

    async def run() -> list:
        client = await clickhouse_connect.get_async_client(
            host=url.hostname, port=url.port, username=url.username, password=url.password
        )
        try:
            await client.command("SELECT 1")
            await client.command("SELECT 1")
            result = await client.query("SELECT {x:String}", parameters={"x": "hello"})
            summary = await client.command(
                "CREATE TABLE IF NOT EXISTS default.async_ddl (x Int8) ENGINE = Memory"
            )
            await client.command("DROP TABLE default.async_ddl")
            return [result.result_rows, summary]
        finally:
            await client.close()

    rows, summary = asyncio.run(run())
    assert rows == [("hello",)]
    assert isinstance(summary, QuerySummary)


# -- 2. statements without a result answer as ClickHouse answers them ---------------------------------
def test_ddl_and_set_answer_with_a_summary_and_no_result(test_settings, endpoint):
    table = f"default.ddl_{uuid.uuid4().hex[:8]}"
    client = pooled_client(test_settings)
    created = client.command(f"CREATE TABLE {table} (id Int64) ENGINE = MergeTree ORDER BY id")
    assert isinstance(created, QuerySummary), repr(created)
    inserted = client.command(f"INSERT INTO {table} SELECT number FROM numbers(10)")
    assert isinstance(inserted, QuerySummary) and inserted.written_rows == 10
    session = clients.clickhouse(test_settings, session_id=f"set-{uuid.uuid4().hex}")
    assert isinstance(session.command("SET max_threads = 1"), QuerySummary)
    # a statement with a result still answers as one, even with no rows
    assert client.command(f"SELECT id FROM {table} WHERE id > 100") == ""

    for statement in (
        f"ALTER TABLE {table} ADD COLUMN extra String",
        f"TRUNCATE TABLE {table}",
        f"DROP TABLE {table}",
    ):
        status, headers, body = endpoint.post(statement.encode())
        assert (status, body) == (200, b""), body
        assert "x-clickhouse-format" not in headers, headers
        assert json.loads(headers["x-clickhouse-summary"])["written_rows"] == "0"
    status, headers, body = endpoint.post(b"SELECT 1 WHERE 0 FORMAT JSONEachRow")
    assert (status, body, headers["x-clickhouse-format"]) == (200, b"", "JSONEachRow")
    client.close()
    session.close()


# -- 3. one statement per request -----------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "SET max_threads = 1; SELECT 1",
        "SELECT 1; SELECT 2",
        "SELECT 1;;",
        "SELECT 1; /* two */ SELECT 2 -- x",
    ],
)
def test_multi_statements_are_refused_as_clickhouse_refuses_them(endpoint, text):
    session = f"/?session_id=multi-{uuid.uuid4().hex}"
    status, headers, body = endpoint.post(text.encode(), path=session)
    assert_clickhouse_error(status, headers, body, 62, 400)
    assert b"Multi-statements are not allowed" in body and b"(SYNTAX_ERROR)" in body
    # nothing of it ran: the session's setting is untouched
    assert (
        endpoint.post(b"SELECT changed FROM system.settings WHERE name = 'max_threads'", path=session)[2]
        == b"0\n"
    )


@pytest.mark.parametrize(
    "text",
    ["SELECT 1;", "SELECT 1;  \n", "SELECT 1; -- trailing comment", "SELECT 1 /* ; */", "SELECT ';' = ';' "],
)
def test_one_statement_with_a_trailing_semicolon_runs(endpoint, text):
    status, _, body = endpoint.post(text.encode())
    assert status == 200 and body == b"1\n", body


def test_a_second_statement_after_insert_values_is_refused_and_nothing_runs(test_settings, endpoint):
    table = f"default.multi_{uuid.uuid4().hex[:8]}"
    client = pooled_client(test_settings)
    client.command(f"CREATE TABLE {table} (id Int64) ENGINE = MergeTree ORDER BY id")
    status, headers, body = endpoint.post(f"INSERT INTO {table} VALUES (1); DROP TABLE {table}".encode())
    assert_clickhouse_error(status, headers, body, 62, 400)
    assert client.command(f"SELECT count() FROM {table}") == 0
    with pytest.raises(DatabaseError, match="Code: 62"):
        client.command(f"SELECT 1; DROP TABLE {table}")
    client.command(f"DROP TABLE {table}")
    client.close()


# -- 4. bounded memory for request bodies -----------------------------------------------------------
def peak_rss_growth(pid: int, send) -> tuple[int, object]:
    """Peak RSS of the endpoint process while `send()` runs, above its RSS before (bytes). `send()` runs
    once before, unmeasured: the engine's allocator keeps some memory after a first big insert."""
    send()
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # resets the process's peak RSS (VmHWM) to its current RSS
    before = psutil.Process(pid).memory_info().rss
    answer = send()
    with open(f"/proc/{pid}/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return peak - before, answer


CSV_LINE = b"7,seven-seven-seven-seven-seven-seven-seven-seven-seven-seven\n"
# the engine's own insert pipeline in small blocks, so what is measured is the endpoint's handling of the body
SMALL_BLOCKS = (
    "input_format_parallel_parsing=0&max_insert_block_size=8192&min_insert_block_size_bytes=1048576"
)


@pytest.fixture
def null_table(test_settings, clickhouse_url):
    name = f"default.sink_{uuid.uuid4().hex[:8]}"
    client = pooled_client(test_settings)
    client.command(f"CREATE TABLE {name} (id Int64, name String) ENGINE = Null")
    yield name
    client.command(f"DROP TABLE {name}")
    client.close()


def test_a_50_mb_query_body_is_refused_without_being_held(endpoint, local_pid):
    body = b"SELECT 1 -- " + b"x" * (50 * MB)
    growth, (status, headers, answer) = peak_rss_growth(local_pid, lambda: endpoint.post(body))
    assert_clickhouse_error(status, headers, answer, 62, 400)
    assert b"Max query size exceeded" in answer
    assert growth < 16 * MB, f"peak RSS grew {growth / MB:.0f} MB for a 50 MB body"
    # the limit is ClickHouse's max_query_size: a request may raise it
    long_query = b"SELECT length('" + b"y" * 300_000 + b"')"
    assert endpoint.post(long_query)[0] == 400
    assert endpoint.post(long_query, path="/?max_query_size=1000000")[2] == b"300000\n"


def test_a_50_mb_insert_with_its_query_in_the_body_is_streamed(
    endpoint, local_pid, null_table, test_settings
):
    lines = 50 * MB // len(CSV_LINE)
    body = f"INSERT INTO {null_table} FORMAT CSV\n".encode() + CSV_LINE * lines
    growth, (status, headers, answer) = peak_rss_growth(
        local_pid, lambda: endpoint.post(body, path=f"/?{SMALL_BLOCKS}")
    )
    assert status == 200, answer[:300]
    assert json.loads(headers["x-clickhouse-summary"])["written_rows"] == str(lines)
    assert growth < 32 * MB, f"peak RSS grew {growth / MB:.0f} MB for a 50 MB body"


def test_a_compressed_chunked_insert_is_decompressed_a_piece_at_a_time(clickhouse_url, local_pid, null_table):
    """100 MB of CSV in under 1 MB of gzip: the endpoint never holds the plain data (a bomb stays harmless)."""
    lines = 100 * MB // len(CSV_LINE)
    compressed = gzip.compress(f"INSERT INTO {null_table} FORMAT CSV\n".encode() + CSV_LINE * lines, 6)
    assert len(compressed) < MB
    url, pool = urlsplit(clickhouse_url), urllib3.PoolManager()
    auth = urllib3.make_headers(basic_auth=f"{url.username}:{url.password}")

    def send():
        return pool.request(
            "POST",
            f"http://{url.hostname}:{url.port}/?{SMALL_BLOCKS}",
            body=(compressed[i : i + 65536] for i in range(0, len(compressed), 65536)),
            headers={**auth, "Content-Encoding": "gzip"},
            chunked=True,
        )

    growth, response = peak_rss_growth(local_pid, send)
    assert response.status == 200, response.data[:300]
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == str(lines)
    assert growth < 32 * MB, f"peak RSS grew {growth / MB:.0f} MB for 100 MB of plain data"


# -- 5. every error in ClickHouse's form ------------------------------------------------------------
def test_query_text_that_is_not_utf8_is_run_as_clickhouse_runs_it(endpoint):
    # bytes in a string literal are data, as in ClickHouse
    status, _, body = endpoint.post(b"SELECT 'caf\xe9', length('caf\xe9')")
    assert (status, body) == (200, b"caf\xe9\t4\n")
    # elsewhere they are a syntax error, with the engine's own message
    status, headers, body = endpoint.post(b"SELECT caf\xe9")
    assert_clickhouse_error(status, headers, body, 62, 400)
    status, headers, body = endpoint.get("SELECT {x:String}", "&param_x=%FF")
    assert_clickhouse_error(status, headers, body, 36, 400)


@pytest.mark.parametrize(
    ("raw", "http_status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, 1000),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431, 1000),
        (b"GET /?query=" + b"1" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, 229),
        (b"PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 501, 1),
        (b"GET / HTTP/2.0\r\n\r\n", 505, 1000),
        (b"POST / HTTP/1.1\r\nContent-Length: many\r\n\r\nSELECT 1", 400, 36),
        (b"POST / HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\nzz\r\nSELECT 1\r\n0\r\n\r\n", 400, 36),
        (b"POST / HTTP/1.1\r\nAuthorization: Basic !!!\r\nContent-Length: 8\r\n\r\nSELECT 1", 403, 516),
        (
            b"POST /?session_id=s&session_timeout=soon HTTP/1.1\r\n{auth}Content-Length: 8\r\n\r\nSELECT 1",
            500,
            374,
        ),
        (b"POST / HTTP/1.1\r\n{auth}Content-Length: 100\r\n\r\nSELECT 1", 500, 33),
    ],
    ids=[
        "no-request-line",
        "header-too-long",
        "uri-too-long",
        "unknown-method",
        "unsupported-version",
        "bad-content-length",
        "bad-chunk-header",
        "bad-basic-auth",
        "bad-session-timeout",
        "body-shorter-than-announced",
    ],
)
def test_malformed_requests_get_clickhouse_errors(endpoint, raw, http_status, code):
    authorization = f"Authorization: {endpoint.auth['Authorization']}\r\n".encode()
    raw = raw.replace(b"{auth}", authorization)
    if code == 33:  # the client stops sending and waits: the endpoint must notice the body ended early
        with socket.create_connection((endpoint.host, endpoint.port), timeout=30) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            response = http.client.HTTPResponse(sock)
            response.begin()
            answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    else:
        answer = endpoint.exchange(raw)
    assert_clickhouse_error(*answer, code, http_status)


def test_a_wrong_password_gets_clickhouses_403(endpoint):
    status, headers, body = endpoint.request(
        "GET", "/?query=SELECT+1", headers={"Authorization": "Basic " + b64encode(b"default:wrong").decode()}
    )
    assert_clickhouse_error(status, headers, body, 516, 403)


def test_the_connection_stays_usable_after_an_error(endpoint):
    """As ClickHouse does: the rest of the request is read, and the connection kept for the next one."""
    connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    for bad in (b"SELECT 1; SELECT 2", b"SELECT 1 FROM no_such_table", b"SELECT " + b"1 + " * 100_000 + b"1"):
        status, headers, body = endpoint.post(bad, connection=connection)
        assert status >= 400 and body.startswith(b"Code: "), body[:200]
        assert connection.sock is not None, "the endpoint closed the connection after an error"
        assert endpoint.post(b"SELECT 42", connection=connection)[2] == b"42\n"
    connection.close()


# -- 6. loopback only ------------------------------------------------------------------------------
def listening(pid: int) -> set[tuple[str, int]]:
    """Every TCP socket the process listens on and every UDP socket it has bound, as (address, port)."""
    sockets = psutil.Process(pid).net_connections(kind="inet")
    return {
        (connection.laddr.ip, connection.laddr.port)
        for connection in sockets
        if connection.status == psutil.CONN_LISTEN or connection.type == socket.SOCK_DGRAM
    }


def test_the_endpoint_listens_on_its_configured_loopback_address_only(test_settings, local_pid):
    assert listening(local_pid) == {(test_settings.clickhouse_host, test_settings.clickhouse_port)}
    assert test_settings.clickhouse_host == "127.0.0.1"


def test_the_host_comes_from_configuration():
    state = REPO_ROOT / ".state" / "test" / f"clickhouse-host-{uuid.uuid4().hex[:8]}"
    config = settings(
        {
            "TSHOP_STATE_DIR": str(state),
            "TSHOP_CLICKHOUSE_HOST": "127.0.0.2",
            "TSHOP_CLICKHOUSE_PORT": str(free_port()),
        }
    )
    service = LocalClickHouse(config)
    try:
        pid = service.start().pid
        assert listening(pid) == {("127.0.0.2", config.clickhouse_port)}
    finally:
        service.stop()
        shutil.rmtree(state, ignore_errors=True)
