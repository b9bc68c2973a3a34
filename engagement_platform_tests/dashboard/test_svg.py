"""The server-drawn charts (dashboard.svg): well-formed SVG, a mark per value, its tooltip
naming the mark's fields, lengths in proportion, text escaped. Pure: no browser, no services."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from engagement_platform.dashboard import svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def marks(chart: str) -> list[ET.Element]:
    return list(ET.fromstring(chart).iterfind(".//svg:g[@class='mark']", NS))


def tips(chart: str) -> list[str]:
    return [m.findtext("svg:title", "", NS) for m in marks(chart)]


@pytest.mark.parametrize(
    ("high", "expected"),
    [(0, [0.0, 1.0]), (7, [0, 2, 4, 6, 8]), (100, [0, 20, 40, 60, 80, 100]), (0.37, [0, 0.1, 0.2, 0.3, 0.4])],
)
def test_ticks_are_round_steps_from_zero_past_the_highest_value(high: float, expected: list[float]) -> None:
    assert svg.ticks(high) == pytest.approx(expected)


def test_bars_are_in_the_order_given_with_lengths_in_proportion_and_their_fields_on_hover() -> None:
    chart = svg.hbars(
        "Top <titles> & more",
        ["#1 A", "#2 B"],
        [svg.Mark(40, "podcast", {"content_id": "a"}), svg.Mark(10, "video", {"content_id": "b"})],
        "events",
        str,
        legend="type",
    )
    root = ET.fromstring(chart)  # well-formed, the title's "<" and "&" escaped
    assert root.attrib["data-title"] == "Top <titles> & more" and root.attrib["class"] == svg.CLASS
    assert tips(chart) == ["content_id: a", "content_id: b"]
    widths = [float(m.find("svg:rect", NS).attrib["width"]) for m in marks(chart)]  # type: ignore[union-attr]
    assert widths[0] == pytest.approx(4 * widths[1])
    fills = {m.find("svg:rect", NS).attrib["fill"] for m in marks(chart)}  # type: ignore[union-attr]
    assert fills == set(svg.PALETTE[:2])  # a colour per series
    assert "podcast" in chart and "video" in chart  # the legend names them


def test_a_long_label_is_cut() -> None:
    chart = svg.hbars("t", ["x" * 100], [svg.Mark(1)], "events", str)
    assert "x" * svg.LABEL_CHARS not in chart and "x" * (svg.LABEL_CHARS - 1) + "…" in chart


def test_columns_group_each_category_s_series_side_by_side() -> None:
    categories = ["0–10 %", "10–20 %"]
    by = {
        "0–10 %": [svg.Mark(0.5, "a", {"k": "a0"}), svg.Mark(0.25, "b", {"k": "b0"})],
        "10–20 %": [svg.Mark(0.5, "a", {"k": "a1"})],
    }
    chart = svg.columns("c", categories, by, "share", lambda v: f"{v:.0%}")
    assert tips(chart) == ["k: a0", "k: b0", "k: a1"]
    rects = [m.find("svg:rect", NS).attrib for m in marks(chart)]  # type: ignore[union-attr]
    assert float(rects[0]["height"]) == pytest.approx(2 * float(rects[1]["height"]))
    assert float(rects[0]["x"]) < float(rects[1]["x"]) < float(rects[2]["x"])  # side by side, in order
    assert "50%" in chart  # the axis in the given format


def test_lines_put_points_in_time_order_and_label_the_times_in_utc() -> None:
    start = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    points = [(start + timedelta(minutes=m), svg.Mark(m, "play", {"minute": str(m)})) for m in (2, 0, 1)]
    chart = svg.lines("l", points, "events / minute", str, "event type")
    xs = [float(m.find("svg:circle", NS).attrib["cx"]) for m in marks(chart)]  # type: ignore[union-attr]
    assert xs == sorted(xs) and tips(chart) == ["minute: 0", "minute: 1", "minute: 2"]
    assert "12:00" in chart and "12:02" in chart
    naive = [(t.replace(tzinfo=None), m) for t, m in points]  # the warehouse's times: UTC
    assert svg.lines("l", naive, "events / minute", str) == svg.lines("l", points, "events / minute", str)


def test_many_points_draw_lines_that_still_name_their_series() -> None:
    start = datetime(2026, 3, 10, tzinfo=UTC)
    points = [(start + timedelta(hours=h), svg.Mark(h, s)) for h in range(10) for s in ("play", "pause")]
    chart = svg.lines("l", points, "y", str, "event_type", dots=False)
    assert tips(chart) == ["event_type: play", "event_type: pause"] and "<circle" not in chart


def test_one_time_or_no_data_still_draws() -> None:
    at = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    one = svg.lines("l", [(at, svg.Mark(3, "play"))], "y", str)
    (circle,) = ET.fromstring(one).iterfind(".//svg:circle", NS)
    assert float(circle.attrib["cx"]) == pytest.approx(58 + (svg.WIDTH - 58 - 44) / 2)  # in the middle
    empties = (
        svg.lines("l", [], "y", str),
        svg.hbars("h", [], [], "x", str),
        svg.columns("c", [], {}, "y", str),
    )
    for empty in empties:
        assert ET.fromstring(empty).attrib["class"] == svg.CLASS and not marks(empty)


def test_no_text_can_open_an_element() -> None:
    label = '<script>alert("x")</script>'
    chart = svg.hbars("t", [label], [svg.Mark(1, "s", {"f": "</title><b>"})], "x", str)
    assert "<script" not in chart and "<b>" not in chart and re.search(r"&lt;script&gt;", chart)


def test_axis_numbers_keep_what_distinguishes_them() -> None:
    assert [svg.number(v) for v in (0, 2.5, 0.02, 12_500, 0.1)] == ["0", "2.5", "0.02", "12,500", "0.1"]
