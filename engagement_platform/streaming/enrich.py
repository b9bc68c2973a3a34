"""Enrichment as pure functions: parse the Debezium flat records, validate, join, format.

No broker here, so every edge case is a plain unit test, and the runner, the benchmark and
the tests all share one code path.

Input is what Debezium writes with ``connector.json`` (JsonConverter without schemas,
ExtractNewRecordState adding ``__op``, ``__source_ts_ms``, ``__lsn`` and ``__deleted``).
An event that cannot be trusted raises :class:`InvalidRecord` with a stable reason code:
the runner sends it to the DLQ rather than guessing, because a guessed value would be
summed into dashboards forever. Deleted source rows and tombstones are not errors: they
parse to ``None`` (events) or to a deletion (content).

The schema may grow while events flow (issue 18): any event type that follows
``domain.EVENT_TYPE_RULE`` is accepted (Postgres' CHECK is the vocabulary's contract, not a
list here), an event column enrich does not declare is carried verbatim into the enriched
record (:class:`~engagement_platform.domain.Enriched` says which names are enrich's own), and
extra content columns are ignored.

Timestamps leave as UTC ISO-8601 with milliseconds (``2026-11-29T19:46:13.123Z``),
truncated rather than rounded so that an event never moves into the next second, minute
or day bucket. Inputs may be ISO strings with any offset and 0-9 fractional digits (a
string without an offset is taken as UTC, which is what Debezium's timestamp types mean)
or epoch milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

from engagement_platform import domain
from engagement_platform.domain import ENRICHED_COMPUTED, FLAT_EVENT_FIELDS, MAX_DURATION_MS, Enriched

CONTENT_TYPES = frozenset(domain.CONTENT_TYPES)
# a source column under one of these names is not carried into the enriched record
_NOT_CARRIED = FLAT_EVENT_FIELDS | ENRICHED_COMPUTED
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAST_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:\d{3}){0,2}Z")
_MIN_EPOCH_MS = -62135596800000  # 0001-01-01
_MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999


class InvalidRecord(ValueError):
    """A record that must not be enriched; ``code`` is stable, ``detail`` is for humans."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return str(self)


# --- timestamps -------------------------------------------------------------------------


def format_utc_ms(dt: datetime) -> str:
    """``dt`` (aware, or naive meaning UTC) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    if dt.tzinfo is not None and dt.utcoffset():
        dt = dt.astimezone(UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
    )


def _epoch_ms_to_iso(ms: int) -> str:
    if not _MIN_EPOCH_MS <= ms <= _MAX_EPOCH_MS:
        raise ValueError(f"epoch milliseconds out of range: {ms}")
    seconds, millis = divmod(ms, 1000)  # floor division keeps pre-1970 values right
    return format_utc_ms(_EPOCH + timedelta(seconds=seconds, milliseconds=millis))


_second_cache: dict[int, str] = {}


def epoch_ms_to_iso(ms: int) -> str:
    """Epoch milliseconds as UTC ISO ms; the second's prefix is cached (commit times repeat)."""
    seconds, millis = divmod(ms, 1000)
    prefix = _second_cache.get(seconds)
    if prefix is None:
        prefix = _epoch_ms_to_iso(seconds * 1000)[:20]  # "YYYY-MM-DDTHH:MM:SS."
        if len(_second_cache) >= 4096:
            _second_cache.clear()
        _second_cache[seconds] = prefix
    return f"{prefix}{millis:03d}Z"


def to_iso_ms(value: object, field: str) -> str:
    """Normalize a timestamp field; raises ``InvalidRecord`` (bad_timestamp) otherwise."""
    if type(value) is str:
        if _FAST_ISO.fullmatch(value):
            try:
                datetime.fromisoformat(value)  # ranges: month 13, Feb 30, second 60 ...
            except ValueError:
                pass
            else:
                return value[:23] + "Z"
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidRecord("bad_timestamp", f"{field} is not an ISO-8601 timestamp: {value!r}") from None
        if dt.tzinfo is not None and dt.utcoffset():
            try:
                dt = dt.astimezone(UTC)
            except OverflowError:
                raise InvalidRecord("bad_timestamp", f"{field} out of range: {value!r}") from None
        return format_utc_ms(dt)
    if type(value) is int:
        try:
            return epoch_ms_to_iso(value)
        except (ValueError, OverflowError):
            raise InvalidRecord("bad_timestamp", f"{field} epoch ms out of range: {value}") from None
    if value is None:
        raise InvalidRecord("missing_field", field)
    raise InvalidRecord(
        "wrong_type", f"{field} must be an ISO string or epoch ms, got {type(value).__name__}"
    )


# --- records ----------------------------------------------------------------------------


def _loads(value: bytes | str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("bad_json", str(exc)) from None


def _is_deleted(record: dict[str, Any]) -> bool:
    return record.get("__op") == "d" or record.get("__deleted") in ("true", True)


def _source_ts(record: dict[str, Any]) -> str | None:
    """Commit time: metadata for latency measurement, so a bad value is dropped, not fatal."""
    ms = record.get("__source_ts_ms")
    if type(ms) is int:
        try:
            return epoch_ms_to_iso(ms)
        except (ValueError, OverflowError):
            return None
    return None


def _str_field(record: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = record.get(name)
    if type(value) is str:
        if required and not value:
            raise InvalidRecord("missing_field", name)
        return value
    if value is None:
        if required:
            raise InvalidRecord("missing_field", name)
        return None
    raise InvalidRecord("wrong_type", f"{name} must be a string, got {type(value).__name__}")


def _optional_int_field(record: dict[str, Any], name: str) -> int | None:
    """An optional integer; a whole float (as some JSON writers emit) is accepted."""
    value = record.get(name)
    if value is None or type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise InvalidRecord("wrong_type", f"{name} must be an integer, got {type(value).__name__}")


class Event:
    """A validated engagement event, timestamps already in output format; ``extras`` holds the
    source columns enrich does not declare, carried verbatim into the enriched record."""

    __slots__ = (
        "event_id",
        "content_id",
        "user_id",
        "event_type",
        "event_ts",
        "duration_ms",
        "device",
        "source_ts",
        "extras",
    )

    def __init__(
        self,
        event_id: int,
        content_id: str,
        user_id: str | None,
        event_type: str,
        event_ts: str,
        duration_ms: int | None,
        device: str | None,
        source_ts: str | None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.event_id = event_id
        self.content_id = content_id
        self.user_id = user_id
        self.event_type = event_type
        self.event_ts = event_ts
        self.duration_ms = duration_ms
        self.device = device
        self.source_ts = source_ts
        self.extras = extras

    def __repr__(self) -> str:
        return f"Event({self.event_id}, {self.content_id}, {self.event_type}, {self.event_ts})"


def parse_event(value: bytes | str | None) -> Event | None:
    """A flat ``engagement_events`` value; ``None`` for tombstones and deleted rows."""
    if value is None:
        return None
    record = _loads(value)
    if type(record) is not dict:
        raise InvalidRecord("wrong_type", f"event must be a JSON object, got {type(record).__name__}")
    if _is_deleted(record):
        return None

    event_id = record.get("id")
    if type(event_id) is not int:
        if event_id is None:
            raise InvalidRecord("missing_field", "id")
        raise InvalidRecord("wrong_type", f"id must be an integer, got {type(event_id).__name__}")
    if event_id < 0:
        raise InvalidRecord("out_of_range", f"id must not be negative, got {event_id}")

    content_id = _str_field(record, "content_id", required=True)
    event_type = record.get("event_type")
    if type(event_type) is not str or event_type not in _event_types:
        if event_type is None:
            raise InvalidRecord("missing_field", "event_type")
        problem = domain.event_type_error(event_type)
        if problem is not None:
            raise InvalidRecord("unknown_event_type", problem)
        _remember_event_type(event_type)

    duration = _optional_int_field(record, "duration_ms")
    if duration is not None:
        if duration < 0:
            raise InvalidRecord("negative_duration", str(duration))
        if duration > MAX_DURATION_MS:
            raise InvalidRecord("out_of_range", f"duration_ms too large: {duration}")

    return Event(
        event_id,
        content_id,  # type: ignore[arg-type]  # required=True never returns None
        _str_field(record, "user_id", required=False),
        event_type,  # type: ignore[arg-type]  # is_event_type() checked it is a str
        to_iso_ms(record.get("event_ts"), "event_ts"),
        duration,
        _str_field(record, "device", required=False),
        _source_ts(record),
        _extras(record),
    )


def _extras(record: dict[str, Any]) -> dict[str, Any] | None:
    """The source columns enrich does not declare (a column added to ``engagement_events``)."""
    if len(record) <= len(FLAT_EVENT_FIELDS) and record.keys() <= FLAT_EVENT_FIELDS:
        return None
    extras = {k: v for k, v in record.items() if k not in _NOT_CARRIED and not k.startswith("__")}
    return extras or None


# Event types already checked against the rule: a set lookup is what the hot path pays. The
# vocabulary is small; the bound only keeps a stream of distinct bad-but-valid names finite.
_event_types: set[str] = set()


def _remember_event_type(event_type: str) -> None:
    if len(_event_types) >= 1024:
        _event_types.clear()
    _event_types.add(event_type)


class Content:
    """The content columns an enriched event carries, ready to copy into each output."""

    __slots__ = ("id", "slug", "title", "content_type", "length_seconds", "publish_ts", "key")

    def __init__(
        self,
        id: str,
        slug: str,
        title: str,
        content_type: str,
        length_seconds: int | None,
        publish_ts: str,
    ) -> None:
        self.id = id
        self.slug = slug
        self.title = title
        self.content_type = content_type
        self.length_seconds = length_seconds
        self.publish_ts = publish_ts
        self.key = id.encode()  # the output record key, encoded once per content version

    def __repr__(self) -> str:
        return f"Content({self.id}, {self.content_type}, {self.title!r})"


class ContentDeleted:
    """A content row is gone: drop it from the cache."""

    __slots__ = ("id",)

    def __init__(self, id: str) -> None:
        self.id = id

    def __repr__(self) -> str:
        return f"ContentDeleted({self.id})"


def _content_id_from_key(key: bytes | str | None) -> str:
    if key is None:
        raise InvalidRecord("missing_field", "key")
    record = _loads(key)
    if type(record) is dict:
        record = record.get("id")
    if type(record) is str and record:
        return record
    raise InvalidRecord("missing_field", "id in key")


def parse_content(key: bytes | str | None, value: bytes | str | None) -> Content | ContentDeleted:
    """A flat ``content`` record: an upsert, or a deletion (tombstone, ``__deleted``)."""
    if value is None:  # tombstone: only the key says which row
        return ContentDeleted(_content_id_from_key(key))
    record = _loads(value)
    if type(record) is not dict:
        raise InvalidRecord("wrong_type", f"content must be a JSON object, got {type(record).__name__}")
    if _is_deleted(record):
        content_id = record.get("id")
        if type(content_id) is str and content_id:
            return ContentDeleted(content_id)
        return ContentDeleted(_content_id_from_key(key))

    content_id = _str_field(record, "id", required=True)
    content_type = record.get("content_type")
    if type(content_type) is not str or content_type not in CONTENT_TYPES:
        if content_type is None:
            raise InvalidRecord("missing_field", "content_type")
        raise InvalidRecord("unknown_content_type", repr(content_type)[:100])
    length = _optional_int_field(record, "length_seconds")
    if length is not None and length <= 0:  # the schema says > 0; a zero would divide engagement_pct
        raise InvalidRecord("out_of_range", f"length_seconds must be positive, got {length}")
    return Content(
        content_id,  # type: ignore[arg-type]  # required=True never returns None
        _str_field(record, "slug", required=True),  # type: ignore[arg-type]  # required: never None
        _str_field(record, "title", required=True),  # type: ignore[arg-type]  # required: never None
        content_type,  # type: ignore[arg-type]  # checked to be a str above
        length,
        to_iso_ms(record.get("publish_ts"), "publish_ts"),
    )


# --- the join ---------------------------------------------------------------------------


def engagement(duration_ms: int | None, length_seconds: int | None) -> tuple[float | None, float | None]:
    """``(engagement_seconds, engagement_pct)``; each is None when its inputs are unknown."""
    if duration_ms is None:
        return None, None
    seconds = duration_ms / 1000
    if not length_seconds:
        return seconds, None
    return seconds, round(100 * seconds / length_seconds, 2)


def enriched(event: Event, content: Content | None, enriched_at: str) -> Enriched:
    """The declared fields of the ``engagement_enriched`` record (``content=None``: it timed
    out waiting for its content); :func:`enrich` adds the carried source columns."""
    length = None if content is None else content.length_seconds
    seconds, pct = engagement(event.duration_ms, length)
    return Enriched(
        event.event_id,
        event.content_id,
        event.user_id,
        event.event_type,
        event.event_ts,
        event.device,
        event.duration_ms,
        seconds,
        pct,
        None if content is None else content.content_type,
        None if content is None else content.title,
        None if content is None else content.slug,
        length,
        None if content is None else content.publish_ts,
        event.source_ts,
        enriched_at,
        content is None,
    )


def enrich(event: Event, content: Content | None, enriched_at: str) -> dict[str, Any]:
    """The ``engagement_enriched`` record as a dict: the declared fields, then the source
    columns enrich does not declare, verbatim."""
    out = msgspec.structs.asdict(enriched(event, content, enriched_at))
    if event.extras:
        out.update(event.extras)
    return out


def enrich_bytes(event: Event, content: Content | None, enriched_at: str) -> bytes:
    if event.extras:
        return _encode(enrich(event, content, enriched_at))
    return _encode(enriched(event, content, enriched_at))


_source_cache: dict[int, str] = {}


def process_event(
    value: bytes | str | None, cache: dict[str, Content], enriched_at: str
) -> tuple[bytes, bytes] | Event | None:
    """The runner's hot path: ``(output value, output key)`` when the content is cached,
    the parsed :class:`Event` when it is not (it must wait), ``None`` to skip; raises
    :class:`InvalidRecord`.

    Most records have exactly Debezium's shape (:class:`~engagement_platform.domain.FlatEvent`),
    and checking that shape with a typed decoder and a few inline tests is several times
    cheaper than the general validation. Anything that deviates in any way (a new source
    column included) goes through :func:`parse_event`, so reasons, carried columns and edge
    cases have one implementation; the tests check that both paths agree on every edge case.
    """
    try:
        r = _decode_flat(value)  # type: ignore[arg-type]  # None raises: the general path decides
        ts = r.event_ts
        source_ms = r.source_ts_ms
        if not (
            len(ts) == 27
            and ts[10] == "T"
            and ts[19] == "."
            and ts[26] == "Z"
            and ts[4] == "-"
            and ts[5] != "W"
            and (r.deleted == "false" or r.deleted is None)
            and r.op != "d"
            and r.event_type in _event_types
        ):
            raise _Slow
        _fromisoformat(ts)  # month 13, Feb 30, second 60 ...
        source_ts = _source_cache.get(source_ms)
        if source_ts is None:
            source_ts = epoch_ms_to_iso(source_ms)
            if len(_source_cache) >= 4096:
                _source_cache.clear()
            _source_cache[source_ms] = source_ts
    except Exception:  # noqa: BLE001 - anything unusual: the general path decides
        event = parse_event(value)
        if event is None:
            return None
        content = cache.get(event.content_id)
        if content is None:
            return event
        return enrich_bytes(event, content, enriched_at), content.key

    eid, cid, event_type, duration = r.id, r.content_id, r.event_type, r.duration_ms
    user_id, device = r.user_id, r.device
    content = cache.get(cid)
    if content is None:
        return Event(eid, cid, user_id, event_type, ts[:23] + "Z", duration, device, source_ts)
    length = content.length_seconds
    if duration is None:
        seconds = pct = None
    else:
        seconds = duration / 1000
        pct = None if not length else round(100 * seconds / length, 2)
    return _encode(
        Enriched(
            eid,
            cid,
            user_id,
            event_type,
            ts[:23] + "Z",
            device,
            duration,
            seconds,
            pct,
            content.content_type,
            content.title,
            content.slug,
            length,
            content.publish_ts,
            source_ts,
            enriched_at,
            False,
        )
    ), content.key


class _Slow(Exception):
    """Internal: the record is not in the common shape."""


_decode_flat = msgspec.json.Decoder(domain.FlatEvent).decode
_encode = msgspec.json.Encoder().encode
_fromisoformat = datetime.fromisoformat


def now_iso_ms() -> str:
    return format_utc_ms(datetime.now(UTC))
