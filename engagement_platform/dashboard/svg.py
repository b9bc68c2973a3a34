"""The dashboard's charts, drawn on the server as SVG: bars, grouped columns and lines.

Why not Vega-Lite (Altair), which the page used before: the browser loads Vega's 2 MB script on
a page's first chart and parses it on its main thread, and the sections wait behind it; an
inline SVG costs the browser nothing beyond its markup (docs/performance.md, "The dashboard in
the browser"). Each mark carries a ``<title>``: the browser shows it on hover, and it names the
mark's fields (``content_id: ...``), so a test reads a chart's data back from what it shows.

Pure: strings in, a string out; no Streamlit here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

# Vega's default categorical palette ("tableau10"), so the colours stay those users know
PALETTE = (
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
    "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
)  # fmt: skip
INK, MUTED, GRID = "#31333f", "#6b6f7b", "#e6e7eb"
WIDTH = 520  # the viewBox's width (a half column of a wide page): the chart scales to its column
FULL_WIDTH = 1040  # a chart across the page
FONT = 12
TITLE_H, LEGEND_H, AXIS_H = 26, 20, 34
LABEL_CHARS = 34  # a bar's label beyond this is cut, with "…"
CLASS = "ep-chart"

Format = Callable[[float], str]


@dataclass(frozen=True)
class Mark:
    """One bar or point: its value, the series (colour) it belongs to, and the fields its
    tooltip names, in order."""

    value: float
    series: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


def number(value: float) -> str:
    """An axis label: whole numbers with thousands separators, others to three figures."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.3g}"


def tooltip(fields: Mapping[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in fields.items())


def ticks(high: float, count: int = 5) -> list[float]:
    """Round steps from 0 to at least ``high`` (1, 2, 2.5 or 5 times a power of ten)."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    n = math.ceil(high / step - 1e-9)
    return [i * step for i in range(n + 1)]


def colours(series: Sequence[str]) -> dict[str, str]:
    """A colour per series, in the order given (the first-seen order of the marks)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(series))}


def cut(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(
    x: float,
    y: float,
    text: str,
    anchor: str = "start",
    size: int = FONT,
    fill: str = MUTED,
    weight: int = 400,
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}" '
        f'font-weight="{weight}">{escape(text)}</text>'
    )


def _frame(title: str, height: float, body: list[str], width: float = WIDTH) -> str:
    return (
        f'<svg class="{CLASS}" data-title={quoteattr(title)} xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" role="img" '
        f'font-family="Source Sans Pro, sans-serif"><title>{escape(title)}</title>'
        + _text(0, 17, title, size=14, fill=INK, weight=600)
        + "".join(body)
        + "</svg>"
    )


def _header(palette: Mapping[str, str], legend: str) -> tuple[float, list[str]]:
    """Where the plot starts below the title, and the legend above it: swatches and names in a
    row, when there are several series or the legend is named."""
    if len(palette) <= 1 and not legend:
        return TITLE_H, []
    out, x, y = [], 0.0, TITLE_H
    if legend:
        out.append(_text(x, y + 10, legend + ":"))
        x += 7 * len(legend) + 14
    for name, colour in palette.items():
        out.append(f'<rect x="{x:.1f}" y="{y + 1:.1f}" width="10" height="10" fill="{colour}"/>')
        out.append(_text(x + 14, y + 10, name or "—"))
        x += 14 + 7 * len(name or "—") + 16
    return TITLE_H + LEGEND_H, out


def _mark(shape: str, fields: Mapping[str, str]) -> str:
    """A mark with its tooltip: ``<g class="mark"><title>…</title><rect …/></g>``."""
    return f'<g class="mark"><title>{escape(tooltip(fields))}</title>{shape}</g>'


def hbars(
    title: str,
    labels: Sequence[str],
    marks: Sequence[Mark],
    axis: str,
    fmt: Format,
    legend: str = "",
    width: float = WIDTH,
) -> str:
    """One horizontal bar per label, in the order given (a ranking reads top-down), coloured by
    its series; the value axis below."""
    palette = colours([m.series for m in marks])
    top, body = _header(palette, legend)
    left = min(max((len(cut(lb)) for lb in labels), default=0) * 6.2 + 8, width * 0.45)
    plot_w, bar_h = width - left - 24, 22  # room on the right for the last tick's label
    steps = ticks(max((m.value for m in marks), default=0.0))
    scale = plot_w / steps[-1]
    height = top + bar_h * len(marks) + AXIS_H
    for value in steps:
        x = left + value * scale
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - AXIS_H}" stroke="{GRID}"/>')
        body.append(_text(x, height - AXIS_H + 14, fmt(value), "middle"))
    body.append(_text(left + plot_w / 2, height - 4, axis, "middle"))
    for i, (label, m) in enumerate(zip(labels, marks, strict=True)):
        y = top + i * bar_h
        body.append(_text(left - 6, y + bar_h / 2 + 4, cut(label), "end", fill=INK))
        rect = (
            f'<rect x="{left:.1f}" y="{y + 3:.1f}" width="{max(m.value, 0) * scale:.1f}" '
            f'height="{bar_h - 6}" fill="{palette[m.series]}"/>'
        )
        body.append(_mark(rect, m.fields))
    return _frame(title, height, body, width)


def _y_axis(
    steps: list[float], left: float, top: float, plot_h: float, fmt: Format, axis: str, width: float
) -> list[str]:
    out = []
    for value in steps:
        y = top + plot_h - value / steps[-1] * plot_h
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(_text(left - 6, y + 4, fmt(value), "end"))
    out.append(
        f'<text transform="translate(12 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
        f'font-size="{FONT}" fill="{MUTED}">{escape(axis)}</text>'
    )
    return out


def columns(
    title: str,
    categories: Sequence[str],
    marks: Mapping[str, Sequence[Mark]],
    axis: str,
    fmt: Format,
    legend: str = "",
    plot_h: float = 180,
    width: float = WIDTH,
) -> str:
    """Vertical bars: per category (x), one bar per series, side by side. ``marks`` maps each
    category to its bars; a category's label shows when there is room (every k-th otherwise)."""
    series = colours([m.series for c in categories for m in marks.get(c, ())])
    top, body = _header(series, legend)
    left, bottom = 58.0, AXIS_H - 14
    steps = ticks(max((m.value for c in categories for m in marks.get(c, ())), default=0.0))
    slot = (width - left - 8) / max(len(categories), 1)
    bar_w = slot * 0.8 / max(len(series), 1)
    widest = max((len(c) for c in categories), default=0) * FONT * 0.55 + 6  # a label's width, roughly
    every = max(1, math.ceil(widest / slot))  # every k-th label, so that none overlap
    body += _y_axis(steps, left, top, plot_h, fmt, axis, width)
    place = {name: i for i, name in enumerate(series)}  # a series' place within its category
    for i, category in enumerate(categories):
        x0 = left + i * slot + slot * 0.1
        for m in marks.get(category, ()):
            h = max(m.value, 0) / steps[-1] * plot_h
            x = x0 + place[m.series] * bar_w
            rect = (
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{series[m.series]}"/>'
            )
            body.append(_mark(rect, m.fields))
        if i % every == 0:
            body.append(_text(left + (i + 0.5) * slot, top + plot_h + 14, category, "middle"))
    return _frame(title, top + plot_h + bottom + 8, body, width)


def _seconds(at: datetime) -> float:
    """Epoch seconds; a naive time is UTC (the warehouse's times are)."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _time_label(at: datetime, span_s: float) -> str:
    return f"{at:%H:%M}" if span_s <= 86_400 else f"{at:%b %d %H:%M}"


def lines(
    title: str,
    points: Sequence[tuple[datetime, Mark]],
    axis: str,
    fmt: Format,
    legend: str = "",
    dots: bool = True,
    plot_h: float = 180,
    width: float = WIDTH,
) -> str:
    """One line per series over time, the times' labels in UTC; each point a dot with its
    tooltip when ``dots`` (few points), else each line with its series' name."""
    series = colours([m.series for _t, m in points])
    top, body = _header(series, legend)
    left = 58.0
    plot_w = width - left - 44  # room on the right for the last time's label
    steps = ticks(max((m.value for _t, m in points), default=0.0))
    times = [_seconds(t) for t, _m in points]
    start, span = (min(times), max(times) - min(times)) if times else (0.0, 0.0)
    body += _y_axis(steps, left, top, plot_h, fmt, axis, width)

    def xy(at: datetime, value: float) -> tuple[float, float]:
        x = (_seconds(at) - start) / span if span else 0.5  # one time: in the middle
        return left + x * plot_w, top + plot_h - value / steps[-1] * plot_h

    for name, colour in series.items():
        mine = sorted(((t, m) for t, m in points if m.series == name), key=lambda p: p[0])
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, m.value) for t, m in mine))
        line = f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
        body.append(line if dots else _mark(line, {legend or "series": name}))
        if dots:
            for t, m in mine:
                x, y = xy(t, m.value)
                body.append(_mark(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>', m.fields))
    # six times along the axis; a single time once, in the middle; none without data
    labelled = [i / 5 for i in range(6)] if span else [0.5] if times else []
    for share in labelled:
        at = datetime.fromtimestamp(start + span * share, tz=UTC)
        body.append(_text(left + plot_w * share, top + plot_h + 14, _time_label(at, span), "middle"))
    return _frame(title, top + plot_h + AXIS_H - 6, body, width)
