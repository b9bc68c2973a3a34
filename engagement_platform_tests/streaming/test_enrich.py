"""Enrichment edge cases, as pure functions: no broker."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from engagement_platform import domain
from engagement_platform.domain import ENRICHED_FIELDS
from engagement_platform.streaming import enrich as enrich_module
from engagement_platform.streaming.enrich import (
    Content,
    ContentDeleted,
    Event,
    InvalidRecord,
    engagement,
    enrich,
    enrich_bytes,
    epoch_ms_to_iso,
    parse_content,
    parse_event,
    process_event,
    to_iso_ms,
)

CID = "6f1c6f8e-1b7e-4a3b-9a53-1c9e2f7f2d11"
UID = "0b6c8f0e-9d3a-4c1e-8f7a-2d5e6f7a8b9c"


def event_value(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": 123,
        "content_id": CID,
        "user_id": UID,
        "event_type": "play",
        "event_ts": "2026-11-29T19:46:13.123456Z",
        "duration_ms": 90_000,
        "device": "ios",
        "raw_payload": '{"app_version":"5.2.0","country":"US"}',
        "__op": "c",
        "__source_ts_ms": 1764445573987,
        "__lsn": 42,
        "__deleted": "false",
    }
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not _DROP}


_DROP = object()


def content_value(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": CID,
        "slug": "podcast-signal-noise-1",
        "title": "Signal Noise #1",
        "content_type": "podcast",
        "length_seconds": 1800,
        "publish_ts": "2026-09-01T12:00:00.123456Z",
        "__op": "r",
        "__source_ts_ms": 1764441600000,
        "__lsn": 7,
        "__deleted": "false",
    }
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not _DROP}


def ev(**overrides: Any) -> Event:
    event = parse_event(orjson.dumps(event_value(**overrides)))
    assert event is not None
    return event


def content(**overrides: Any) -> Content:
    parsed = parse_content(orjson.dumps({"id": CID}), orjson.dumps(content_value(**overrides)))
    assert isinstance(parsed, Content)
    return parsed


def reason(value: bytes | dict[str, Any]) -> str:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    with pytest.raises(InvalidRecord) as info:
        parse_event(raw)
    return info.value.code


# --- the output record -----------------------------------------------------------------


def test_podcast_event_is_enriched_with_every_field() -> None:
    out = enrich(ev(), content(), "2026-11-29T19:46:14.000Z")
    assert out == {
        "event_id": 123,
        "content_id": CID,
        "user_id": UID,
        "event_type": "play",
        "event_ts": "2026-11-29T19:46:13.123Z",
        "device": "ios",
        "duration_ms": 90_000,
        "engagement_seconds": 90.0,
        "engagement_pct": 5.0,
        "content_type": "podcast",
        "title": "Signal Noise #1",
        "slug": "podcast-signal-noise-1",
        "length_seconds": 1800,
        "publish_ts": "2026-09-01T12:00:00.123Z",
        "source_ts": "2025-11-29T19:46:13.987Z",
        "enriched_at": "2026-11-29T19:46:14.000Z",
        "content_missing": False,
    }


def test_click_has_no_duration_so_no_engagement() -> None:
    out = enrich(ev(event_type="click", duration_ms=None), content(), "x")
    assert out["duration_ms"] is None
    assert out["engagement_seconds"] is None and out["engagement_pct"] is None
    assert out["content_missing"] is False


def test_newsletter_without_length_has_seconds_but_no_pct() -> None:
    newsletter = content(content_type="newsletter", length_seconds=None)
    out = enrich(ev(duration_ms=45_500), newsletter, "x")
    assert out["engagement_seconds"] == 45.5
    assert out["engagement_pct"] is None
    assert out["length_seconds"] is None and out["content_type"] == "newsletter"


def test_content_missing_carries_event_fields_and_nulls_for_content() -> None:
    out = enrich(ev(duration_ms=2_000), None, "x")
    assert out["content_missing"] is True
    assert out["engagement_seconds"] == 2.0 and out["engagement_pct"] is None
    assert all(out[k] is None for k in ("content_type", "title", "slug", "length_seconds", "publish_ts"))
    assert out["event_id"] == 123 and out["event_ts"] == "2026-11-29T19:46:13.123Z"


@pytest.mark.parametrize(
    ("duration_ms", "length", "seconds", "pct"),
    [
        (0, 1800, 0.0, 0.0),
        (1000, 3, 1.0, 33.33),
        (2000, 3, 2.0, 66.67),
        (1, 1800, 0.001, 0.0),
        (1_800_000, 1800, 1800.0, 100.0),
        (5_400_000, 1800, 5400.0, 300.0),  # replays / seeks: more than the length is what happened
        (2**31 - 1, 60, 2147483.647, 3579139.41),
        (2**53, 1, 2**53 / 1000, round(100 * 2**53 / 1000, 2)),
        (1234, None, 1.234, None),
        (None, 1800, None, None),
    ],
)
def test_engagement_arithmetic(duration_ms: int | None, length: int | None, seconds: Any, pct: Any) -> None:
    assert engagement(duration_ms, length) == (seconds, pct)
    if duration_ms is not None and length is not None:
        out = enrich(ev(duration_ms=duration_ms), content(length_seconds=length), "x")
        assert (out["engagement_seconds"], out["engagement_pct"]) == (seconds, pct)


# --- invalid events --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "bad_json"),
        (b"", "bad_json"),
        (b"\xff\xfe\x00", "bad_json"),
        (b'{"id": 1', "bad_json"),
        (b"[1, 2]", "wrong_type"),
        (b'"a string"', "wrong_type"),
        (b"17", "wrong_type"),
        (b"null", "wrong_type"),
    ],
)
def test_unparseable_values(raw: bytes, code: str) -> None:
    assert reason(raw) == code


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"id": _DROP}, "missing_field"),
        ({"id": None}, "missing_field"),
        ({"id": "123"}, "wrong_type"),
        ({"id": 1.5}, "wrong_type"),
        ({"id": True}, "wrong_type"),
        ({"id": -1}, "out_of_range"),
        ({"content_id": _DROP}, "missing_field"),
        ({"content_id": ""}, "missing_field"),
        ({"content_id": 42}, "wrong_type"),
        ({"event_type": _DROP}, "missing_field"),
        ({"event_type": "Play"}, "unknown_event_type"),
        ({"event_type": "PLAY"}, "unknown_event_type"),
        ({"event_type": "a-b"}, "unknown_event_type"),
        ({"event_type": "a b"}, "unknown_event_type"),
        ({"event_type": ""}, "unknown_event_type"),
        ({"event_type": "x" * 33}, "unknown_event_type"),
        ({"event_type": "plä"}, "unknown_event_type"),
        ({"event_type": 7}, "unknown_event_type"),
        ({"event_type": ["play"]}, "unknown_event_type"),
        ({"duration_ms": -1}, "negative_duration"),
        ({"duration_ms": -(2**40)}, "negative_duration"),
        ({"duration_ms": 2**53 + 1}, "out_of_range"),
        ({"duration_ms": "1200"}, "wrong_type"),
        ({"duration_ms": 12.5}, "wrong_type"),
        ({"duration_ms": True}, "wrong_type"),
        ({"user_id": 7}, "wrong_type"),
        ({"device": ["ios"]}, "wrong_type"),
        ({"event_ts": _DROP}, "missing_field"),
        ({"event_ts": None}, "missing_field"),
        ({"event_ts": "yesterday"}, "bad_timestamp"),
        ({"event_ts": "2026-02-30T10:00:00.000000Z"}, "bad_timestamp"),
        ({"event_ts": "2026-11-29T24:00:00.000000Z"}, "bad_timestamp"),
        ({"event_ts": "2026-12-31T23:59:60.000000Z"}, "bad_timestamp"),  # no leap seconds
        ({"event_ts": 1.5e12}, "wrong_type"),
        ({"event_ts": 10**17}, "bad_timestamp"),
    ],
)
def test_invalid_events_are_refused_with_a_reason(overrides: dict[str, Any], code: str) -> None:
    assert reason(event_value(**overrides)) == code


def test_reason_text_names_the_problem() -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_event(orjson.dumps(event_value(id=_DROP)))
    assert info.value.reason == "missing_field: id"
    with pytest.raises(InvalidRecord) as info:
        parse_event(orjson.dumps(event_value(duration_ms=-5)))
    assert info.value.reason == "negative_duration: -5"


def test_tolerated_variations() -> None:
    assert ev(duration_ms=1200.0).duration_ms == 1200  # an integral float is still an integer
    assert ev(user_id=None, device=None).user_id is None
    assert ev(__source_ts_ms=_DROP).source_ts is None  # metadata only: missing is not fatal
    assert ev(__source_ts_ms="soon").source_ts is None
    assert ev(raw_payload="{not json").event_id == 123  # the payload is not ours to judge
    assert ev(__op="r").event_id == 123  # snapshot rows are events too
    assert ev(extra_column="new").event_id == 123  # schema additions pass


@pytest.mark.parametrize("event_type", ["share", "x" * 32, "a", "seek_30s", "2x"])
def test_any_event_type_that_follows_the_rule_is_enriched(event_type: str) -> None:
    raw = orjson.dumps(event_value(event_type=event_type))
    value, key = process_event(raw, {CID: content()}, "x")  # type: ignore[misc]
    assert orjson.loads(value)["event_type"] == event_type and key == CID.encode()
    assert enrich(ev(event_type=event_type), content(), "x")["event_type"] == event_type


def test_unknown_event_type_detail_states_the_rule() -> None:
    with pytest.raises(InvalidRecord) as info:
        process_event(orjson.dumps(event_value(event_type="Play")), {}, "x")
    assert info.value.code == "unknown_event_type"
    assert info.value.detail == "'Play' is not an event type: an event type is 1-32 characters of [a-z0-9_]"


def test_new_source_columns_are_carried_verbatim_under_their_own_name() -> None:
    event = ev(app_version="5.3.0", flags={"beta": [1, 2]}, __new_meta=1, title="not ours", enriched_at="no")
    out = enrich(event, content(), "x")
    assert out["app_version"] == "5.3.0" and out["flags"] == {"beta": [1, 2]}
    assert "__new_meta" not in out and "raw_payload" not in out and "__lsn" not in out
    assert out["title"] == "Signal Noise #1" and out["enriched_at"] == "x"  # declared fields win
    assert list(out)[: len(ENRICHED_FIELDS)] == list(ENRICHED_FIELDS)
    assert enrich(ev(), content(), "x").keys() == set(ENRICHED_FIELDS)  # nothing extra: nothing added
    waited = enrich(event, None, "x")
    assert waited["app_version"] == "5.3.0" and waited["content_missing"] is True


def test_extra_content_columns_are_ignored() -> None:
    parsed = parse_content(None, orjson.dumps(content_value(language="en", rating={"stars": 4})))
    assert isinstance(parsed, Content) and parsed.title == "Signal Noise #1"


def test_deleted_rows_and_tombstones_are_skipped() -> None:
    assert parse_event(None) is None
    assert parse_event(orjson.dumps(event_value(__op="d", __deleted="true"))) is None
    assert parse_event(orjson.dumps(event_value(__deleted="true"))) is None


# --- timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-29T19:46:13.123456Z", "2026-11-29T19:46:13.123Z"),
        ("2026-11-29T19:46:13.123Z", "2026-11-29T19:46:13.123Z"),
        ("2026-11-29T19:46:13Z", "2026-11-29T19:46:13.000Z"),  # Debezium trims .000000
        ("2026-11-29T19:46:13.1Z", "2026-11-29T19:46:13.100Z"),
        ("2026-11-29T19:46:13.123456789Z", "2026-11-29T19:46:13.123Z"),  # nanoseconds
        ("2026-11-29T19:46:13.999999Z", "2026-11-29T19:46:13.999Z"),  # truncated, never rounded up
        ("2026-11-29T19:46:13.123456+00:00", "2026-11-29T19:46:13.123Z"),
        ("2026-11-29T21:46:13.123456+02:00", "2026-11-29T19:46:13.123Z"),
        ("2026-11-29T14:46:13.123-05:00", "2026-11-29T19:46:13.123Z"),
        ("2026-11-29 19:46:13.123456+00", "2026-11-29T19:46:13.123Z"),
        ("2026-11-29T19:46:13.123456", "2026-11-29T19:46:13.123Z"),  # no offset: UTC
        # boundaries: year end, leap day, offsets that cross midnight and the year
        ("2026-12-31T23:59:59.999999Z", "2026-12-31T23:59:59.999Z"),
        ("2027-01-01T00:00:00Z", "2027-01-01T00:00:00.000Z"),
        ("2027-01-01T01:30:00.000+02:00", "2026-12-31T23:30:00.000Z"),
        ("2026-12-31T20:30:00-05:00", "2027-01-01T01:30:00.000Z"),
        ("2028-02-29T12:00:00.5Z", "2028-02-29T12:00:00.500Z"),
        # DST-free: the nights European and US clocks change are ordinary UTC hours
        ("2026-03-29T01:30:00.250Z", "2026-03-29T01:30:00.250Z"),
        ("2026-10-25T01:30:00.250Z", "2026-10-25T01:30:00.250Z"),
        ("2026-03-08T02:30:00.000000Z", "2026-03-08T02:30:00.000Z"),  # a local time that never existed in NY
        ("2026-11-01T01:30:00.000000Z", "2026-11-01T01:30:00.000Z"),  # one that existed twice there
        # epoch milliseconds
        (1764445573123, "2025-11-29T19:46:13.123Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1798761599999, "2026-12-31T23:59:59.999Z"),
    ],
)
def test_timestamp_formats(raw: object, expected: str) -> None:
    assert to_iso_ms(raw, "event_ts") == expected
    assert ev(event_ts=raw).event_ts == expected


def test_epoch_ms_formatting_is_cached_per_second_but_exact() -> None:
    assert epoch_ms_to_iso(1764445573000) == "2025-11-29T19:46:13.000Z"
    assert epoch_ms_to_iso(1764445573001) == "2025-11-29T19:46:13.001Z"
    assert epoch_ms_to_iso(1764445573999) == "2025-11-29T19:46:13.999Z"
    assert epoch_ms_to_iso(1764445574000) == "2025-11-29T19:46:14.000Z"


# --- content records --------------------------------------------------------------------


def test_content_upsert_delete_and_tombstone() -> None:
    key = orjson.dumps({"id": CID})
    c = content()
    assert (c.id, c.length_seconds, c.key) == (CID, 1800, CID.encode())
    assert c.publish_ts == "2026-09-01T12:00:00.123Z"
    deleted = parse_content(key, orjson.dumps(content_value(__op="d", __deleted="true")))
    assert isinstance(deleted, ContentDeleted) and deleted.id == CID
    tombstone = parse_content(key, None)
    assert isinstance(tombstone, ContentDeleted) and tombstone.id == CID


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"length_seconds": 0}, "out_of_range"),
        ({"length_seconds": -30}, "out_of_range"),
        ({"length_seconds": "30"}, "wrong_type"),
        ({"content_type": "radio"}, "unknown_content_type"),
        ({"content_type": _DROP}, "missing_field"),
        ({"slug": _DROP}, "missing_field"),
        ({"title": None}, "missing_field"),
        ({"publish_ts": "not a time"}, "bad_timestamp"),
        ({"id": 5}, "wrong_type"),
    ],
)
def test_invalid_content(overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_content(None, orjson.dumps(content_value(**overrides)))
    assert info.value.code == code


def test_content_tombstone_without_usable_key_is_invalid() -> None:
    with pytest.raises(InvalidRecord):
        parse_content(None, None)
    with pytest.raises(InvalidRecord):
        parse_content(b"{bad", None)


def test_huge_content_length_is_fine() -> None:
    assert content(length_seconds=2**40).length_seconds == 2**40


# --- the fast path agrees with the general one ------------------------------------------

VARIANTS: list[dict[str, Any]] = [
    {},
    {"event_type": "click", "duration_ms": None},
    {"event_type": "finish", "duration_ms": 0},
    {"user_id": None, "device": None},
    {"event_ts": "2026-11-29T19:46:13Z"},
    {"event_ts": "2026-11-29T19:46:13.123Z"},
    {"event_ts": "2026-11-29T21:46:13.123456+02:00"},
    {"event_ts": "2026-W48-1T19:46:13.123456Z"},  # an ISO week date: same length as ours
    {"event_ts": "2026-11-29 19:46:13.123456Z"},
    {"event_ts": "2026-02-30T19:46:13.123456Z"},
    {"event_ts": 1764445573123},
    {"duration_ms": 1200.0},
    {"duration_ms": -1},
    {"duration_ms": 2**53 + 1},
    {"duration_ms": True},
    {"id": True},
    {"id": -3},
    {"id": "9"},
    {"content_id": ""},
    {"content_id": None},
    {"event_type": "share"},
    {"event_type": "x" * 32},
    {"event_type": "Play"},
    {"event_type": "a-b"},
    {"event_type": ""},
    {"event_type": "x" * 33},
    {"event_type": 5},
    {"event_type": None},
    {"event_type": ["play"]},
    {"app_version": "5.3.0"},
    {"app_version": None},
    {"app_version": "5.3.0", "event_type": "share"},
    {"app_version": "5.3.0", "__deleted": "true"},
    {"app_version": {"nested": [1, 2]}, "country": "US"},
    {"title": "a source column named like an enriched field"},
    {"__new_metadata": 1},
    {"raw_payload": _DROP, "__lsn": _DROP, "__op": _DROP},
    {"__source_ts_ms": None},
    {"__source_ts_ms": _DROP},
    {"__deleted": "true"},
    {"__deleted": True},
    {"id": 2**70},
    {"__source_ts_ms": 2**70},
    {"duration_ms": 2**63},
    {"raw_payload": {"nested": [1, 2]}},
    {"__op": "d"},
    {"user_id": _DROP},
    {"device": 3},
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=[str(v) for v in VARIANTS])
@pytest.mark.parametrize("cached", [True, False], ids=["cached", "not-cached"])
def test_fast_path_matches_general_path(overrides: dict[str, Any], cached: bool) -> None:
    raw = json.dumps(event_value(**overrides)).encode()  # orjson refuses ints beyond 64 bits
    cache = {CID: content()} if cached else {}
    try:
        expected_event = parse_event(raw)
    except InvalidRecord as exc:
        with pytest.raises(InvalidRecord) as info:
            process_event(raw, cache, "x")
        assert info.value.reason == exc.reason
        return
    got = process_event(raw, cache, "x")
    if expected_event is None:
        assert got is None
    elif cached:
        assert got == (enrich_bytes(expected_event, cache[CID], "x"), CID.encode())
    else:
        assert isinstance(got, Event)
        assert enrich(got, None, "x") == enrich(expected_event, None, "x")
    if "app_version" in overrides and expected_event is not None:
        out = orjson.loads(got[0]) if cached else enrich(got, None, "x")  # type: ignore[index,arg-type]
        assert out["app_version"] == overrides["app_version"]


def test_fast_path_on_bytes_that_are_not_json() -> None:
    for raw in (b"{", b"\xff", b"[]", None):
        if raw is None:
            assert process_event(raw, {}, "x") is None
        else:
            with pytest.raises(InvalidRecord):
                process_event(raw, {}, "x")


class _WithAppVersion(domain.Enriched, gc=False):
    app_version: str | None = None


def test_a_field_declared_with_a_default_is_filled_from_its_source_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """README's step for a new column: declare it on Enriched; every record then has it, the
    source value when the event has the column, null before it existed (both paths)."""
    monkeypatch.setattr(enrich_module, "Enriched", _WithAppVersion)
    cache = {CID: content()}
    before, _key = process_event(orjson.dumps(event_value()), cache, "x")  # type: ignore[misc]
    after, _key = process_event(orjson.dumps(event_value(app_version="5.3.0")), cache, "x")  # type: ignore[misc]
    assert orjson.loads(before)["app_version"] is None
    assert orjson.loads(after)["app_version"] == "5.3.0"
    assert list(orjson.loads(after)) == [*ENRICHED_FIELDS, "app_version"]
    assert enrich(ev(), None, "x")["app_version"] is None
