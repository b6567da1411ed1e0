"""The ClickHouse endpoint as a service: lifecycle, durability, bad input, and many clients at once.

Lifecycle tests run their own endpoint in their own state folder on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
import uuid

import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError

from tshop import clients
from tshop.config import REPO_ROOT, settings
from tshop.services import ServiceError
from tshop.services._process import free_port, pid_alive, wait_until
from tshop.services.clickhouse import LocalClickHouse

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint():
    state = REPO_ROOT / ".state" / "test" / f"clickhouse-{uuid.uuid4().hex[:8]}"
    config = settings({**{k: v for k, v in os.environ.items() if not k.startswith("TSHOP_")},
                       "TSHOP_STATE_DIR": str(state), "TSHOP_CLICKHOUSE_PORT": str(free_port())})  # fmt: skip
    service = LocalClickHouse(config)
    yield service
    service.stop()
    shutil.rmtree(state, ignore_errors=True)


def test_start_twice_is_harmless_and_stop_stops(endpoint):
    first = endpoint.start()
    assert first.state == "running"
    assert endpoint.start().pid == first.pid
    assert endpoint.stop().state == "stopped"
    assert not pid_alive(first.pid)


def test_acknowledged_data_survives_a_restart_and_a_kill_9(endpoint):
    endpoint.start()
    client = clients.clickhouse(endpoint.config)
    client.command("create table default.kept (id Int64) engine = MergeTree order by id")
    client.command("insert into default.kept select number from numbers(1000)")
    client.close()
    endpoint.stop()
    endpoint.start()
    client = clients.clickhouse(endpoint.config)
    client.command("insert into default.kept select number from numbers(1000, 500)")
    client.close()

    pid = endpoint.status().pid
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), timeout=10)
    assert endpoint.status().state == "crashed"
    assert endpoint.start().state == "running"
    client = clients.clickhouse(endpoint.config)
    assert client.command("select count() from default.kept") == 1500
    client.close()


def test_a_busy_port_is_refused_with_a_message_naming_port_and_setting(endpoint):
    port = endpoint.config.clickhouse_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ServiceError) as refused:
            endpoint.start()
    assert str(port) in str(refused.value) and "TSHOP_CLICKHOUSE_PORT" in str(refused.value)


def test_an_external_url_starts_nothing(tmp_path):
    config = settings(
        {"TSHOP_STATE_DIR": str(tmp_path), "TSHOP_CLICKHOUSE_URL": "http://u:p@clickhouse.example:8123"}
    )
    service = LocalClickHouse(config)
    assert service.start().state == "external"
    assert not service.root.exists()


@pytest.fixture
def kept_table(clickhouse_client):
    name = f"default.bad_input_{uuid.uuid4().hex[:8]}"
    clickhouse_client.command(f"create table {name} (id Int64, name String) engine = MergeTree order by id")
    clickhouse_client.command(f"insert into {name} values (1, 'one'), (2, 'two')")
    yield name
    clickhouse_client.command(f"drop table {name}")


def raw_post(clickhouse_url: str, path: str, body: bytes, headers: dict | None = None):
    from urllib.parse import urlsplit

    url = urlsplit(clickhouse_url)
    auth = urllib3.make_headers(basic_auth=f"{url.username}:{url.password}")
    return urllib3.PoolManager().request(
        "POST", f"http://{url.hostname}:{url.port}{path}", body=body, headers={**auth, **(headers or {})}
    )


@pytest.mark.parametrize(
    ("path", "body", "headers", "code"),
    [
        ("/", b"select from where", {}, "62"),
        ("/", b"select 1 format NoSuchFormat", {}, "73"),
        ("/?query=insert+into+{table}+format+CSV", b"3,three\nfour,\x00garbage\n", {}, "27"),
        ("/?query=insert+into+{table}+format+Native", b"\x05\x01\x02", {}, None),
        ("/?query=insert+into+{table}+format+CSV", b"not lz4 at all", {"Content-Encoding": "lz4"}, "271"),
        (
            "/?query=insert+into+{table}+format+CSV",
            b"\x1f\x8b\x08\x00truncated",
            {"Content-Encoding": "gzip"},
            "271",
        ),
    ],
    ids=[
        "malformed-sql",
        "unknown-format",
        "garbage-csv",
        "truncated-native",
        "garbage-lz4",
        "truncated-gzip",
    ],
)
def test_bad_input_gets_a_clickhouse_error_and_nothing_is_lost(
    clickhouse_url, clickhouse_client, kept_table, path, body, headers, code
):
    response = raw_post(clickhouse_url, path.format(table=kept_table), body, headers)
    assert response.status >= 400
    assert response.data.startswith(b"Code: ")
    assert b"DB::Exception" in response.data
    if code:
        assert response.headers["X-ClickHouse-Exception-Code"] == code
    assert clickhouse_client.query(f"select id, name from {kept_table} order by id").result_rows == [
        (1, "one"),
        (2, "two"),
    ]


def test_a_huge_insert_body_is_streamed_not_held(clickhouse_url, clickhouse_client, kept_table):
    """256 MiB of CSV in one chunked request: spooled to disk, inserted, and the server keeps serving."""
    line = b"7,seven-seven-seven-seven-seven-seven-seven-seven-seven-seven-seven-seven-seven-seven-seven\n"
    repeats = 256 * 1024 * 1024 // len(line)

    def body():
        block = line * 10_000
        for _ in range(repeats // 10_000):
            yield block

    from urllib.parse import urlsplit

    url = urlsplit(clickhouse_url)
    auth = urllib3.make_headers(basic_auth=f"{url.username}:{url.password}")
    response = urllib3.PoolManager().request(
        "POST",
        f"http://{url.hostname}:{url.port}/?query=insert+into+{kept_table}+format+CSV",
        body=body(),
        headers=auth,
        chunked=True,
    )
    assert response.status == 200, response.data[:300]
    assert clickhouse_client.command(f"select count() from {kept_table}") == 2 + (repeats // 10_000) * 10_000


def test_a_long_query_blocks_neither_ping_nor_short_queries(test_settings, clickhouse_url):
    from urllib.parse import urlsplit

    url = urlsplit(clickhouse_url)
    long_done = threading.Event()

    def long_query():
        client = clients.clickhouse(test_settings, autogenerate_session_id=False)
        client.query("select sum(sleepEachRow(0.001)) from numbers(3000) settings max_block_size = 100")
        long_done.set()

    thread = threading.Thread(target=long_query)
    thread.start()
    time.sleep(0.5)
    pool = urllib3.PoolManager()
    assert pool.request("GET", f"http://{url.hostname}:{url.port}/ping").data == b"Ok.\n"
    short = clients.clickhouse(test_settings, autogenerate_session_id=False)
    assert short.command("select 42") == 42
    assert not long_done.is_set(), "the short query and the ping answered while the long query ran"
    thread.join(30)
    assert long_done.is_set()


def test_a_client_that_disconnects_mid_request_does_not_stick_the_server(clickhouse_url, clickhouse_client):
    from urllib.parse import urlsplit

    url = urlsplit(clickhouse_url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(
            b"POST /?query=insert+into+default.nowhere+format+CSV HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n1,a\n"
        )
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(b"GET /?query=select+sleep(1) HTTP/1.1\r\n\r\n")
    assert clickhouse_client.command("select 1") == 1


def test_several_clients_at_once_for_a_bounded_time(test_settings, clickhouse_url, kept_table):
    """Eight clients for eight seconds, reading and writing, on loopback only: no error."""
    deadline = time.monotonic() + 8
    errors: list[BaseException] = []
    counts = [0] * 8

    def worker(index: int) -> None:
        client = clients.clickhouse(test_settings, autogenerate_session_id=False)
        try:
            while time.monotonic() < deadline:
                if index % 2:
                    client.insert(kept_table, [(100 + index, f"w{index}")], column_names=["id", "name"])
                else:
                    assert client.command(f"select count() >= 2 from {kept_table}") in (1, True)
                counts[index] += 1
        except BaseException as error:  # collected and reported below
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert all(count > 0 for count in counts)


def test_a_session_used_by_two_requests_at_once_is_refused_as_clickhouse_does(test_settings, clickhouse_url):
    session_id = f"busy-{uuid.uuid4().hex}"
    holder = clients.clickhouse(test_settings, session_id=session_id)
    started = threading.Event()

    def hold():
        started.set()
        holder.query("select sleep(2)")

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait()
    time.sleep(0.5)
    second = clients.clickhouse(test_settings, autogenerate_session_id=False)
    with pytest.raises(DatabaseError, match="373|SESSION_IS_LOCKED"):
        second.query("select 1", settings={"session_id": session_id})
    thread.join(10)
