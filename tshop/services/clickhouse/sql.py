"""Just enough of ClickHouse's SQL surface to serve its HTTP interface: where an INSERT's data starts,
which FORMAT a query asks for, whether a text holds more than one statement. A scanner that skips string
literals, quoted names and comments finds the top-level keywords; everything else is left to the engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# ClickHouse allows `$` inside a bare name (`param_$1`, `{a$b:String}`)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
# a name a `{name:Type}` placeholder can hold, as ClickHouse's lexer reads one: a bare word, which may start
# with `$` when something follows it (`$1`; a lone `$` or `$$` opens a heredoc)
PARAMETER_NAME = re.compile(r"(?:[A-Za-z_]|\$[A-Za-z0-9_])[A-Za-z0-9_$]*")
_BLANK = re.compile(r"\s*")
_READ_METHOD = "storage_file_read_method = 'pread'"


def _skip_comment(text: str, i: int) -> int:
    """The index after the comment starting at `i`, or `i` when none starts there."""
    if text.startswith("--", i) or text.startswith("#", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end + 1
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        return len(text) if end < 0 else end + 2
    return i


def _tokens(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, TOKEN) of each top-level word (upper-cased) and each `;`, outside literals and comments."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            i += 1
            while i < n and text[i] != char:
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif (after := _skip_comment(text, i)) != i:
            i = after
        elif char == ";":
            yield i, i + 1, ";"
            i += 1
        else:
            match = _WORD.match(text, i)
            if match and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                yield match.start(), match.end(), match.group().upper()
                i = match.end()
            else:
                i += 1


def _words(text: str) -> Iterator[tuple[int, int, str]]:
    return (token for token in _tokens(text) if token[2] != ";")


def first_keyword(text: str) -> str:
    for _, _, word in _words(text):
        return word
    return ""


def output_format(query: str) -> str | None:
    """The format named by the last top-level `FORMAT name` of a query, if any."""
    words = list(_words(query))
    name = None
    for (_, _, word), (start, end, _) in zip(words, words[1:]):
        if word == "FORMAT":
            name = query[start:end]
    return name


def second_statement_at(query: str) -> int | None:
    """Where a second statement starts, if the text holds more than one. ClickHouse's HTTP interface runs
    one statement, which may end with one `;` followed by nothing but blanks and comments."""
    for _, end, token in _tokens(query):
        if token == ";":
            rest = _skip_blanks(query, end)
            return rest if rest < len(query) else None
    return None


def _skip_blanks(text: str, i: int) -> int:
    """The index of the first character at or after `i` that is neither white space nor in a comment."""
    while True:
        i = _BLANK.match(text, i).end()
        after = _skip_comment(text, i)
        if after == i:
            return i
        i = after


def parameter_names(set_statement: str) -> list[str]:
    """The query parameters a `SET param_x = ..., param_y = ...` statement sets, as they are spelt."""
    return [
        set_statement[start + 6 : end]
        for start, end, word in _words(set_statement)
        if word.startswith("PARAM_")
    ]


@dataclass(frozen=True)
class Insert:
    """An INSERT split where its data starts: `head` names the table (and columns), `tail` holds the
    SETTINGS and FORMAT clauses, `data_format` the format of the data, `inline_data` any data that
    followed the query in the same text."""

    head: str
    tail: str
    data_format: str
    inline_data: bytes = b""

    def with_infile(self, path: str, compression: str | None) -> str:
        compressed = f" COMPRESSION '{compression}'" if compression else ""
        # the engine reads the file with pread: its default, mmap, would map all the data into memory;
        # a SETTINGS clause of the query's own comes after, so it has the last word
        tail = self.tail
        if tail[:8].upper() == "SETTINGS":
            tail = f"SETTINGS {_READ_METHOD}, {tail[8:].lstrip()}"
        else:
            tail = f"SETTINGS {_READ_METHOD} {tail}"
        return f"{self.head} FROM INFILE '{path}'{compressed} {tail}".rstrip()


def _data(text: str, start: int) -> bytes:
    """The data that starts after the white space ending the query at `start` (one newline or space)."""
    data = text[start:]
    data = data[1:] if data[:1] in ("\n", " ", "\t") else data.lstrip("\r\n")
    # the text was decoded with surrogateescape: this gives back the exact bytes sent
    return data.encode("utf-8", "surrogateescape") if data.strip() else b""


def split_insert(text: str, values_as_data: bool = False) -> Insert | None:
    """Split `INSERT INTO t [(cols)] [SETTINGS ...] FORMAT f [data]` or `... VALUES [data]`; None for an
    INSERT that carries no data of its own (INSERT ... SELECT, or VALUES with rows in the query unless
    `values_as_data`). The scan stops where the data starts: the data itself is never scanned."""
    words = _words(text)
    first = next(words, None)
    if first is None or first[2] != "INSERT":
        return None
    for start, end, word in words:
        if word in ("SELECT", "WITH"):
            return None
        if word == "VALUES":
            rows = _data(text, end)
            if rows and not values_as_data:
                return None  # the rows are part of the query: the engine runs it as it is
            return Insert(text[:start].rstrip(), "FORMAT Values", "Values", rows)
        if word in ("SETTINGS", "FORMAT"):
            if word == "SETTINGS":
                word_at = next(((s, e) for s, e, w in words if w == "FORMAT"), None)
                if word_at is None:
                    return None
            name = next(words, None)
            if name is None:
                return None
            name_start, name_end, _ = name
            return Insert(
                text[:start].rstrip(), text[start:name_end], text[name_start:name_end], _data(text, name_end)
            )
    return None


def split_types(types: str) -> list[str]:
    """`UInt32, Decimal(10, 2), String` -> its types: split at the commas outside parentheses and quotes."""
    parts, depth, start, quote = [], 0, 0, None
    for i, char in enumerate(types):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(types[start:i].strip())
            start = i + 1
    parts.append(types[start:].strip())
    return [part for part in parts if part]
