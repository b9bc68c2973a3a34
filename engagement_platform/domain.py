"""The domain's shapes and vocabularies, declared once for every part of the platform.

The source rows the simulator writes (:class:`Content`, :class:`Event`), the flat Debezium
records enrich reads (:class:`FlatEvent`, :class:`FlatContent`, as ``connector.json``
renders them) and the ``engagement_enriched`` record it writes (:class:`Enriched`) live here
as msgspec structs, so the enricher, the simulator, the benchmark data and the dashboard
cannot drift apart.

Event types are an open vocabulary: Postgres' ``engagement_events_event_type_check`` is the
contract, and below Postgres any type that follows :data:`EVENT_TYPE_RULE` is accepted.
:data:`KNOWN_EVENT_TYPES` is only the seed's vocabulary (the simulator's default).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

# --- vocabularies -------------------------------------------------------------------------

EVENT_TYPE_RULE = "1-32 characters of [a-z0-9_]"
EVENT_TYPE_PATTERN = re.compile(r"[a-z0-9_]{1,32}")
KNOWN_EVENT_TYPES = ("play", "pause", "finish", "click")
CONTENT_TYPES = ("podcast", "newsletter", "video")  # init.sql's CHECK on content.content_type
DEVICES = ("ios", "android", "web", "desktop", "smart_tv", "car")  # the devices the simulator writes
# engagement_seconds is a float: beyond 2**53 ms it would no longer be exact
MAX_DURATION_MS = 2**53


def is_event_type(value: object) -> bool:
    """Whether ``value`` is an event type every consumer accepts (:data:`EVENT_TYPE_RULE`)."""
    return type(value) is str and EVENT_TYPE_PATTERN.fullmatch(value) is not None


def event_type_error(value: object) -> str | None:
    """Why ``value`` is not an event type (one line), or None when it is one."""
    if is_event_type(value):
        return None
    return f"{value!r:.60} is not an event type: an event type is {EVENT_TYPE_RULE}"


# --- source rows (what the simulator writes into Postgres) --------------------------------


class Content(msgspec.Struct, frozen=True):
    """A ``content`` row."""

    id: uuid.UUID
    slug: str
    title: str
    content_type: str
    length_seconds: int | None
    publish_ts: datetime


class Event(msgspec.Struct, frozen=True):
    """An ``engagement_events`` row before Postgres gives it its id."""

    content_id: uuid.UUID
    user_id: uuid.UUID
    event_type: str
    event_ts: datetime
    duration_ms: int | None
    device: str
    raw_payload: dict[str, object]


# --- flat Debezium records (connector.json: ExtractNewRecordState, JsonConverter) ---------


class FlatEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An ``engagement_events.flat`` value with exactly the columns and metadata the connector
    writes today (add.fields op,source.ts_ms,lsn; delete handling adds ``__deleted``).

    It is enrich's fast-path decoder: types and bounds are checked natively, ``raw_payload``
    is skipped unparsed, and a record with any other field (a column added to the source
    table) fails to decode here, so it takes the general path, which carries that column
    into the enriched record. Fields without a default must be present."""

    id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    content_id: Annotated[str, msgspec.Meta(min_length=1)]
    event_type: str  # the rule is checked by the caller: a Python check costs less than Meta(pattern)
    event_ts: str
    duration_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_DURATION_MS)] | None
    user_id: str | None
    device: str | None
    source_ts_ms: int = msgspec.field(name="__source_ts_ms")
    raw_payload: msgspec.Raw = msgspec.Raw()  # skipped unparsed; any JSON value
    op: Any = msgspec.field(name="__op", default=None)
    lsn: Any = msgspec.field(name="__lsn", default=None)
    deleted: Any = msgspec.field(name="__deleted", default=None)


class FlatContent(msgspec.Struct):
    """A ``content.flat`` value as the connector writes it (extra columns are ignored by enrich)."""

    id: str
    slug: str
    title: str
    content_type: str
    length_seconds: int | None
    publish_ts: str
    op: str | None = msgspec.field(name="__op", default=None)
    source_ts_ms: int | None = msgspec.field(name="__source_ts_ms", default=None)
    lsn: int | None = msgspec.field(name="__lsn", default=None)
    deleted: str | None = msgspec.field(name="__deleted", default=None)


FLAT_EVENT_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(FlatEvent))


# --- the enriched record ------------------------------------------------------------------


class Enriched(msgspec.Struct, gc=False):
    """An ``engagement_enriched`` record: the one place its fields are declared.

    Fields without a default are computed by enrich, in this order. A field declared with a
    default (``app_version: str | None = None``) is copied from the source event's column of
    the same name, and is the default when the event has no such column. An event column
    declared nowhere is still carried verbatim under its own name (never ``__*`` metadata,
    never over a field enrich computes), so a new source column reaches the warehouse with
    migrations only; declaring it here gives it a fixed place in every record."""

    event_id: int
    content_id: str
    user_id: str | None
    event_type: str
    event_ts: str
    device: str | None
    duration_ms: int | None
    engagement_seconds: float | None
    engagement_pct: float | None
    content_type: str | None
    title: str | None
    slug: str | None
    length_seconds: int | None
    publish_ts: str | None
    source_ts: str | None
    enriched_at: str
    content_missing: bool


ENRICHED_FIELDS = tuple(f.encode_name for f in msgspec.structs.fields(Enriched))
# the fields enrich computes itself: no source column may override them
ENRICHED_COMPUTED = frozenset(
    f.encode_name
    for f in msgspec.structs.fields(Enriched)
    if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
)
