"""ClickHouse's HTTP interface over the chDB engine, as clients use it.

One thread per connection (keep-alive). A request carries its query in the `query` parameter and/or the
body, one statement per request (a second one is refused with code 62, as ClickHouse does). The query
text, INSERT data aside, is held in memory up to `max_query_size` bytes (ClickHouse's setting: 256 KiB
unless the URL sets it, and never more than `MAX_QUERY_SIZE_CEILING`); an INSERT's data (the body,
chunked or not, plain or compressed, or what follows `FORMAT x` / `VALUES` in the query text) is streamed
to a file, a bounded piece at a time, and read by the engine with `INSERT ... FROM INFILE`. URL parameters
that are not the interface's own are settings for that query only; `param_*` are query parameters, given
to that query only. Statements that return no result (DDL, SET, INSERT) are answered with no body and no
`X-ClickHouse-Format`. Every error, malformed HTTP included, keeps ClickHouse's form: its HTTP status,
`X-ClickHouse-Exception-Code` and a `Code: N. DB::Exception: ... (NAME)` body.

A multipart/form-data body (clickhouse-connect's way with large parameters) gives text fields that are
parameters as the URL's are (`query`, `param_*`, settings), and file parts that are external tables: each
spooled to disk and read by a temporary table of that query's connection alone (`<name>_structure` or
`<name>_types`, `<name>_format`). `client_protocol_version` is taken and not passed on: chDB cannot be given
a client revision, so Native results are those of revision 0 (no BlockInfo before each block), which
clickhouse-connect's probe of it detects. Every query of a login goes to system.query_log (engine.QueryLog)
under its login and query id; who may read that table is access.py's: the admin and the writer (all
logins' queries, as a ClickHouse user with SELECT on it), not the reader.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import socket
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import lz4.frame

from tshop.services.clickhouse import access
from tshop.services.clickhouse.access import AccessError, Login
from tshop.services.clickhouse.body import Form, RawBody, RequestBody, content_length
from tshop.services.clickhouse.engine import Engine, QueryError, Result, Session
from tshop.services.clickhouse.sql import (
    PARAMETER_NAME,
    first_keyword,
    output_format,
    parameter_names,
    second_statement_at,
    split_insert,
    split_types,
)

try:
    from backports import zstd
except ImportError:  # Python 3.14 has it in the standard library
    from compression import zstd  # type: ignore[no-redef]

log = logging.getLogger("tshop.clickhouse")

# URL parameters of the HTTP interface itself; every other one is a setting (or param_* a query parameter)
INTERFACE_PARAMS = {
    "query", "database", "default_format", "user", "password", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "quota_key", "buffer_size",
    "wait_end_of_query", "role", "client_protocol_version", "stacktrace", "with_stacktrace",
}  # fmt: skip
READ_ONLY_STATEMENTS = {"SELECT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "WITH", "EXPLAIN", "CHECK"}
# statements that answer with no result set: ClickHouse sends them no body and no X-ClickHouse-Format
NO_RESULT_STATEMENTS = {
    "INSERT", "CREATE", "ALTER", "DROP", "SET", "USE", "TRUNCATE", "RENAME", "OPTIMIZE", "ATTACH",
    "DETACH", "GRANT", "REVOKE", "SYSTEM", "EXCHANGE", "UNDROP", "DELETE", "UPDATE", "BEGIN", "COMMIT",
    "ROLLBACK", "MOVE",
}  # fmt: skip
# statements that change a pooled connection's own state: it is not handed to another request
STATE_CHANGING_STATEMENTS = {"SET", "USE", "CREATE"}
DEFAULT_MAX_QUERY_SIZE = 262144  # ClickHouse's default max_query_size
# the most query text (INSERT data aside) held in memory, whatever max_query_size a request asks for
MAX_QUERY_SIZE_CEILING = 64 * 1024 * 1024
MAX_SESSION_TIMEOUT = 3600  # ClickHouse's default max_session_timeout
AUTHENTICATION_FAILED = 516
PLAIN_TEXT = "text/plain; charset=UTF-8"
LOG_QUERY_LENGTH = 100000  # ClickHouse's log_queries_cut_to_length

# How ClickHouse maps exception codes to HTTP statuses (exceptionCodeToHTTPStatus); others get 500
HTTP_STATUS = {
    194: 401,  # required password
    **dict.fromkeys((192, 193, 516, 512, 497), 403),  # unknown user, wrong password, authentication, access
    **dict.fromkeys(
        (36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117,
         53, 321),
        400,
    ),  # bad arguments, cannot parse, syntax error, incorrect data, type mismatch
    **dict.fromkeys((60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511), 404),  # unknown table, ...
    229: 413,  # query is too large
    48: 501,  # not implemented
    **dict.fromkeys((209, 76, 439), 503),  # socket timeout, cannot open file, cannot schedule task
    381: 411,  # HTTP length required
    159: 408,  # timeout exceeded
    779: 415,  # unsupported media type
}  # fmt: skip

# http.server's own refusals (malformed request line or headers, unknown method), as ClickHouse codes
HTTP_REFUSALS = {
    414: (229, "QUERY_IS_TOO_LARGE"),
    501: (1, "UNSUPPORTED_METHOD"),
}
MALFORMED_REQUEST = (1000, "POCO_EXCEPTION")  # what ClickHouse reports when its HTTP parser refuses one


def http_status(code: int) -> int:
    return HTTP_STATUS.get(code, 500)


def _compress_response(data: bytes | memoryview, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(data, compresslevel=3)
    if encoding == "deflate":
        return zlib.compress(data, 3)
    if encoding == "lz4":
        return lz4.frame.compress(data)
    if encoding == "zstd":
        return zstd.compress(data)
    raise ValueError(encoding)


class Request:
    """The parts of one HTTP request the interface reads."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        url = urlsplit(handler.path)
        self.path = url.path
        # bytes that are not UTF-8 are kept as they were sent (surrogateescape), as ClickHouse keeps them
        self.params = dict(parse_qsl(url.query, keep_blank_values=True, errors="surrogateescape"))
        self.headers = handler.headers
        self.method = handler.command
        # the external tables of a multipart/form-data body: {name: spooled file}
        self.external: dict[str, Path] = {}

    def add_form(self, form: Form) -> None:
        """A multipart/form-data body's text fields are parameters as the URL's are (`query`, `param_*`,
        settings; the URL's win), its file parts external tables."""
        self.params = {**form.fields, **self.params}
        self.external = form.files

    def credentials(self) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True)
            except (binascii.Error, ValueError):
                raise QueryError.of(
                    AUTHENTICATION_FAILED,
                    "AUTHENTICATION_FAILED",
                    "Invalid authentication: the Authorization header is not valid Basic credentials",
                ) from None
            user, _, password = decoded.decode(errors="replace").partition(":")
            return user, password
        user = self.headers.get("X-ClickHouse-User") or self.params.get("user") or "default"
        password = self.headers.get("X-ClickHouse-Key") or self.params.get("password") or ""
        return user, password

    def settings(self) -> dict[str, str]:
        external = {
            f"{name}_{suffix}" for name in self.external for suffix in ("format", "structure", "types")
        }
        return {
            name: value
            for name, value in self.params.items()
            if name not in INTERFACE_PARAMS and not name.startswith("param_") and name not in external
        }

    def query_parameters(self) -> dict[str, str]:
        parameters = {name[6:]: value for name, value in self.params.items() if name.startswith("param_")}
        for name, value in parameters.items():
            if not PARAMETER_NAME.fullmatch(name):
                # no `{name:Type}` placeholder can name it: a typo a query would otherwise never see
                raise QueryError.of(
                    36,
                    "BAD_ARGUMENTS",
                    f"Invalid query parameter name {name!r}: a parameter is named as a `{{name:Type}}` "
                    "placeholder names it, with letters, digits, `_` and `$` (`param_$1`)",
                )
            if not _is_utf8(name + value):
                # chDB takes parameters as text only: refused rather than changed
                raise QueryError.of(
                    36, "BAD_ARGUMENTS", f"Query parameter {name!r} is not valid UTF-8 on this endpoint"
                )
        return parameters

    def max_query_size(self) -> int:
        """How much query text (INSERT data aside) this request may send: ClickHouse's max_query_size."""
        value = self.params.get("max_query_size", "")
        size = int(value) if value.isdigit() else DEFAULT_MAX_QUERY_SIZE
        return min(size, MAX_QUERY_SIZE_CEILING)

    def session_timeout(self) -> float:
        value = self.params.get("session_timeout") or "60"
        if not value.isdigit():
            raise QueryError.of(374, "INVALID_SESSION_TIMEOUT", f"Invalid session timeout: '{value}'")
        if int(value) > MAX_SESSION_TIMEOUT:
            raise QueryError.of(
                374,
                "INVALID_SESSION_TIMEOUT",
                f"Session timeout '{value}' is larger than max_session_timeout: {MAX_SESSION_TIMEOUT}",
            )
        return float(value)


@dataclass
class LogEntry:
    """What system.query_log records of one request of a login."""

    query_id: str
    user: str
    method: str
    user_agent: str
    started: float = field(default_factory=time.time)
    query: str = ""
    database: str = ""
    kind: str = ""
    running: bool = False  # the engine was given the query: a failure is ExceptionWhileProcessing


class ClickHouseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # small answers must not wait for the client's delayed ACK (40 ms per request otherwise)
    disable_nagle_algorithm = True
    server: ClickHouseHTTPServer

    # -- plumbing -------------------------------------------------------------------------------
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._send(200, b"", {"Content-Type": PLAIN_TEXT})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line or header, an unknown method) in
        ClickHouse's form, not the standard library's HTML page."""
        exception_code, name = HTTP_REFUSALS.get(code, MALFORMED_REQUEST)
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Bad request"
        error = QueryError.of(exception_code, name, message or phrase)
        if self.request_version == "HTTP/0.9":
            # a request line too broken to name a version: answer in HTTP/1.1, with a status line and
            # headers, rather than the bare body HTTP/0.9 would get
            self.request_version = self.protocol_version
        self.close_connection = True
        self._send(code, self._error_body(error), self._error_headers(error, {"Connection": "close"}))
        self._discard_unread_input()

    def _send(self, status: int, body: bytes | memoryview, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            # the client went away; nothing is waiting for this answer
            self.close_connection = True

    def _base_headers(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "Keep-Alive": "timeout=10",
        }

    def _error_body(self, error: QueryError) -> bytes:
        text = error.text + f" (version {self.server.engine.version})\n"
        return text.encode("utf-8", "replace")

    @staticmethod
    def _error_headers(error: QueryError, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "X-ClickHouse-Exception-Code": str(error.code), "Content-Type": PLAIN_TEXT}

    def _refuse(
        self, error: QueryError, headers: dict[str, str], body: RawBody | None, entry: LogEntry | None = None
    ) -> None:
        """Answer with an error. What is left of the body is read first, as ClickHouse does: the
        connection stays usable, and a client still sending would otherwise miss the answer."""
        self._log_error(entry, error)
        if body is not None and not body.finished:
            body.drain()
        broken = body is None or not body.finished  # the request's end cannot be found: no next request
        if broken:
            self.close_connection = True
            headers = {**headers, "Connection": "close"}
        self._send(http_status(error.code), self._error_body(error), self._error_headers(error, headers))
        if broken:
            self._discard_unread_input()

    def _discard_unread_input(self) -> None:
        """Before closing: read and drop what the client still sends (up to 1 MiB, for up to a second).
        A socket closed with unread input is reset, and the client could lose the answer it was sent."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1)
            left = 1024 * 1024
            while left > 0 and (data := self.rfile.read1(65536)):
                left -= len(data)
        except OSError:
            pass  # gone already, or silent: nothing more to do

    def _raw_body(self) -> RawBody:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = 0 if chunked else content_length(self.headers.get("Content-Length"))
        return RawBody(self.rfile, chunked, length)

    # -- the interface -------------------------------------------------------------------------
    def _serve(self) -> None:
        request = Request(self)
        query_id = request.params.get("query_id") or str(uuid.uuid4())
        headers = self._base_headers(query_id)
        raw: RawBody | None = None
        entry: LogEntry | None = None
        try:
            raw = self._raw_body()
            if self._serve_page(request, raw):
                return
            login = self._authenticate(request)
            entry = LogEntry(
                query_id,
                login.name,
                self.command,
                self.headers.get("User-Agent", ""),
                database=login.default_database or "",
            )
            encoding = self.headers.get("Content-Encoding", "").strip().lower() or None
            body = RequestBody(raw, encoding)
            self._read_form(request, body)
            result, response_format = self._execute(request, body, query_id, login, entry)
        except AccessError as error:
            self._refuse(QueryError.of(error.code, error.name, error.message), headers, raw, entry)
            return
        except QueryError as error:
            self._refuse(error, headers, raw, entry)
            return
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            self.close_connection = True
            return
        except Exception as error:  # a fault of the endpoint itself: still answered in ClickHouse's form
            log.exception("query %s failed inside the endpoint", query_id)
            self._refuse(
                QueryError.of(1001, "STD_EXCEPTION", f"{type(error).__name__}: {error}"), headers, raw, entry
            )
            return
        finally:
            for path in request.external.values():
                path.unlink(missing_ok=True)
        self._log_finish(entry, result, response_format)
        self._answer(request, result, response_format, headers)

    def _read_form(self, request: Request, body: RequestBody) -> None:
        """A multipart/form-data body (clickhouse-connect's large parameters, external data): its fields and
        files, read before anything else; its file parts on disk."""
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return
        form = Form(self.server.spool_dir, MAX_QUERY_SIZE_CEILING)
        try:
            form.read(body, content_type)
        except BaseException:
            form.discard()
            raise
        request.add_form(form)

    # -- system.query_log ------------------------------------------------------------------------
    def _log(self, entry: LogEntry, kind: str, **values) -> None:
        now = time.time()
        zone = ZoneInfo(self.server.engine.timezone)
        at, start = datetime.fromtimestamp(now, zone), datetime.fromtimestamp(entry.started, zone)
        self.server.engine.query_log.add({
            "type": kind,
            "event_date": at.strftime("%Y-%m-%d"),
            "event_time": at.strftime("%Y-%m-%d %H:%M:%S"),
            "event_time_microseconds": at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "query_start_time": start.strftime("%Y-%m-%d %H:%M:%S"),
            "query_start_time_microseconds": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "query_duration_ms": 0 if kind == "QueryStart" else int((now - entry.started) * 1000),
            "current_database": entry.database,
            "query": entry.query[:LOG_QUERY_LENGTH],
            "query_kind": entry.kind,
            "is_initial_query": 1,
            "user": entry.user,
            "initial_user": entry.user,
            "query_id": entry.query_id,
            "initial_query_id": entry.query_id,
            "interface": 2,  # HTTP
            "http_method": 1 if entry.method == "GET" else 2,
            "http_user_agent": entry.user_agent,
            **values,
        })  # fmt: skip

    def _log_finish(self, entry: LogEntry, result: Result, response_format: str | None) -> None:
        self._log(
            entry,
            "QueryFinish",
            read_rows=result.storage_rows_read,
            read_bytes=result.storage_bytes_read,
            written_rows=result.rows_written,
            written_bytes=result.bytes_written,
            result_rows=result.rows_read if response_format else 0,
            result_bytes=len(result.data) if response_format else 0,
        )

    def _log_error(self, entry: LogEntry | None, error: QueryError) -> None:
        if entry is None:
            return  # not a login's query: a failed authentication, a malformed request
        kind = "ExceptionWhileProcessing" if entry.running else "ExceptionBeforeStart"
        self._log(entry, kind, exception_code=error.code, exception=error.text[:LOG_QUERY_LENGTH])

    def _serve_page(self, request: Request, body: RawBody) -> bool:
        """/ping and the pages that are not queries; False for a query."""
        if request.path in ("/ping", "/replicas_status") or (
            request.path == "/" and self.command == "GET" and "query" not in request.params
        ):
            body.drain()
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return True
        if request.path not in ("/", "/query"):
            # ClickHouse's own answer to a path it has no handler for: a 404 page, not an exception
            body.drain()
            page = (
                f"There is no handle {request.path}\n\nUse / or /ping for health checks.\n"
                "Or /replicas_status for more sophisticated health checks.\n\n"
                "Send queries from your program with POST method or GET /?query=...\n"
            )
            self._send(404, page.encode("utf-8", "surrogateescape"), {"Content-Type": PLAIN_TEXT})
            return True
        return False

    def _answer(self, request: Request, result: Result, response_format: str | None, headers: dict) -> None:
        data = result.data
        # read_*: what the query read from storage, as ClickHouse counts it (chDB's rows_read() is the result's)
        summary = {
            "read_rows": str(result.storage_rows_read),
            "read_bytes": str(result.storage_bytes_read),
            "written_rows": str(result.rows_written),
            "written_bytes": str(result.bytes_written),
            "total_rows_to_read": str(result.storage_rows_read),
            "result_rows": str(result.rows_read),
            "result_bytes": str(len(data)),
            "elapsed_ns": str(int(result.elapsed * 1e9)),
        }
        if response_format is None:
            # no result set: no body and no X-ClickHouse-Format, which is how clients tell
            headers["X-ClickHouse-Summary"] = json.dumps({**summary, "result_rows": "0"})
            self._send(200, b"", {**headers, "Content-Type": PLAIN_TEXT})
            return
        headers["X-ClickHouse-Summary"] = json.dumps(summary)
        headers.update(
            {"Content-Type": _content_type(response_format), "X-ClickHouse-Format": response_format}
        )
        encoding = self._response_encoding(request)
        if encoding and data:
            data = _compress_response(data, encoding)
            headers["Content-Encoding"] = encoding
        self._send(200, data, headers)

    def _authenticate(self, request: Request) -> Login:
        """The login of the request's credentials (tshop.services.clickhouse.access), or code 516."""
        user, password = request.credentials()
        return access.authenticate(self.server.logins, user, password)

    def _response_encoding(self, request: Request) -> str | None:
        if request.params.get("enable_http_compression", "0").lower() not in ("1", "true"):
            return None
        for offered in self.headers.get("Accept-Encoding", "").split(","):
            name = offered.split(";")[0].strip().lower()
            if name in ("zstd", "lz4", "gzip", "x-gzip", "deflate"):
                return name
        return None

    def _execute(
        self, request: Request, body: RequestBody, query_id: str, login: Login, entry: LogEntry
    ) -> tuple[Result, str | None]:
        """Run the request's statement: its result and the format of its result set (None: it has none)."""
        infile: Path | None = None
        try:
            query, infile = self._query_text(request, body)
            entry.query, entry.database = query, request.params.get("database") or entry.database
            _refuse_multi_statements(query)
            statement = first_keyword(query)
            entry.kind = statement.capitalize()
            if self.command == "GET" and statement not in READ_ONLY_STATEMENTS:
                raise QueryError.of(164, "READONLY", "Cannot execute query in readonly mode")
            self._check_access(login, request, query, statement)
            if "query_log" in query.lower():
                # the log is written a batch at a time: a query reading it sees every query before it
                self.server.engine.query_log.flush()
            entry.running = True
            self._log(entry, "QueryStart")
            default_format = request.params.get("default_format") or "TabSeparated"
            response_format = None
            if statement not in NO_RESULT_STATEMENTS:
                response_format = output_format(query) or default_format
            session_id = request.params.get("session_id")
            if session_id:
                with self.server.engine.session(
                    # a session belongs to the login that opened it: another login naming it gets its own
                    f"{login.name}\0{session_id}",
                    request.session_timeout(),
                    request.params.get("session_check", "0") in ("1", "true"),
                    prepare=lambda connection: self._configure(connection, login, None, {}),
                ) as session:
                    result = self._run_in_session(session, request, query, statement, default_format, login)
            else:
                result = self._run_pooled(request, query, statement, default_format, login)
            if response_format is None and result.data:
                response_format = default_format  # a statement that answered after all (a verbose ALTER)
            return result, response_format
        finally:
            if infile:
                infile.unlink(missing_ok=True)

    def _query_text(self, request: Request, body: RequestBody) -> tuple[str, Path | None]:
        """The statement to run and, for an INSERT with data, the file holding that data (uncompressed).
        Only the query text is held in memory, up to max_query_size; INSERT data is streamed to disk."""
        in_url = request.params.get("query")
        if in_url is not None and not body.finished and first_keyword(in_url) == "INSERT":
            insert = split_insert(in_url)
            if insert is None:
                raise QueryError.of(
                    62, "SYNTAX_ERROR", "INSERT query in the URL has no FORMAT for the data in the body"
                )
            # ClickHouse reads the data on from the query parameter, a newline, then the body
            first = insert.inline_data + b"\n" if insert.inline_data else b""
            infile = self._spool(first, body)
            return insert.with_infile(str(infile), None), infile
        limit = request.max_query_size()
        in_url_bytes = None if in_url is None else in_url.encode("utf-8", "surrogateescape")
        joined = len(in_url_bytes) + 1 if in_url_bytes is not None else 0
        sent = body.read_up_to(max(limit + 1 - joined, 1))
        if in_url_bytes is not None:
            sent = in_url_bytes + b"\n" + sent if sent else in_url_bytes
        text = sent.decode("utf-8", "surrogateescape")
        if len(sent) <= limit and body.finished:
            if not text.strip():
                raise QueryError.of(62, "SYNTAX_ERROR", "Empty query")
            insert = split_insert(text)
            if insert is None or not insert.inline_data:
                return text, None
            infile = self._spool(insert.inline_data, body)
            return insert.with_infile(str(infile), None), infile
        # longer than max_query_size: only an INSERT whose data starts within it goes on, data to disk
        insert = split_insert(text, values_as_data=True)
        if insert is None or not insert.inline_data:
            raise QueryError.of(
                62,
                "SYNTAX_ERROR",
                "Max query size exceeded (can be increased with the `max_query_size` setting, up to "
                f"{MAX_QUERY_SIZE_CEILING} on this endpoint): the query is longer than {limit} bytes",
            )
        infile = self._spool(insert.inline_data, body)
        return insert.with_infile(str(infile), None), infile

    def _spool(self, first: bytes, body: RequestBody) -> Path:
        """`first`, then the rest of the body, into a file the engine reads: a bounded piece at a time."""
        infile = self.server.spool_dir / f"insert-{uuid.uuid4().hex}"
        try:
            with open(infile, "wb") as target:
                target.write(first)
                body.copy_to(target)
        except BaseException:
            infile.unlink(missing_ok=True)
            raise
        return infile

    def _check_access(self, login: Login, request: Request, query: str, statement: str) -> None:
        """Refuse what the login may not do (access.py): the admin is not checked; another login's statement
        is parsed by ClickHouse's own parser (EXPLAIN AST, with the query's parameters) on a connection
        of the endpoint's own, and its tables, functions and kind held against the login's grants."""
        if login.role == "admin":
            return
        access.check_first_word(login, statement)
        database = request.params.get("database") or login.default_database
        if database:
            access.check_database(login, database)
        access.check_settings(login, request.settings())
        engine = self.server.engine
        with engine.pooled(("\0access",), _prepare_parser) as handle:
            tree = engine.run(handle.connection, "EXPLAIN AST " + query, "TSV", request.query_parameters())
        access.check_statement(login, bytes(tree.data).decode("utf-8", "replace"), database)

    def _configure(self, connection, login: Login, database: str | None, settings: dict[str, str]) -> None:
        """The login's default database unless the request names one, the request's settings, then the
        login's settings profile (which chDB then keeps: `readonly` cannot be lowered)."""
        engine = self.server.engine
        database = database or login.default_database
        if database:
            engine.run(connection, f"USE {_quoted_name(database)}", "TSV")
        for name, value in settings.items():
            engine.run(connection, f"SET {_identifier(name)} = {_literal(value)}", "TSV")
        for name, value in login.profile.items():
            engine.run(connection, f"SET {_identifier(name)} = {_literal(value)}", "TSV")

    def _run_pooled(
        self, request: Request, query: str, statement: str, default_format: str, login: Login
    ) -> Result:
        """Outside a session: a connection of this login already configured with this request's database
        and settings when one is idle, else a new one; one whose state the query changes is not reused.
        Query parameters go with the query, never onto the connection."""
        settings = access.check_settings(login, request.settings())
        parameters = request.query_parameters()
        database = request.params.get("database", "")
        key = (login.name, database, tuple(sorted(settings.items())))
        tables = self._external_tables(request)
        if tables:
            # the external tables are temporary tables of a connection of this query alone, made before
            # the login's profile (the reader's readonly) is put on it
            key = ("\0external", uuid.uuid4().hex)

        def prepare(connection) -> None:
            self._make_external_tables(connection, tables)
            self._configure(connection, login, database, settings)

        with self.server.engine.pooled(key, prepare) as handle:
            handle.dirty = bool(tables) or statement in STATE_CHANGING_STATEMENTS
            return self.server.engine.run(handle.connection, query, default_format, parameters)

    def _external_tables(self, request: Request) -> list[tuple[str, Path, str, str]]:
        """(name, spooled file, format, structure) of each external table of the request."""
        tables = []
        for name, path in request.external.items():
            data_format = request.params.get(f"{name}_format") or "TabSeparated"
            structure = request.params.get(f"{name}_structure")
            types = request.params.get(f"{name}_types")
            if structure is None and types:
                structure = ", ".join(f"_{i} {kind}" for i, kind in enumerate(split_types(types), 1))
            if not structure:
                raise QueryError.of(
                    36,
                    "BAD_ARGUMENTS",
                    f"Neither structure nor types have been provided for external table {name}. "
                    f"Use fields {name}_structure or {name}_types to do so",
                )
            tables.append((name, path, data_format, structure))
        return tables

    def _make_external_tables(self, connection, tables: list[tuple[str, Path, str, str]]) -> None:
        """Each external table as a temporary table of `connection` reading its spooled file where it lies
        (the File engine streams it: it is never loaded into memory). The structure is parsed by the engine
        first (DESCRIBE of a `file()` given it as a string literal), so what the request sent cannot change
        the statement: the columns are the engine's own reading of it."""
        engine = self.server.engine
        for name, path, data_format, structure in tables:
            try:
                described = engine.run(
                    connection,
                    f"DESCRIBE file({_literal(str(path))}, {_literal(data_format)}, {_literal(structure)})",
                    "JSONCompactEachRow",
                )
                columns = ", ".join(
                    f"{_quoted_name(column[0])} {column[1]}"
                    for column in map(json.loads, bytes(described.data).decode().splitlines())
                )
                engine.run(
                    connection,
                    f"CREATE TEMPORARY TABLE {_quoted_name(name)} ({columns}) "
                    f"ENGINE = File({_literal(data_format)}, {_literal(str(path))})",
                    "TSV",
                )
            except QueryError as error:
                raise QueryError(
                    error.code,
                    error.text.replace(
                        "DB::Exception: ",
                        f"DB::Exception: External table {name!r} (structure {structure!r}, format "
                        f"{data_format!r}): ",
                        1,
                    ),
                ) from None

    def _run_in_session(
        self,
        session: Session,
        request: Request,
        query: str,
        statement: str,
        default_format: str,
        login: Login,
    ) -> Result:
        """In a session: the URL's database, settings and parameters are for this query only, and what
        the session SET itself stays."""
        engine = self.server.engine
        connection = session.connection
        if statement == "SET":
            # a SET changes the session itself and reads none of the URL's settings or parameters
            result = engine.run(connection, query, default_format)
            for name in parameter_names(query):
                value = engine.run(connection, f"SELECT {{{name}:String}}", "RawBLOB").data
                session.parameters[name] = bytes(value).decode("utf-8", "replace")
            return result
        parameters = {**session.parameters, **request.query_parameters()}
        settings = access.check_settings(login, request.settings())
        tables = self._external_tables(request)
        restore = self._session_state(connection, request, settings, statement)
        restore += [f"DROP TEMPORARY TABLE IF EXISTS {_quoted_name(name)}" for name, *_ in tables]
        try:
            self._make_external_tables(connection, tables)
            database = request.params.get("database")
            if database:
                engine.run(connection, f"USE {_quoted_name(database)}", "TSV")
            for name, value in settings.items():
                engine.run(connection, f"SET {_identifier(name)} = {_literal(value)}", "TSV")
            return engine.run(connection, query, default_format, parameters)
        finally:
            for undo in restore:
                engine.run(connection, undo, "TSV")

    def _session_state(
        self, connection, request: Request, settings: dict[str, str], statement: str
    ) -> list[str]:
        """The statements that put back the session's own database and settings after this query."""
        engine = self.server.engine
        restore: list[str] = []
        if settings:
            names = ", ".join(_literal(name) for name in settings)
            current = engine.run(
                connection, f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})", "TSV"
            ).data.decode()
            for line in current.splitlines():
                name, value, changed = line.split("\t")
                restore.append(
                    f"SET {name} = {_literal(value)}" if changed == "1" else f"SET {name} = DEFAULT"
                )
        if request.params.get("database") and statement != "USE":
            database = bytes(engine.run(connection, "SELECT currentDatabase()", "RawBLOB").data)
            restore.append(f"USE {_quoted_name(database.decode('utf-8', 'surrogateescape'))}")
        return restore


def _prepare_parser(connection) -> None:
    """The connection that parses other logins' statements: as long a query as any request may send."""
    connection.query(f"SET max_query_size = {MAX_QUERY_SIZE_CEILING}", "TSV")


def _refuse_multi_statements(query: str) -> None:
    at = second_statement_at(query)
    if at is not None:
        raise QueryError.of(
            62,
            "SYNTAX_ERROR",
            f"Syntax error (Multi-statements are not allowed): failed at position {at + 1}: "
            f"{query[at : at + 60]!r}. ClickHouse's HTTP interface runs one statement per request",
        )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    if not name.replace("_", "").replace(".", "").isalnum():
        raise QueryError.of(115, "UNKNOWN_SETTING", f"Unknown setting {name!r}")
    return name


def _quoted_name(name: str) -> str:
    """A database name in back quotes, whatever characters it holds."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _content_type(response_format: str) -> str:
    lowered = response_format.lower()
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered in ("tabseparated", "tsv", "csv", "tabseparatedwithnames", "csvwithnames", "pretty", "values"):
        return PLAIN_TEXT
    return "application/octet-stream"


class ClickHouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], engine: Engine, logins: dict[str, Login], spool_dir: Path):
        super().__init__(address, ClickHouseHandler)
        self.engine = engine
        self.logins = logins
        self.spool_dir = spool_dir
        self.display_name = f"tshop-chdb@{socket.gethostname()}"
