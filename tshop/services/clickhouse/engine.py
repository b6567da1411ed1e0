"""The chDB engine behind the endpoint: one data directory, opened once by this process, with a cheap
connection per request (its own settings, current database and temporary tables) or per session."""

from __future__ import annotations

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
