"""Dead-letter records: a bad input record, wrapped so it can be found, understood and replayed.

The value is a JSON object ``{"reason", "topic", "partition", "offset", "timestamp_ms",
"original", "original_encoding"}``: ``original`` is the input value as text
(``original_encoding`` "utf-8"), as base64 ("base64") when it is not UTF-8, or null for a
tombstone (encoding null too), so the exact bytes survive the JSON. Reason, topic,
partition and offset also travel as headers ``dlq.reason``, ``dlq.topic``,
``dlq.partition`` and ``dlq.offset``, so tools can route without parsing the value. The
record keeps the original key (the producer's business, not this module's).
"""

from __future__ import annotations

import base64

import orjson
from confluent_kafka import Message

Headers = list[tuple[str, bytes]]


def encode_original(value: bytes | None) -> tuple[str | None, str | None]:
    """``(original, original_encoding)`` of a record value: text if it is UTF-8, else base64."""
    if value is None:
        return None, None
    try:
        return value.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode(), "base64"


def dlq_record(
    reason: str, topic: str, partition: int, offset: int, timestamp_ms: int, value: bytes | None
) -> tuple[bytes, Headers]:
    """The DLQ value and headers for the record at ``topic[partition]@offset``."""
    original, encoding = encode_original(value)
    record = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp_ms": timestamp_ms,
        "original": original,
        "original_encoding": encoding,
    }
    headers = [
        ("dlq.reason", reason.encode()),
        ("dlq.topic", topic.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
    ]
    return orjson.dumps(record), headers


def dlq_record_of(msg: Message, reason: str) -> tuple[bytes, Headers]:
    """:func:`dlq_record` of a consumed message (its broker timestamp, whatever its type)."""
    _ts_type, timestamp_ms = msg.timestamp()
    return dlq_record(reason, msg.topic() or "", msg.partition(), msg.offset(), timestamp_ms, msg.value())
