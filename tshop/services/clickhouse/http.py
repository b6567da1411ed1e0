"""ClickHouse's HTTP interface over the chDB engine, as clients use it.

One thread per connection (keep-alive). A request carries its query in the `query` parameter and/or the
body; an INSERT's data (the body, chunked or not, plain or compressed) is spooled to a file and read by the
engine with `INSERT ... FROM INFILE`. URL parameters that are not the interface's own are settings for
that query only; `param_*` are query parameters. Errors keep ClickHouse's form.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import io
import json
import logging
import socket
import tempfile
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import lz4.frame

from tshop.services.clickhouse.engine import Engine, QueryError, Result
from tshop.services.clickhouse.sql import first_keyword, output_format, split_insert

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
MAX_QUERY_TEXT = 64 * 1024 * 1024
AUTHENTICATION_FAILED = 516

# How ClickHouse maps exception codes to HTTP statuses (its HTTPHandler)
HTTP_STATUS = {
    **dict.fromkeys((192, 193, 194, 195, 516), 401),  # unknown user, wrong password, authentication failed
    **dict.fromkeys((164, 497), 403),  # readonly, access denied
    **dict.fromkeys((60, 81, 46, 36, 47, 16, 73, 372), 404),  # unknown table/database/function/..., session
    **dict.fromkeys(
        (62, 26, 27, 6, 38, 41, 69, 70, 72, 53, 117, 373, 115, 27, 33, 32), 400
    ),  # parse/bad input
    202: 503,  # too many simultaneous queries
    48: 501,  # not implemented
}


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


def _decompressor(encoding: str):
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    if encoding == "deflate":
        return zlib.decompressobj()
    if encoding == "lz4":
        return lz4.frame.LZ4FrameDecompressor()
    if encoding == "zstd":
        return zstd.ZstdDecompressor()
    raise QueryError.of(48, "NOT_IMPLEMENTED", f"Content-Encoding {encoding} is not supported")


def decompress_stream(source, target, encoding: str) -> None:
    """Decompress `source` into `target` chunk by chunk. Clients send one compressed frame (or gzip member)
    per block, one after another: each frame's end starts a new decompressor on what follows."""
    decompressor = _decompressor(encoding)
    at_boundary = False  # true between two frames: the data may end there
    try:
        while chunk := source.read(1024 * 1024):
            while chunk:
                at_boundary = False
                target.write(decompressor.decompress(chunk))
                if not decompressor.eof:
                    break
                chunk = decompressor.unused_data
                decompressor = _decompressor(encoding)
                at_boundary = True
        if not at_boundary:
            raise ValueError("the compressed data ends in the middle of a frame")
    except QueryError:
        raise
    except Exception as error:
        raise QueryError.of(
            271, "CANNOT_DECOMPRESS", f"Cannot decompress the request body ({encoding}): {error}"
        ) from None


class Request:
    """The parts of one HTTP request the interface reads."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        url = urlsplit(handler.path)
        self.path = url.path
        self.params = dict(parse_qsl(url.query, keep_blank_values=True))
        self.headers = handler.headers
        self.method = handler.command

    def credentials(self) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            user, _, password = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")
            return user, password
        user = self.headers.get("X-ClickHouse-User") or self.params.get("user") or "default"
        password = self.headers.get("X-ClickHouse-Key") or self.params.get("password") or ""
        return user, password

    def settings(self) -> dict[str, str]:
        return {
            name: value
            for name, value in self.params.items()
            if name not in INTERFACE_PARAMS and not name.startswith("param_")
        }

    def query_parameters(self) -> dict[str, str]:
        return {name[6:]: value for name, value in self.params.items() if name.startswith("param_")}


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
        self._send(200, b"", {"Content-Type": "text/plain; charset=UTF-8"})

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

    def _read_body(self, body) -> None:
        """Copy the request body, de-chunked, into `body` (a file or a buffer)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise QueryError.of(33, "CANNOT_READ_ALL_DATA", "Unexpected end of chunked request body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                self._copy(body, size)
                self.rfile.readline(3)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            self._copy(body, length)

    def _copy(self, target, size: int) -> None:
        remaining = size
        while remaining:
            chunk = self.rfile.read(min(remaining, 1024 * 1024))
            if not chunk:
                raise QueryError.of(33, "CANNOT_READ_ALL_DATA", f"Request body ended {remaining} bytes early")
            target.write(chunk)
            remaining -= len(chunk)

    # -- the interface -------------------------------------------------------------------------
    def _serve(self) -> None:
        request = Request(self)
        query_id = request.params.get("query_id") or str(uuid.uuid4())
        if request.path in ("/ping", "/replicas_status") or (
            request.path == "/" and self.command == "GET" and "query" not in request.params
        ):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if request.path not in ("/", "/query"):
            self._send(
                404, b"There is no handle " + request.path.encode() + b"\n", {"Content-Type": "text/plain"}
            )
            return
        headers = self._base_headers(query_id)
        try:
            self._authenticate(request)
            result, response_format = self._execute(request, query_id)
        except QueryError as error:
            self.close_connection = True
            body = (error.text + f" (version {self.server.engine.version})\n").encode()
            headers.update(
                {"X-ClickHouse-Exception-Code": str(error.code), "Content-Type": "text/plain; charset=UTF-8"}
            )
            self._send(http_status(error.code), body, headers)
            return
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            self.close_connection = True
            return
        data = result.data
        headers.update(
            {
                "Content-Type": _content_type(response_format),
                "X-ClickHouse-Format": response_format,
                "X-ClickHouse-Summary": json.dumps(
                    {
                        "read_rows": str(result.rows_read),
                        "read_bytes": str(result.bytes_read),
                        "written_rows": str(result.rows_written),
                        "written_bytes": str(result.bytes_written),
                        "total_rows_to_read": str(result.rows_read),
                        "result_bytes": str(len(data)),
                        "elapsed_ns": str(int(result.elapsed * 1e9)),
                    }
                ),
            }
        )
        encoding = self._response_encoding(request)
        if encoding and data:
            data = _compress_response(data, encoding)
            headers["Content-Encoding"] = encoding
        self._send(200, data, headers)

    def _authenticate(self, request: Request) -> None:
        user, password = request.credentials()
        expected_user, expected_password = self.server.credentials
        if not (
            hmac.compare_digest(user.encode(), expected_user.encode())
            and hmac.compare_digest(password.encode(), expected_password.encode())
        ):
            raise QueryError.of(
                AUTHENTICATION_FAILED,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    def _response_encoding(self, request: Request) -> str | None:
        if request.params.get("enable_http_compression", "0").lower() not in ("1", "true"):
            return None
        for offered in self.headers.get("Accept-Encoding", "").split(","):
            name = offered.split(";")[0].strip().lower()
            if name in ("zstd", "lz4", "gzip", "x-gzip", "deflate"):
                return name
        return None

    def _execute(self, request: Request, query_id: str) -> tuple[Result, str]:
        infile: Path | None = None
        try:
            query, infile = self._query_text(request)
            statement = first_keyword(query)
            if self.command == "GET" and statement not in READ_ONLY_STATEMENTS:
                raise QueryError.of(164, "READONLY", "Cannot execute query in readonly mode")
            default_format = request.params.get("default_format") or "TabSeparated"
            response_format = output_format(query) if statement != "INSERT" else None
            response_format = response_format or default_format
            session_id = request.params.get("session_id")
            if session_id:
                with self.server.engine.session(
                    session_id,
                    float(request.params.get("session_timeout") or 60),
                    request.params.get("session_check", "0") in ("1", "true"),
                ) as connection:
                    return self._run_in_session(connection, request, query, default_format), response_format
            return self._run_pooled(request, query, statement, default_format), response_format
        finally:
            if infile:
                infile.unlink(missing_ok=True)

    def _query_text(self, request: Request) -> tuple[str, Path | None]:
        """The query to run and, for an INSERT with data, the file holding that data (uncompressed)."""
        encoding = self.headers.get("Content-Encoding", "").strip().lower() or None
        in_url = request.params.get("query")
        has_body = (
            bool(int(self.headers.get("Content-Length") or 0))
            or "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        )
        if in_url is not None and has_body and first_keyword(in_url) == "INSERT":
            insert = split_insert(in_url)
            if insert is None:
                self._read_body(io.BytesIO())  # drain it: the connection stays usable
                raise QueryError.of(
                    62, "SYNTAX_ERROR", "INSERT query in the URL has no FORMAT for the data in the body"
                )
            infile = self._spool_data(self.server.spool_dir, encoding)
            return insert.with_infile(str(infile), None), infile
        buffer = io.BytesIO()
        self._read_body(buffer)
        raw = buffer.getvalue()
        if len(raw) > MAX_QUERY_TEXT:
            raise QueryError.of(62, "SYNTAX_ERROR", f"Max query size exceeded: {len(raw)} bytes")
        if encoding and raw:
            plain = io.BytesIO()
            decompress_stream(io.BytesIO(raw), plain, encoding)
            raw = plain.getvalue()
        text = raw.decode("utf-8", "surrogateescape")
        query = (
            f"{in_url}\n{text}" if in_url is not None and text else (in_url if in_url is not None else text)
        )
        if not query.strip():
            raise QueryError.of(62, "SYNTAX_ERROR", "Empty query")
        insert = split_insert(query)
        if insert is not None and insert.inline_data:
            infile = self.server.spool_dir / f"insert-{uuid.uuid4().hex}"
            infile.write_bytes(insert.inline_data)
            return insert.with_infile(str(infile), None), infile
        return query, None

    def _spool_data(self, spool: Path, encoding: str | None) -> Path:
        """Stream the request body into a file the engine reads, decompressing on the way."""
        infile = spool / f"insert-{uuid.uuid4().hex}"
        try:
            with open(infile, "wb") as target:
                if encoding:
                    # decompress as it arrives: a pipe of de-chunked body into the decompressor
                    body = tempfile.TemporaryFile(dir=spool)
                    with body:
                        self._read_body(body)
                        body.seek(0)
                        decompress_stream(body, target, encoding)
                else:
                    self._read_body(target)
        except BaseException:
            infile.unlink(missing_ok=True)
            raise
        return infile

    def _configure(self, connection, request: Request, settings: dict[str, str]) -> None:
        engine = self.server.engine
        if request.params.get("database"):
            engine.run(connection, f"USE {_identifier(request.params['database'])}", "TSV")
        for name, value in settings.items():
            engine.run(connection, f"SET {_identifier(name)} = {_literal(value)}", "TSV")
        for name, value in request.query_parameters().items():
            engine.run(connection, f"SET param_{_identifier(name)} = {_literal(value)}", "TSV")

    def _run_pooled(self, request: Request, query: str, statement: str, default_format: str) -> Result:
        """Outside a session: a connection already configured with this request's database and settings
        when one is idle, else a new one; one whose state the query changes is not reused."""
        settings = request.settings()
        parameters = request.query_parameters()
        key = (request.params.get("database", ""), tuple(sorted(settings.items())))
        with self.server.engine.pooled(
            key, lambda connection: self._configure(connection, request, settings)
        ) as handle:
            handle.dirty = bool(parameters) or statement in ("SET", "USE", "CREATE")
            return self.server.engine.run(handle.connection, query, default_format)

    def _run_in_session(self, connection, request: Request, query: str, default_format: str) -> Result:
        engine = self.server.engine
        settings = request.settings()
        restore: list[str] = []
        if settings:
            # URL settings apply to this query only: put the session's own values back afterwards
            names = ", ".join(_literal(name) for name in settings)
            current = engine.run(
                connection, f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})", "TSV"
            ).data.decode()
            for line in current.splitlines():
                name, value, changed = line.split("\t")
                restore.append(
                    f"SET {name} = {_literal(value)}" if changed == "1" else f"SET {name} = DEFAULT"
                )
        try:
            self._configure(connection, request, settings)
            return engine.run(connection, query, default_format)
        finally:
            for statement in restore:
                engine.run(connection, statement, "TSV")


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    if not name.replace("_", "").replace(".", "").isalnum():
        raise QueryError.of(115, "UNKNOWN_SETTING", f"Bad name {name!r}")
    return name


def _content_type(response_format: str) -> str:
    lowered = response_format.lower()
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered in ("tabseparated", "tsv", "csv", "tabseparatedwithnames", "csvwithnames", "pretty", "values"):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


class ClickHouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self, address: tuple[str, int], engine: Engine, credentials: tuple[str, str], spool_dir: Path
    ):
        super().__init__(address, ClickHouseHandler)
        self.engine = engine
        self.credentials = credentials
        self.spool_dir = spool_dir
        self.display_name = f"tshop-chdb@{socket.gethostname()}"
