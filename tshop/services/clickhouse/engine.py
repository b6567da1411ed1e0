"""The chDB engine behind the endpoint: one data directory, opened once by this process, with a cheap
connection per request (its own settings, current database and temporary tables) or per session."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import chdb

# ClickHouse's own error codes for what the endpoint itself refuses
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
_CODE = re.compile(r"Code: (\d+)\.")
# The endpoint's own system.query_log. chDB fills a query log of its own only when given a server config
# (`query_log` section): it then logs every query as user `default` (chDB runs all as `default`) under query
# ids of its own, not the login nor the X-ClickHouse-Query-Id the endpoint answered with; and it logs the
# endpoint's own statements (access checks, connection set-up) too. So the endpoint logs its requests itself,
# into a table of the same name and columns, kept in memory for the life of the server (the newest rows).
QUERY_LOG_COLUMNS = """
    type Enum8('QueryStart' = 1, 'QueryFinish' = 2, 'ExceptionBeforeStart' = 3, 'ExceptionWhileProcessing' = 4),
    event_date Date, event_time DateTime, event_time_microseconds DateTime64(6),
    query_start_time DateTime, query_start_time_microseconds DateTime64(6), query_duration_ms UInt64,
    read_rows UInt64, read_bytes UInt64, written_rows UInt64, written_bytes UInt64,
    result_rows UInt64, result_bytes UInt64, memory_usage UInt64,
    current_database String, query String, query_kind LowCardinality(String),
    exception_code Int32, exception String, is_initial_query UInt8, user String, query_id String,
    initial_user String, initial_query_id String, interface UInt8, http_method UInt8,
    http_user_agent String, client_name String"""
QUERY_LOG_TABLE = (
    f"CREATE TABLE IF NOT EXISTS system.query_log ({QUERY_LOG_COLUMNS}) ENGINE = Memory "
    "SETTINGS max_rows_to_keep = 200000, max_bytes_to_keep = 268435456"
)
QUERY_LOG_FLUSH_SECONDS = 1.0


class QueryError(Exception):
    """An error in ClickHouse's form: its code and its `Code: N. DB::Exception: ...` text."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text

    @classmethod
    def from_engine(cls, error: Exception) -> QueryError:
        if isinstance(error, UnicodeDecodeError) and isinstance(error.object, bytes):
            # the engine's message quotes query text that is not UTF-8, which chDB cannot turn into str
            text = error.object.decode("utf-8", "replace").strip()
        else:
            text = str(error).strip()
        match = _CODE.search(text)
        return cls(
            int(match.group(1)) if match else 1000, text if match else f"Code: 1000. DB::Exception: {text}"
        )

    @classmethod
    def of(cls, code: int, name: str, message: str) -> QueryError:
        return cls(code, f"Code: {code}. DB::Exception: {message}. ({name})")


@dataclass
class Result:
    data: bytes | memoryview
    rows_read: int
    bytes_read: int
    rows_written: int
    bytes_written: int
    elapsed: float
    # chDB's rows_read()/bytes_read() count the result set; these count what was read from storage
    storage_rows_read: int = 0
    storage_bytes_read: int = 0


@dataclass
class Session:
    connection: object
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    expires_at: float = 0.0
    # the query parameters the session SET itself (`SET param_x = ...`): chDB forgets them whenever a query
    # comes with parameters of its own, so every query of the session is given them again
    parameters: dict[str, str] = field(default_factory=dict)

    def touch(self) -> None:
        self.expires_at = time.monotonic() + self.timeout


@dataclass
class Pooled:
    connection: object
    dirty: bool = False


class QueryLog:
    """Rows for system.query_log, written a batch at a time (as ClickHouse flushes its logs): every
    QUERY_LOG_FLUSH_SECONDS, and whenever a query reads the log (`flush()`)."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._rows: list[dict] = []
        self._lock = threading.Lock()  # guards _rows
        self._writing = threading.Lock()  # one flush at a time, in the rows' order
        self._connection = chdb.connect(engine.path)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._flush_every, name="query-log", daemon=True)
        self._thread.start()

    def add(self, row: dict) -> None:
        with self._lock:
            self._rows.append(row)

    def flush(self) -> None:
        with self._writing:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return
            data = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
            # a DROP of the table (the admin's, or the writer's: real ClickHouse lets it) only empties the log
            self._engine.run(self._connection, QUERY_LOG_TABLE, "TSV")
            self._engine.run(
                self._connection, f"INSERT INTO system.query_log FORMAT JSONEachRow\n{data}", "TSV"
            )

    def _flush_every(self) -> None:
        while not self._stopped.wait(QUERY_LOG_FLUSH_SECONDS):
            try:
                self.flush()
            except QueryError:
                pass  # the rows are lost, as ClickHouse loses a log batch it cannot write; the next goes on

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._connection.close()


class Engine:
    def __init__(self, path: str):
        self.path = path
        # the first connection opens the engine on the data directory; it stays open for the life of the
        # server so the directory stays ours (chDB lets one process open it)
        self._root = chdb.connect(path)
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        self._pool: dict[tuple, list] = {}
        self._pool_lock = threading.Lock()
        self.version, self.timezone = (
            self.run(self._root, "SELECT version(), timezone()", "TSV").data.decode().strip().split("\t")
        )
        self.run(self._root, QUERY_LOG_TABLE, "TSV")
        self.query_log = QueryLog(self)

    def run(
        self, connection, query: str | bytes, output_format: str, parameters: dict[str, str] | None = None
    ) -> Result:
        """Run one statement. `query` may hold bytes that are not UTF-8 (in string literals, as ClickHouse
        allows); `parameters` are this query's parameters only, they do not stay on the connection."""
        if isinstance(query, str):
            query = query.encode("utf-8", "surrogateescape")
        try:
            result = connection.query(query, output_format, params=parameters or None)
        except Exception as error:  # chDB raises its own ChdbError (and RuntimeError from older paths)
            raise QueryError.from_engine(error) from None
        if getattr(result, "has_error", lambda: False)():
            raise QueryError.from_engine(RuntimeError(result.error_message()))
        return Result(
            result.bytes() or b"",
            result.rows_read(),
            result.bytes_read(),
            result.rows_written(),
            result.bytes_written(),
            result.elapsed(),
            result.storage_rows_read(),
            result.storage_bytes_read(),
        )

    @contextmanager
    def pooled(self, key: tuple, prepare) -> Iterator[Pooled]:
        """A connection outside any session, configured by `prepare(connection)` for `key` (the request's
        database and settings). Connections go back to the pool of their key unless the request marked
        them `dirty` (it changed their state: SET, USE, temporary tables). Query parameters never stay on
        a connection: each query is given its own."""
        with self._pool_lock:
            idle = self._pool.get(key)
            connection = idle.pop() if idle else None
        if connection is None:
            connection = chdb.connect(self.path)
            try:
                prepare(connection)
            except BaseException:
                connection.close()
                raise
        handle = Pooled(connection)
        try:
            yield handle
        finally:
            if handle.dirty:
                connection.close()
            else:
                with self._pool_lock:
                    idle = self._pool.setdefault(key, [])
                    if len(idle) < 8 and len(self._pool) <= 64:
                        idle.append(connection)
                    else:
                        connection.close()

    @contextmanager
    def session(self, session_id: str, timeout: float, check: bool, prepare=None) -> Iterator[Session]:
        """The session, locked for the request (ClickHouse refuses concurrent use); a new one's connection
        is first given to `prepare(connection)` (its login's database and settings profile)."""
        self._expire_sessions()
        with self._sessions_lock:
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise QueryError.of(
                        SESSION_NOT_FOUND, "SESSION_NOT_FOUND", f"Session {session_id} not found"
                    )
                connection = chdb.connect(self.path)
                try:
                    if prepare is not None:
                        prepare(connection)
                except BaseException:
                    connection.close()
                    raise
                session = self._sessions[session_id] = Session(connection, timeout)
            session.timeout = timeout
            if not session.lock.acquire(blocking=False):
                raise QueryError.of(
                    SESSION_IS_LOCKED,
                    "SESSION_IS_LOCKED",
                    f"Session {session_id} is locked by a concurrent client",
                )
        try:
            yield session
        finally:
            session.touch()
            session.lock.release()

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        with self._sessions_lock:
            for session_id, session in list(self._sessions.items()):
                if session.expires_at and session.expires_at < now and session.lock.acquire(blocking=False):
                    del self._sessions[session_id]
                    session.connection.close()
                    session.lock.release()

    def close(self) -> None:
        self.query_log.close()
        with self._pool_lock:
            for idle in self._pool.values():
                for connection in idle:
                    connection.close()
            self._pool.clear()
        with self._sessions_lock:
            for session in self._sessions.values():
                session.connection.close()
            self._sessions.clear()
        self._root.close()
