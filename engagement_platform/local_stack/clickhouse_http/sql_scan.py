"""Just enough SQL lexing to route a request before chdb sees it.

The server must know, from the first bytes of a streamed body, whether it is an
``INSERT ... FORMAT name`` (whose data then streams into chdb's inserter) or a whole
statement, and must refuse a Kafka-engine table however it is spelled. A tokenizer that
understands quotes and comments is enough for both; a real parser would be chdb's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KAFKA_ENGINE_RE = re.compile(r"\bENGINE\s*=\s*Kafka\b", re.IGNORECASE)
_TRAILING_FORMAT_RE = re.compile(
    r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+SETTINGS\b[^;]*)?\s*;?\s*$", re.IGNORECASE
)
_SQL_WS = frozenset(b" \t\n\r\f\v")
_IDENT_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset(b"0123456789$")


class _NeedMore(Exception):
    """The scanner reached the end of a buffer that more body bytes may extend."""


@dataclass(frozen=True)
class InsertSplit:
    """Where an ``INSERT ... FORMAT name`` statement ends and its inline data begins."""

    statement: bytes  # the INSERT without its FORMAT clause, as chdb's inserter wants
    format_name: str
    data_offset: int


NOT_A_DATA_INSERT = "not-a-data-insert"


def _skip_space(data: bytes, i: int, final: bool) -> int:
    """Skip whitespace and comments; an unterminated comment needs more input."""
    n = len(data)
    while i < n:
        c = data[i]
        if c in _SQL_WS:
            i += 1
        elif data.startswith(b"--", i):
            j = data.find(b"\n", i)
            if j < 0:
                if final:
                    return n
                raise _NeedMore
            i = j + 1
        elif data.startswith(b"/*", i):
            j = data.find(b"*/", i + 2)
            if j < 0:
                if final:
                    return n
                raise _NeedMore
            i = j + 2
        else:
            break
    return i


def _quoted_end(data: bytes, i: int, final: bool) -> int:
    """End (exclusive) of the quoted literal/identifier starting at ``i``."""
    quote = data[i]
    n = len(data)
    j = i + 1
    while j < n:
        c = data[j]
        if c == 0x5C:  # backslash escapes the next byte
            j += 2
            continue
        if c == quote:
            if j + 1 < n and data[j + 1] == quote:  # doubled quote
                j += 2
                continue
            if j + 1 == n and not final:
                raise _NeedMore  # might be the first half of a doubled quote
            return j + 1
        j += 1
    if final:
        return n
    raise _NeedMore


def _word_end(data: bytes, i: int, final: bool) -> int:
    """End of the bare identifier starting at ``i``; a word cut by the buffer needs more."""
    n = len(data)
    j = i
    while j < n and data[j] in _IDENT_CHARS:
        j += 1
    if j == n and not final:
        raise _NeedMore
    return j


def _next_token(data: bytes, i: int, final: bool) -> tuple[str, int, int]:
    """Return (kind, start, end) of the token at or after ``i``; kind is '' at the end."""
    i = _skip_space(data, i, final)
    if i >= len(data):
        if final:
            return "", i, i
        raise _NeedMore
    c = data[i]
    if c in _IDENT_START:
        return "word", i, _word_end(data, i, final)
    if c in (0x27, 0x22, 0x60):  # ' " `
        return "quoted", i, _quoted_end(data, i, final)
    return "punct", i, i + 1


def _scan_table_name(data: bytes, i: int, final: bool, is_function: bool) -> int:
    """Skip the target after INSERT INTO [TABLE|FUNCTION]; it may be named 'format'."""
    kind, start, end = _next_token(data, i, final)
    if kind not in ("word", "quoted"):
        return start
    i = end
    if is_function:
        return i
    kind, start, end = _next_token(data, i, final)
    if kind == "punct" and data[start] == 0x2E:  # db.table
        kind, start, end = _next_token(data, end, final)
        return end if kind in ("word", "quoted") else start
    return i


def _data_start(data: bytes, i: int, final: bool) -> int:
    """Where inline data starts after the format name, per ClickHouse's insert parser:
    spaces and tabs are skipped, then at most one line break."""
    n = len(data)
    while i < n and data[i] in b" \t\f":
        i += 1
    if i < n and data[i] == 0x0D:
        i += 1
    if i < n and data[i] == 0x0A:
        i += 1
    if i == n and not final:
        raise _NeedMore  # the line break may still be on its way
    return i


def _split_insert(data: bytes, final: bool) -> InsertSplit | str:
    kind, start, end = _next_token(data, 0, final)
    if kind != "word" or data[start:end].upper() != b"INSERT":
        return NOT_A_DATA_INSERT
    kind, start, end = _next_token(data, end, final)
    if kind != "word" or data[start:end].upper() != b"INTO":
        return NOT_A_DATA_INSERT
    i = end
    kind, start, end = _next_token(data, i, final)
    is_function = False
    if kind == "word" and data[start:end].upper() in (b"TABLE", b"FUNCTION"):
        is_function = data[start:end].upper() == b"FUNCTION"
        i = end
    i = _scan_table_name(data, i, final, is_function)
    depth = 0
    while True:
        kind, start, end = _next_token(data, i, final)
        if not kind:
            return NOT_A_DATA_INSERT
        i = end
        if kind == "punct":
            depth += {0x28: 1, 0x29: -1}.get(data[start], 0)
            continue
        if kind != "word" or depth:
            continue
        word = data[start:end].upper()
        if word in (b"SELECT", b"WITH", b"VALUES", b"INFILE"):
            return NOT_A_DATA_INSERT
        if word == b"FORMAT":
            kind, name_start, name_end = _next_token(data, end, final)
            if kind != "word":
                return NOT_A_DATA_INSERT
            return InsertSplit(
                statement=data[:start].rstrip(),
                format_name=data[name_start:name_end].decode("ascii"),
                data_offset=_data_start(data, name_end, final),
            )


def split_insert(data: bytes, final: bool) -> InsertSplit | str | None:
    """Find the inline data of ``INSERT ... FORMAT name``.

    Returns an InsertSplit, NOT_A_DATA_INSERT for anything that must run as a whole
    query (SELECT, INSERT ... VALUES/SELECT/FROM INFILE, DDL, ...), or None when
    ``data`` is a prefix that more bytes could still change the answer for.
    """
    try:
        return _split_insert(data, final)
    except _NeedMore:
        return None


def normalize_sql(sql: bytes) -> str:
    """SQL with comments removed, string literals emptied and identifiers unquoted.

    What is left is what the parser acts on, so checks such as "creates a Kafka table"
    can't be fooled by a comment or tripped by a string that merely mentions it.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        j = _skip_space(sql, i, final=True)
        if j > i:
            out.append(" ")
            i = j
            continue
        c = sql[i]
        if c in (0x27, 0x22, 0x60):
            end = _quoted_end(sql, i, final=True)
            if c == 0x27:
                out.append("''")
            else:
                out.append(sql[i + 1 : end - 1].decode("utf-8", errors="replace"))
            i = end
        else:
            j = i + 1
            while j < n and sql[j] not in _SQL_WS and sql[j] not in b"'\"`-/":
                j += 1
            out.append(sql[i:j].decode("utf-8", errors="replace"))
            i = j
    return "".join(out)


def creates_kafka_table(normalized_sql: str) -> bool:
    """Whether the statement would create/attach a Kafka-engine table."""
    return _KAFKA_ENGINE_RE.search(normalized_sql) is not None


def trailing_format(normalized_sql: str) -> str | None:
    """The FORMAT clause that ends a query, which overrides default_format."""
    match = _TRAILING_FORMAT_RE.search(normalized_sql)
    return match.group(1) if match else None


def first_keyword(normalized_sql: str) -> str:
    """The statement's leading keyword, upper-cased ('' for an empty statement)."""
    match = re.match(r"[\s(]*([A-Za-z_]+)", normalized_sql)
    return match.group(1).upper() if match else ""


def _identifier(data: bytes, kind: str, start: int, end: int) -> str:
    text = data[start:end].decode("utf-8", errors="replace")
    return text[1:-1] if kind == "quoted" else text


def insert_target(statement: bytes) -> tuple[str | None, str] | None:
    """``(database or None, table)`` an ``INSERT INTO`` statement writes to; None for anything
    else (not an insert, ``INSERT INTO FUNCTION``, a name that does not parse)."""
    kind, start, end = _next_token(statement, 0, True)
    if kind != "word" or statement[start:end].upper() != b"INSERT":
        return None
    kind, start, end = _next_token(statement, end, True)
    if kind != "word" or statement[start:end].upper() != b"INTO":
        return None
    kind, start, end = _next_token(statement, end, True)
    if kind == "word" and statement[start:end].upper() == b"FUNCTION":
        return None
    if kind == "word" and statement[start:end].upper() == b"TABLE":
        kind, start, end = _next_token(statement, end, True)
    if kind not in ("word", "quoted"):
        return None
    first = _identifier(statement, kind, start, end)
    kind, start, end = _next_token(statement, end, True)
    if kind == "punct" and statement[start] == 0x2E:  # db.table
        kind, start, end = _next_token(statement, end, True)
        if kind not in ("word", "quoted"):
            return None
        return first, _identifier(statement, kind, start, end)
    return None, first


def ast_tables(explain_ast: str) -> tuple[str, list[str], bool]:
    """From ``EXPLAIN AST`` output: the root node's name, every table identifier the statement
    reads (as written: ``db.table`` or ``table``), and whether it calls a table function."""
    lines = [line.strip() for line in explain_ast.splitlines() if line.strip()]
    root = lines[0].split()[0] if lines else ""
    tables: list[str] = []
    table_function = False
    for previous, line in zip(["", *lines], lines, strict=False):
        words = line.split()
        if words[0] == "TableIdentifier" and len(words) > 1:
            tables.append(words[1])
        elif words[0] == "Function" and previous.startswith("TableExpression"):
            table_function = True
    return root, tables, table_function


def without_trailing_format(sql: str) -> str:
    """``sql`` without the FORMAT clause that ends it (so ``EXPLAIN`` of it answers in text)."""
    return _TRAILING_FORMAT_RE.sub("", sql)
