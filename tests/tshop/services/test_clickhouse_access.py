"""Who may do what on the local ClickHouse endpoint (tshop/services/clickhouse/access.py), run for real: each
login's grants as a table of allowed and refused statements, a wrong or missing password per login, sessions
that stay their login's own, and what the check costs a query."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from tshop.config import Settings

RAW = "access_raw"  # a database none but the admin has a grant on, like PostgreSQL's raw
ACCESS_DENIED, READONLY, AUTHENTICATION_FAILED = 497, 164, 516


@pytest.fixture(scope="module")
def endpoint(test_settings: Settings, clickhouse_url: str, tmp_path_factory):
    """The endpoint's address, the three logins, a table in each of cdm, events and RAW, and a CSV file."""
    if test_settings.external_clickhouse_url:
        pytest.skip("the grants of an external server are its own (ensure_clickhouse_users)")
    address = f"http://{test_settings.clickhouse_host}:{test_settings.clickhouse_port}/"
    users = {
        "admin": (test_settings.clickhouse_user, test_settings.clickhouse_password),
        "writer": (test_settings.clickhouse_writer_user, test_settings.clickhouse_writer_password),
        "reader": (test_settings.clickhouse_reader_user, test_settings.clickhouse_reader_password),
    }
    csv = tmp_path_factory.mktemp("access") / "rows.csv"
    csv.write_text("1\n2\n3\n")
    with httpx.Client(timeout=60) as http:
        run = Runner(http, address, users, str(csv))
        for database in ("cdm", "events", RAW):
            run.ok("admin", f"CREATE DATABASE IF NOT EXISTS {database}")
            run.ok("admin", f"DROP TABLE IF EXISTS {database}.access_probe")
            run.ok("admin", f"CREATE TABLE {database}.access_probe (a Int32) ENGINE = MergeTree ORDER BY a")
            run.ok("admin", f"INSERT INTO {database}.access_probe VALUES (1), (2)")
        yield run
        for database in ("cdm", "events"):
            for table in ("access_probe", "access_w", "access_w2"):
                run.ok("admin", f"DROP TABLE IF EXISTS {database}.{table}")
        run.ok("admin", f"DROP DATABASE IF EXISTS {RAW}")


class Runner:
    def __init__(self, http: httpx.Client, address: str, users: dict, csv: str):
        self.http, self.address, self.users, self.csv = http, address, users, csv

    def send(self, role: str, query: str, password: str | None = None, **params) -> httpx.Response:
        user, right = self.users[role]
        auth = (user, right if password is None else password)
        return self.http.post(self.address, params=params, content=query.encode(), auth=auth)

    def ok(self, role: str, query: str, **params) -> str:
        answer = self.send(role, query, **params)
        assert answer.status_code == 200, (role, query, answer.text)
        return answer.text


def _code(answer: httpx.Response) -> int | None:
    return int(answer.headers["X-ClickHouse-Exception-Code"]) if answer.status_code != 200 else None


CSV = "file('{csv}', 'CSV', 'a Int32')"
# (login, statement, URL parameters, None when allowed else the ClickHouse code it is refused with)
GRANTS = [
    # the admin: everything
    ("admin", f"SELECT count() FROM {RAW}.access_probe", {}, None),
    ("admin", f"CREATE TABLE IF NOT EXISTS {RAW}.admin_t (a Int32) ENGINE = Memory", {}, None),
    ("admin", f"DROP TABLE {RAW}.admin_t", {}, None),
    ("admin", "SELECT count() FROM system.processes", {}, None),
    ("admin", f"SELECT count() FROM {CSV}", {}, None),
    # the writer: reads and writes cdm and events, reads through file(), nothing else
    ("writer", "CREATE TABLE cdm.access_w (a Int32) ENGINE = MergeTree ORDER BY a", {}, None),
    ("writer", "INSERT INTO cdm.access_w VALUES (7)", {}, None),
    ("writer", f"INSERT INTO cdm.access_w SELECT a FROM {CSV}", {}, None),
    ("writer", "ALTER TABLE cdm.access_w ADD COLUMN b Int32 DEFAULT 0", {}, None),
    ("writer", "CREATE TABLE cdm.access_w__dbt_tmp AS cdm.access_w", {}, None),
    ("writer", "EXCHANGE TABLES cdm.access_w__dbt_tmp AND cdm.access_w", {}, None),
    ("writer", "DROP TABLE cdm.access_w__dbt_tmp", {}, None),
    (
        "writer",
        "CREATE TABLE events.access_w ENGINE = MergeTree ORDER BY a AS SELECT a FROM cdm.access_probe",
        {},
        None,
    ),
    ("writer", "RENAME TABLE events.access_w TO events.access_w2", {}, None),
    ("writer", "DROP TABLE events.access_w2", {}, None),
    ("writer", "OPTIMIZE TABLE cdm.access_w FINAL", {}, None),
    ("writer", "SELECT count() FROM access_probe", {"database": "events"}, None),
    ("writer", "SELECT name FROM system.tables WHERE database = 'cdm'", {}, None),
    ("writer", "CREATE DATABASE IF NOT EXISTS events", {}, None),
    ("writer", "DROP TABLE cdm.access_w", {}, None),
    ("writer", f"SELECT count() FROM {RAW}.access_probe", {}, ACCESS_DENIED),
    ("writer", f"INSERT INTO {RAW}.access_probe VALUES (3)", {}, ACCESS_DENIED),
    ("writer", f"CREATE TABLE {RAW}.w (a Int32) ENGINE = Memory", {}, ACCESS_DENIED),
    ("writer", f"INSERT INTO cdm.access_probe SELECT a FROM {RAW}.access_probe", {}, ACCESS_DENIED),
    ("writer", f"DROP DATABASE {RAW}", {}, ACCESS_DENIED),
    ("writer", "CREATE DATABASE access_other", {}, ACCESS_DENIED),
    ("writer", "SELECT count() FROM access_probe", {"database": RAW}, ACCESS_DENIED),
    ("writer", "SELECT name FROM system.users", {}, ACCESS_DENIED),
    ("writer", "CREATE USER intruder IDENTIFIED BY 'x'", {}, ACCESS_DENIED),
    ("writer", "GRANT SELECT ON *.* TO tshop_reader", {}, ACCESS_DENIED),
    ("writer", "KILL QUERY WHERE 1", {}, ACCESS_DENIED),
    ("writer", "SYSTEM DROP DNS CACHE", {}, ACCESS_DENIED),
    # the reader: SELECT on cdm and events, the system tables clients read, nothing else
    ("reader", "SELECT count() FROM cdm.access_probe", {}, None),
    ("reader", "SELECT count() FROM access_probe", {}, None),  # its default database: cdm
    ("reader", "SELECT count() FROM access_probe", {"database": "events"}, None),
    ("reader", "SELECT a FROM cdm.access_probe WHERE a IN (SELECT a FROM events.access_probe)", {}, None),
    ("reader", "WITH t AS (SELECT 1 AS a) SELECT * FROM t", {}, None),
    ("reader", "SELECT sum(number) FROM numbers(10)", {}, None),
    ("reader", "SELECT name, type FROM system.columns WHERE database = 'cdm'", {}, None),
    ("reader", "SELECT version(), timezone()", {}, None),
    ("reader", "SHOW TABLES", {}, None),
    ("reader", "DESCRIBE TABLE cdm.access_probe", {}, None),
    ("reader", "EXPLAIN SELECT count() FROM cdm.access_probe", {}, None),
    ("reader", "SELECT count() FROM cdm.access_probe", {"max_threads": "2", "readonly": "2"}, None),
    ("reader", "SET max_threads = 1", {}, None),
    ("reader", "INSERT INTO cdm.access_probe VALUES (3)", {}, READONLY),
    ("reader", "CREATE TABLE cdm.r (a Int32) ENGINE = Memory", {}, READONLY),
    ("reader", "CREATE TABLE raw_copy ENGINE = Memory AS SELECT 1", {}, READONLY),
    ("reader", "DROP TABLE cdm.access_probe", {}, READONLY),
    ("reader", "ALTER TABLE cdm.access_probe DELETE WHERE 1", {}, READONLY),
    ("reader", "OPTIMIZE TABLE cdm.access_probe FINAL", {}, READONLY),
    ("reader", "TRUNCATE TABLE cdm.access_probe", {}, READONLY),
    ("reader", "KILL QUERY WHERE 1", {}, READONLY),
    ("reader", "SYSTEM FLUSH LOGS", {}, READONLY),
    ("reader", "SET readonly = 0", {}, READONLY),  # chDB's own refusal: readonly = 2 holds
    ("reader", "SELECT 1 SETTINGS readonly = 0", {}, READONLY),  # chDB's own refusal
    ("reader", "SELECT 1", {"readonly": "0"}, READONLY),
    ("reader", "SELECT name FROM system.users", {}, ACCESS_DENIED),
    ("reader", "SELECT * FROM system.grants", {}, ACCESS_DENIED),
    ("reader", "SELECT query FROM system.processes", {}, ACCESS_DENIED),
    ("reader", "SELECT 1 WHERE 'x' IN (SELECT name FROM system.users)", {}, ACCESS_DENIED),
    ("reader", "SHOW GRANTS", {}, READONLY),
    ("reader", f"SELECT count() FROM {RAW}.access_probe", {}, ACCESS_DENIED),
    ("reader", f"SELECT 1 WHERE 1 IN {RAW}.access_probe", {}, ACCESS_DENIED),
    ("reader", f"SELECT * FROM cdm.access_probe JOIN {RAW}.access_probe USING a", {}, ACCESS_DENIED),
    ("reader", f"SELECT (SELECT max(a) FROM {RAW}.access_probe)", {}, ACCESS_DENIED),
    ("reader", "SELECT count() FROM `cdm.x`.access_probe", {}, ACCESS_DENIED),
    ("reader", "SELECT count() FROM access_probe", {"database": RAW}, ACCESS_DENIED),
    ("reader", f"USE {RAW}", {}, ACCESS_DENIED),
    ("reader", f"EXISTS TABLE {RAW}.access_probe", {}, ACCESS_DENIED),
    ("reader", f"SHOW CREATE TABLE {RAW}.access_probe", {}, ACCESS_DENIED),
    ("reader", f"DESCRIBE TABLE {RAW}.access_probe", {}, ACCESS_DENIED),
    ("reader", "SELECT count() FROM {db:Identifier}.access_probe", {"param_db": RAW}, ACCESS_DENIED),
    ("reader", f"SELECT count() FROM {CSV}", {}, ACCESS_DENIED),
    ("reader", "SELECT file('/etc/hostname')", {}, ACCESS_DENIED),
    ("reader", "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a Int32')", {}, ACCESS_DENIED),
    ("reader", "SELECT * FROM postgresql('127.0.0.1:9', 'db', 't', 'u', 'p')", {}, ACCESS_DENIED),
    ("reader", "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv', 'CSV', 'a Int32')", {}, ACCESS_DENIED),
    ("reader", "SELECT * FROM remote('127.0.0.1', system.users)", {}, ACCESS_DENIED),
    ("reader", f"SELECT * FROM merge('{RAW}', '.*')", {}, ACCESS_DENIED),
    ("reader", "SELECT dictGet('d', 'a', 1)", {}, ACCESS_DENIED),
    ("reader", f"SELECT joinGet('{RAW}.j', 'a', 1)", {}, ACCESS_DENIED),
]


@pytest.mark.parametrize(
    ("role", "query", "params", "refused_with"),
    GRANTS,
    ids=[f"{role}-{'refused' if code else 'allowed'}-{query[:50]}" for role, query, _, code in GRANTS],
)
def test_each_login_s_grants(endpoint: Runner, role, query, params, refused_with):
    answer = endpoint.send(role, query.replace("{csv}", endpoint.csv), **params)
    assert _code(answer) == refused_with, (answer.status_code, answer.text[:400])
    if refused_with:
        assert answer.text.startswith(f"Code: {refused_with}. DB::Exception: "), answer.text
    if refused_with == ACCESS_DENIED:
        assert "Not enough privileges" in answer.text and answer.status_code == 403


@pytest.mark.parametrize("role", ["admin", "writer", "reader"])
@pytest.mark.parametrize("password", ["wrong password", ""])
def test_a_wrong_or_missing_password_is_refused(endpoint: Runner, role: str, password: str):
    answer = endpoint.send(role, "SELECT 1", password=password)
    assert _code(answer) == AUTHENTICATION_FAILED and answer.status_code == 403
    assert "Authentication failed" in answer.text
    # the right password of another login does not open this one
    other = "reader" if role != "reader" else "writer"
    user, _ = endpoint.users[role]
    crossed = endpoint.http.post(endpoint.address, content=b"SELECT 1", auth=(user, endpoint.users[other][1]))
    assert _code(crossed) == AUTHENTICATION_FAILED


def test_no_credentials_at_all_and_an_unknown_user_are_refused(endpoint: Runner):
    answer = endpoint.http.post(endpoint.address, content=b"SELECT 1")  # the `default` user, no password
    assert _code(answer) == AUTHENTICATION_FAILED
    answer = endpoint.http.post(endpoint.address, content=b"SELECT 1", auth=("nobody", "x"))
    assert _code(answer) == AUTHENTICATION_FAILED


def test_a_session_belongs_to_its_login(endpoint: Runner):
    endpoint.ok("admin", "CREATE TEMPORARY TABLE secret_rows (a Int32)", session_id="access-shared")
    endpoint.ok("admin", "INSERT INTO secret_rows VALUES (42)", session_id="access-shared")
    assert endpoint.ok("admin", "SELECT a FROM secret_rows", session_id="access-shared").strip() == "42"
    # the reader naming the same session gets a session of its own, read-only, in cdm
    answer = endpoint.send("reader", "SELECT a FROM secret_rows", session_id="access-shared")
    assert _code(answer) == 60, answer.text  # UNKNOWN_TABLE: the admin's table is not in its session
    assert endpoint.ok("reader", "SELECT currentDatabase()", session_id="access-shared").strip() == "cdm"
    answer = endpoint.send("reader", "SET readonly = 0", session_id="access-shared")
    assert _code(answer) == READONLY
    answer = endpoint.send("reader", f"USE {RAW}", session_id="access-shared")
    assert _code(answer) == ACCESS_DENIED
    # the writer's temporary tables, in a session of its own
    endpoint.ok("writer", "CREATE TEMPORARY TABLE w_rows (a Int32)", session_id="access-w")
    endpoint.ok("writer", "INSERT INTO w_rows SELECT a FROM cdm.access_probe", session_id="access-w")
    assert endpoint.ok("writer", "SELECT count() FROM w_rows", session_id="access-w").strip() == "2"


def test_a_pooled_connection_is_not_shared_between_logins(endpoint: Runner):
    """The same database and settings: the admin's idle connection is never handed to the reader."""
    for _ in range(3):
        endpoint.ok("admin", "SELECT 1", database="cdm")
    assert endpoint.ok("reader", "SELECT getSetting('readonly')", database="cdm").strip() == "2"
    assert endpoint.ok("admin", "SELECT getSetting('readonly')", database="cdm").strip() == "0"


def test_the_check_costs_a_query_little(endpoint: Runner):
    """The reader's queries are parsed by ClickHouse first (EXPLAIN AST); a tile's query stays quick."""
    query = (
        "SELECT toStartOfDay(toDateTime(a)) AS __timestamp, sum(a) AS revenue FROM cdm.access_probe "
        "WHERE a IN (SELECT a FROM events.access_probe) GROUP BY __timestamp ORDER BY revenue DESC LIMIT 10000"
    )

    def median_ms(role: str) -> float:
        times = []
        for _ in range(60):
            started = time.perf_counter()
            endpoint.ok(role, query, database="cdm")
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times[10:])

    admin, reader = median_ms("admin"), median_ms("reader")
    print(f"median per query: admin (unchecked) {admin:.2f} ms, reader (checked) {reader:.2f} ms")
    assert reader - admin < 15, (admin, reader)
