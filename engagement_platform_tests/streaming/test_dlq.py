"""DLQ records: the value and headers documented in streaming/dlq.py, from real Message objects."""

from __future__ import annotations

import base64

import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from engagement_platform.streaming.dlq import dlq_record_of


def bad(value: bytes | None) -> Message:
    return Message(
        topic="events", partition=2, offset=41, key=b"k", value=value, timestamp=(TIMESTAMP_CREATE_TIME, 1234)
    )


def test_utf8_value_travels_as_text_with_reason_and_position() -> None:
    value, headers = dlq_record_of(bad(b"{not json"), "bad_json: expecting value")
    assert orjson.loads(value) == {
        "reason": "bad_json: expecting value",
        "topic": "events",
        "partition": 2,
        "offset": 41,
        "timestamp_ms": 1234,
        "original": "{not json",
        "original_encoding": "utf-8",
    }
    assert headers == [
        ("dlq.reason", b"bad_json: expecting value"),
        ("dlq.topic", b"events"),
        ("dlq.partition", b"2"),
        ("dlq.offset", b"41"),
    ]


def test_non_utf8_value_travels_as_base64_byte_for_byte() -> None:
    raw = b"\xff\xfe\xfa not utf-8"
    record = orjson.loads(dlq_record_of(bad(raw), "bad_json: x")[0])
    assert record["original_encoding"] == "base64"
    assert base64.b64decode(record["original"]) == raw


def test_tombstone_is_null_with_no_encoding() -> None:
    record = orjson.loads(dlq_record_of(bad(None), "missing_field: key")[0])
    assert (record["original"], record["original_encoding"]) == (None, None)
