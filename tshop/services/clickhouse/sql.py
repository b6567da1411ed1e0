"""Just enough of ClickHouse's SQL surface to serve its HTTP interface: where an INSERT's data starts,
which FORMAT a query asks for. A scanner that skips string literals, quoted names and comments finds the
top-level keywords; everything else is left to the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words(text: str):
    """(start, end, WORD) of each top-level word outside literals and comments."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            i += 1
            while i < n and text[i] != char:
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("--", i) or char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            match = _WORD.match(text, i)
            if match and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                yield match.start(), match.end(), match.group().upper()
                i = match.end()
            else:
                i += 1


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
        return f"{self.head} FROM INFILE '{path}'{compressed} {self.tail}".rstrip()


def split_insert(text: str) -> Insert | None:
    """Split `INSERT INTO t [(cols)] [SETTINGS ...] FORMAT f [data]` or `... VALUES [data]`; None for an
    INSERT that carries no data of its own (INSERT ... SELECT, or VALUES with rows in the query)."""
    words = list(_words(text))
    if not words or words[0][2] != "INSERT":
        return None
    for index, (start, end, word) in enumerate(words):
        if word == "SELECT" or word == "WITH":
            return None
        if word == "VALUES":
            rest = text[end:]
            if rest.strip():
                return None  # the rows are part of the query: the engine runs it as it is
            return Insert(text[:start].rstrip(), "FORMAT Values", "Values")
        if word in ("SETTINGS", "FORMAT"):
            format_at = next(((s, e) for s, e, w in words[index:] if w == "FORMAT"), None)
            if format_at is None:
                return None
            name_start, name_end, _ = next(w for w in words if w[0] >= format_at[1])
            data = text[name_end:]
            # the data starts after the whitespace that ends the query (one newline or spaces)
            data = data[1:] if data[:1] in ("\n", " ", "\t") else data.lstrip("\r\n")
            return Insert(
                text[:start].rstrip(),
                text[start:name_end],
                text[name_start:name_end],
                # the text was decoded with surrogateescape: this gives back the exact bytes sent
                data.encode("utf-8", "surrogateescape") if data.strip() else b"",
            )
    return None
