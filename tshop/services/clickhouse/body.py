"""A request body as it arrives: de-chunked and decompressed piece by piece, so no body, however large or
however well compressed, is ever held whole in memory."""

from __future__ import annotations

import uuid
import zlib
from pathlib import Path
from typing import BinaryIO, Protocol

import lz4.frame
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from tshop.services.clickhouse.engine import QueryError

try:
    from backports import zstd
except ImportError:  # Python 3.14 has it in the standard library
    from compression import zstd  # type: ignore[no-redef]

# how much is read from the socket, or produced by the decompressor, at a time
PIECE = 1024 * 1024
_LINE = 65537  # longest chunk-size or trailer line read


class _Decompressor(Protocol):
    eof: bool
    needs_input: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Zlib:
    """zlib's decompressor with the interface of lz4's and zstd's: input it could not take yet because of
    `max_length` stays inside, and `needs_input` says when more output needs more input."""

    def __init__(self, wbits: int):
        self._inner = zlib.decompressobj(wbits=wbits)
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._inner.eof

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        output = self._inner.decompress(self._inner.unconsumed_tail + data, max(max_length, 0))
        # output cut at max_length may have more behind it, even with no input left
        cut = 0 <= max_length <= len(output)
        self.needs_input = not self._inner.unconsumed_tail and not cut
        return output


def _decompressor(encoding: str) -> _Decompressor:
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(wbits=31)
    if encoding == "deflate":
        return _Zlib(wbits=15)
    if encoding == "lz4":
        return lz4.frame.LZ4FrameDecompressor()
    if encoding == "zstd":
        return zstd.ZstdDecompressor()
    raise QueryError.of(48, "NOT_IMPLEMENTED", f"Content-Encoding {encoding} is not supported")


def content_length(value: str | None) -> int:
    if value is None or value.strip() == "":
        return 0
    if not value.strip().isdigit():
        raise QueryError.of(36, "BAD_ARGUMENTS", f"Invalid Content-Length header: {value[:100]!r}")
    return int(value)


class RawBody:
    """The body's bytes as the client sent them, without the chunked transfer encoding."""

    def __init__(self, rfile: BinaryIO, chunked: bool, length: int):
        self._rfile = rfile
        self._chunked = chunked
        self._left = 0 if chunked else length  # of the body, or of the current chunk
        self.finished = not chunked and length == 0

    def read(self, size: int = PIECE) -> bytes:
        """Up to `size` bytes; b"" at the end of the body."""
        if self.finished:
            return b""
        if self._chunked and self._left == 0:
            self._left = self._next_chunk_size()
            if self._left == 0:
                self.finished = True
                return b""
        data = self._rfile.read(min(size, self._left))
        if not data:
            raise QueryError.of(33, "CANNOT_READ_ALL_DATA", "The request body ended before its announced end")
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                self._end_of_chunk()
            else:
                self.finished = True
        return data

    def _next_chunk_size(self) -> int:
        line = self._rfile.readline(_LINE)
        if not line:
            raise QueryError.of(33, "CANNOT_READ_ALL_DATA", "Unexpected end of chunked request body")
        digits = line.split(b";", 1)[0].strip()
        try:
            size = int(digits, 16)
        except ValueError:
            size = -1
        if size < 0 or not line.endswith(b"\n"):
            raise QueryError.of(
                36, "BAD_ARGUMENTS", f"Unexpected data instead of HTTP chunk header: {line[:40]!r}"
            )
        if size == 0:
            while self._rfile.readline(_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
        return size

    def _end_of_chunk(self) -> None:
        if self._rfile.readline(3) not in (b"\r\n", b"\n"):
            raise QueryError.of(36, "BAD_ARGUMENTS", "Unexpected data after an HTTP chunk")

    def drain(self) -> None:
        """Read what is left and throw it away, so the client can read the answer and the connection stays
        usable; gives up quietly when the body is broken."""
        try:
            while self.read(PIECE):
                pass
        except (QueryError, OSError):
            self.finished = False


class RequestBody:
    """The plain body: de-chunked, then decompressed (`Content-Encoding`) a bounded piece at a time.
    Clients send one compressed frame (or gzip member) per block, one after another: each frame's end
    starts a new decompressor on what follows."""

    def __init__(self, raw: RawBody, encoding: str | None):
        self.raw = raw
        self._encoding = encoding
        self._decompressor = _decompressor(encoding) if encoding else None
        self._input = b""  # compressed bytes not yet given to the decompressor
        self._at_boundary = True  # between two frames: the data may end there

    @property
    def finished(self) -> bool:
        return self.raw.finished

    def read(self, size: int = PIECE) -> bytes:
        """Up to `size` plain bytes (at least one unless the body has ended); b"" at its end."""
        if self._decompressor is None:
            return self.raw.read(size)
        try:
            return self._read_decompressed(size)
        except QueryError:
            raise
        except Exception as error:  # each library raises its own error for bad data
            raise QueryError.of(
                271, "CANNOT_DECOMPRESS", f"Cannot decompress the request body ({self._encoding}): {error}"
            ) from None

    def _read_decompressed(self, size: int) -> bytes:
        while True:
            decompressor = self._decompressor
            if self._input or not decompressor.needs_input:
                output = decompressor.decompress(self._input, size)
                self._input = b""
                if decompressor.eof:
                    # the frame ended: what follows it starts the next one
                    self._input = decompressor.unused_data
                    self._decompressor = _decompressor(self._encoding)
                    self._at_boundary = not self._input
                if output:
                    return output
                continue
            chunk = self.raw.read(PIECE)
            if not chunk:
                if not self._at_boundary:
                    raise ValueError("the compressed data ends in the middle of a frame")
                return b""
            self._input = chunk
            self._at_boundary = False

    def read_up_to(self, size: int) -> bytes:
        """The next `size` plain bytes, fewer only at the end of the body."""
        pieces, length = [], 0
        while length < size and (piece := self.read(min(PIECE, size - length))):
            pieces.append(piece)
            length += len(piece)
        return b"".join(pieces)

    def copy_to(self, target: BinaryIO) -> None:
        while piece := self.read(PIECE):
            target.write(piece)

    def drain(self) -> None:
        self.raw.drain()


# -- multipart/form-data -----------------------------------------------------------------------------
# python-multipart (Starlette's parser, in the environment) parses the form as a stream of callbacks, so a
# file part goes to disk as it arrives; the standard library's `email` parser would hold every part in memory.


class Form:
    """A multipart/form-data body: text fields in memory, each file part (one with a file name: an external
    table) in a file of its own under `spool_dir`."""

    def __init__(self, spool_dir: Path, field_limit: int):
        self.fields: dict[str, str] = {}
        self.files: dict[str, Path] = {}
        self._spool_dir = spool_dir
        self._field_limit = field_limit  # the most text all fields together may hold
        self._text = 0
        self._header = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._field: list[bytes] | None = None
        self._file: BinaryIO | None = None
        self.complete = False

    def read(self, body: RequestBody, content_type: str) -> None:
        boundary = parse_options_header(content_type)[1].get(b"boundary")
        if not boundary:
            raise _malformed("the Content-Type multipart/form-data names no boundary")
        try:
            parser = MultipartParser(boundary, self._callbacks())
            while piece := body.read(PIECE):
                parser.write(piece)
            parser.finalize()
        except FormParserError as error:
            raise _malformed(str(error)) from None
        finally:
            if self._file is not None:
                self._file.close()
        if not self.complete:
            raise _malformed("the body ends before the closing boundary")

    def discard(self) -> None:
        for path in self.files.values():
            path.unlink(missing_ok=True)

    def _callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add_header(data[start:end]),
            "on_header_value": lambda data, start, end: self._add_value(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._part_data(data[start:end]),
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers, self._header, self._value = {}, b"", b""

    def _add_header(self, data: bytes) -> None:
        self._header += data

    def _add_value(self, data: bytes) -> None:
        self._value += data

    def _header_end(self) -> None:
        self._headers[self._header.strip().lower()] = self._value.strip()
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or not name:
            raise _malformed("a part has no Content-Disposition: form-data with a name")
        self._name = name.decode("utf-8", "surrogateescape")
        if b"filename" in options:
            path = self._spool_dir / f"external-{uuid.uuid4().hex}"
            self.files[self._name] = path
            self._file = open(path, "wb")  # noqa: SIM115 - closed at the part's end, or by read()
        else:
            self._field = []

    def _part_data(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        self._text += len(data)
        if self._text > self._field_limit:
            raise QueryError.of(
                62,
                "SYNTAX_ERROR",
                f"Max query size exceeded: the form's fields hold more than {self._field_limit} bytes",
            )
        self._field.append(data)

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._field is not None:
            self.fields[self._name] = b"".join(self._field).decode("utf-8", "surrogateescape")
            self._field = None

    def _end(self) -> None:
        self.complete = True


def _malformed(reason: str) -> QueryError:
    return QueryError.of(36, "BAD_ARGUMENTS", f"Cannot parse the multipart/form-data body: {reason}")
