"""What the page shows, as one value that round-trips through the URL's query parameters, so a
view can be shared by its link. Pure: no Streamlit here.

A parameter that is missing or malformed falls back to its default: a hand-edited or stale
link still opens a page, never an error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TypeVar
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from engagement_platform.dashboard.period import Delta
from engagement_platform.streaming.leaderboard import METRIC_ENGAGEMENT_SECONDS, METRIC_EVENTS
from engagement_platform.warehouse.queries import DEFAULT_DAYS, Filters

T = TypeVar("T")

WINDOWS = (5, 10, 60)  # minutes of the live leaderboard
DEFAULT_WINDOW = 10
METRIC_LABELS = {METRIC_EVENTS: "events", METRIC_ENGAGEMENT_SECONDS: "engagement seconds"}
TOP_N = (5, 10, 15, 20, 25)
DEFAULT_TOP_N = 10
CONTENT_MAX = 64  # a UUID is 36 characters; a longer value is malformed anyway


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class View:
    window: int = DEFAULT_WINDOW
    metric: str = METRIC_EVENTS
    top_n: int = DEFAULT_TOP_N
    filters: Filters = field(default_factory=lambda: Filters.last_days(DEFAULT_DAYS))
    # the title whose page is shown ('' for the dashboard), as the link gave it: a malformed id
    # is kept so that its page can say so (``content_uuid``)
    content: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str], today: date | None = None) -> View:
        """The view a URL asks for (``st.query_params.to_dict()``: one string per key)."""
        default = Filters.last_days(DEFAULT_DAYS, today or _today())
        start = _date(params.get("from"), default.start)
        end = _date(params.get("to"), default.end)
        if start > end:
            start, end = end, start
        return cls(
            window=_choice(params.get("window"), WINDOWS, DEFAULT_WINDOW),
            metric=_choice(params.get("metric"), tuple(METRIC_LABELS), METRIC_EVENTS),
            top_n=_choice(params.get("top"), TOP_N, DEFAULT_TOP_N),
            filters=Filters(
                start,
                end,
                _name(params.get("type")),
                _name(params.get("device")),
            ),
            content=(params.get("content") or "").strip()[:CONTENT_MAX],
        )

    def to_query(self) -> dict[str, str]:
        """The query parameters of this view (defaults included, so a shared link is exact)."""
        f = self.filters
        query = {
            "window": str(self.window),
            "metric": self.metric,
            "top": str(self.top_n),
            "from": f.start.isoformat(),
            "to": f.end.isoformat(),
        }
        if f.content_type:
            query["type"] = f.content_type
        if f.device:
            query["device"] = f.device
        if self.content:
            query["content"] = self.content
        return query

    def content_uuid(self) -> uuid.UUID | None:
        """The title's id, or None when the link's is not a UUID."""
        try:
            return uuid.UUID(self.content)
        except ValueError:
            return None

    def link(self, **changes: object) -> str:
        """A relative link to this view with ``changes`` (e.g. ``content=...``): ``?window=...``."""
        return "?" + urlencode(replace(self, **changes).to_query())  # type: ignore[arg-type]


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:])")  # ":": see escape_colons


def escape_markdown(text: str) -> str:
    """``text`` shown as itself in Markdown (st.table's cells and st.markdown render it)."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)


def escape_colons(text: str) -> str:
    """``text`` with its colons escaped for Streamlit's Markdown, which reads ``:name:`` as an
    emoji code: a text that merely looks like one (a clock time, ``15:10:01``) makes the browser
    fetch and run Streamlit's emoji plugin before it draws the text, ~0.5 s on the page's first
    load (docs/performance.md). An escaped colon shows as itself."""
    return text.replace(":", "\\:")


def title_link(title: str | None, content_id: str, view: View) -> str:
    """The title as a Markdown link to its page (``?content=<id>`` and the rest of the view)."""
    return f"[{escape_markdown(title or '(title unknown)')}]({view.link(content=content_id)})"


def _choice(raw: str | None, options: tuple[T, ...], default: T) -> T:
    """``raw`` as the option it names (ints compare as ints), else ``default``."""
    for option in options:
        if raw is not None and str(option) == raw.strip():
            return option
    return default


def _date(raw: str | None, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


def _name(raw: str | None) -> str:
    """A content type or device as a link names it: any short word (the values come from the data,
    so no list here can say which exist; a value the data lacks simply matches nothing)."""
    value = (raw or "").strip()
    return value if len(value) <= 64 and value.replace("_", "").replace("-", "").isalnum() else ""


METRIC_CLASS = "ep-metric"
# a delta's colours (text, background), as Streamlit's own metric draws them
DELTA_COLOURS = {
    "up": ("#177233", "rgba(33, 195, 84, 0.1)"),
    "down": ("#bd4043", "rgba(255, 43, 43, 0.09)"),
    "off": ("#6b6f7b", "rgba(49, 51, 63, 0.06)"),
}


def metric_html(label: str, value: str, delta: Delta | None = None) -> str:
    """A headline figure as HTML, drawn as ``st.metric`` draws one: the label, the value large,
    the delta as a coloured pill (green up, red down, grey "was …").

    HTML in Markdown rather than ``st.metric``: the browser loads the metric's script (and its
    number formatting) on the page's first metric, and the leaderboard and analytics waited
    behind it; the page's charts already need Markdown's HTML (docs/performance.md)."""
    pill = ""
    if delta is not None:
        kind = "off" if delta.color == "off" else "down" if delta.text.startswith("-") else "up"
        arrow = {"up": "↑ ", "down": "↓ ", "off": ""}[kind]
        ink, background = DELTA_COLOURS[kind]
        pill = (
            f'<div class="{METRIC_CLASS}-delta" style="display:inline-block;font-size:0.875rem;'
            f'color:{ink};background:{background};border-radius:0.5rem;padding:0.05rem 0.45rem">'
            f"{arrow}{escape(delta.text)}</div>"
        )
    return (
        f'<div class="{METRIC_CLASS}" style="padding-bottom:0.75rem">'
        f'<div class="{METRIC_CLASS}-label" style="font-size:0.875rem">{escape(label)}</div>'
        f'<div class="{METRIC_CLASS}-value" style="font-size:2.25rem;line-height:1.25">{escape(value)}</div>'
        f"{pill}</div>"
    )
