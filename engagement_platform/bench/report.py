"""What every benchmark prints and writes, so the three read alike and can be compared.

Progress bars go to stderr (a benchmark that goes quiet looks hung), the result tables to
stdout, and ``--json FILE`` gets one shape: ``results`` per variant (``ours``, ``baseline``,
``ceiling``, then any peers: other frameworks doing the same work) whose scalar figures are
those of the median run, with every run and the best one beside them, and ``ratios`` of
medians (``ratios_best``: of bests), ``ours_vs_<peer>`` for each peer. Each variant runs
``--runs`` times, round by round, so noise on a shared machine shows as spread instead of
hiding in a single figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from engagement_platform.argtypes import positive_int

VARIANTS = ("ours", "baseline", "ceiling")
DEFAULT_RUNS = 3
QUIET_LINE_EVERY = 10.0  # seconds between plain progress lines when stderr is not a terminal

# a pipe or a file gets wide lines rather than tables and messages folded at 80 columns
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def say(message: str) -> None:
    err.print(message, markup=False)


def setup_logging() -> None:
    """Consumer logs go above the progress bars; their routine lines are not the figures."""
    logging.basicConfig(
        level=logging.INFO,
        handlers=[RichHandler(console=err, show_path=False, markup=False, rich_tracebacks=False)],
        format="%(name)s: %(message)s",
    )
    logging.getLogger("engagement_platform.streaming").setLevel(logging.WARNING)


def add_arguments(parser: argparse.ArgumentParser, unit: str, size: int, baseline: int) -> None:
    """The flags every bench command takes: ``--<unit>`` to pre-load, ``--baseline-<unit>``
    (the baseline's share: the slowest by far, it runs over the first ones only), ``--runs``
    and ``--json``."""
    parser.add_argument(
        f"--{unit}", type=positive_int, default=size, help=f"{unit} to pre-load (default {size:,})"
    )
    parser.add_argument(
        f"--baseline-{unit}",
        type=positive_int,
        default=baseline,
        help=f"{unit} the baseline processes, the first of the same input "
        f"(default {baseline:,}; capped at --{unit})",
    )
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=DEFAULT_RUNS,
        help=f"times each variant runs; the median and the best are reported (default {DEFAULT_RUNS})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")


# --- measuring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured pass: ``events`` handled in ``seconds``, plus figures of its own."""

    events: int
    seconds: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.rate, 1),
            **self.extra,
        }


def median_and_best(values: Sequence[float], *, higher_is_better: bool = True) -> tuple[float, float]:
    """The median (the lower middle one for an even count, so always a measured value) and the best."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2], (ordered[-1] if higher_is_better else ordered[0])


@dataclass(frozen=True)
class Variant:
    """Every run of one contender."""

    name: str
    runs: tuple[Run, ...]

    @property
    def median(self) -> Run:
        rate, _ = median_and_best([r.rate for r in self.runs])
        return next(r for r in self.runs if r.rate == rate)

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda r: r.rate)

    def as_json(self) -> dict[str, Any]:
        median, best = self.median, self.best
        return {
            **median.as_json(),  # the scalars are the median run's
            "median": {"events_per_s": round(median.rate, 1), "seconds": round(median.seconds, 3)},
            "best": {"events_per_s": round(best.rate, 1), "seconds": round(best.seconds, 3)},
            "runs": [r.as_json() for r in self.runs],
            "runs_events_per_s": [round(r.rate, 1) for r in self.runs],
        }


class Bar:
    """A progress bar on stderr; when stderr is a pipe, a plain line now and then instead."""

    def __init__(self, progress: Progress, task: Any, label: str, total: int) -> None:
        self._progress, self._task, self.label, self.total = progress, task, label, total
        self._last_line = time.monotonic()

    def update(self, done: int) -> None:
        self._progress.update(self._task, completed=done)
        if not err.is_terminal and time.monotonic() - self._last_line >= QUIET_LINE_EVERY:
            self._last_line = time.monotonic()
            say(f"  {self.label}: {done:,}/{self.total:,}")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


@contextmanager
def progress(label: str, total: int) -> Iterator[Bar]:
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, refresh_per_second=4) as bars:
        task = bars.add_task(label, total=total)
        yield Bar(bars, task, label, total)


Measure = Callable[[int, Bar], Run]


def measure(plan: Sequence[tuple[str, int, Measure]], runs: int) -> dict[str, Variant]:
    """Run each ``(name, events, measure)`` ``runs`` times, one round after another, the
    order rotated every round: no variant always runs first after the pre-load, or last on a
    machine that has grown busy. ``measure`` gets the run index and its progress bar."""
    done: dict[str, list[Run]] = {name: [] for name, _, _ in plan}
    for i in range(runs):
        shift = i % len(plan)
        for name, events, fn in [*plan[shift:], *plan[:shift]]:
            with progress(f"{name} {i + 1}/{runs}", events) as bar:
                run = fn(i, bar)
                bar.update(run.events)
            done[name].append(run)
    return {name: Variant(name, tuple(rs)) for name, rs in done.items()}


T = TypeVar("T")
Contender = Callable[[T, int, int, Bar], Run]  # (input, events, run index, bar) -> the run


def compare(
    runs: int,
    inp: T,
    events: int,
    baseline_events: int,
    *,
    ours: Contender[T],
    baseline: Contender[T],
    ceiling: Contender[T],
    peers: Mapping[str, Contender[T]] | None = None,
) -> dict[str, Variant]:
    """The three contenders, then ``peers`` (by name), over the same input, ``runs`` times
    each; ours goes first in the first round (the warehouse's baseline relies on it: each of
    its runs is a replay)."""
    plan = [
        ("ours", events, partial(ours, inp, events)),
        ("baseline", baseline_events, partial(baseline, inp, baseline_events)),
        ("ceiling", events, partial(ceiling, inp, events)),
        *((name, events, partial(peer, inp, events)) for name, peer in (peers or {}).items()),
    ]
    return measure(plan, runs)


# --- figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """What a run is judged against: ratios of medians, and (``ours_rate``) ours' median rate;
    None: no target."""

    ours_vs_baseline: float | None = 10.0
    ours_vs_ceiling: float | None = 0.5
    ours_rate: float | None = None

    def as_json(self) -> dict[str, float]:
        goals = {
            "ours_vs_baseline": self.ours_vs_baseline,
            "ours_vs_ceiling": self.ours_vs_ceiling,
            "ours_rate": self.ours_rate,
        }
        return {k: v for k, v in goals.items() if v is not None}


def _ratio(a: float, b: float, digits: int) -> float | None:
    return round(a / b, digits) if b > 0 else None


def peer_names(variants: Mapping[str, Variant]) -> list[str]:
    """The variants beyond the three every benchmark has, in the order they ran."""
    return [name for name in variants if name not in VARIANTS]


def ratios(variants: Mapping[str, Variant], pick: Callable[[Variant], Run]) -> dict[str, float | None]:
    ours = pick(variants["ours"]).rate
    return {
        "ours_vs_baseline": _ratio(ours, pick(variants["baseline"]).rate, 2),
        "ours_vs_ceiling": _ratio(ours, pick(variants["ceiling"]).rate, 3),
        **{f"ours_vs_{name}": _ratio(ours, pick(variants[name]).rate, 2) for name in peer_names(variants)},
    }


def figures(
    benchmark: str, variants: Mapping[str, Variant], targets: Targets | None = None, **context: Any
) -> dict[str, Any]:
    """The JSON every bench command writes (``context``: the sizes and settings of the run)."""
    medians = ratios(variants, lambda v: v.median)
    report: dict[str, Any] = {
        "benchmark": benchmark,
        **context,
        "runs": max(len(v.runs) for v in variants.values()),
        "results": {name: variants[name].as_json() for name in [*VARIANTS, *peer_names(variants)]},
        "ratios": medians,
        "ratios_best": ratios(variants, lambda v: v.best),
    }
    # the baseline may run over the first of the events only (it is the slowest by far)
    report["results"]["baseline"]["subset"] = (
        variants["baseline"].median.events < variants["ours"].median.events
    )
    if targets is not None:
        report["targets"] = targets.as_json()
        reached = {**medians, "ours_rate": variants["ours"].median.rate}
        report["targets_met"] = all(
            (value := reached[k]) is not None and value >= goal for k, goal in targets.as_json().items()
        )
    return report


def write_json(path: Path | None, report: Mapping[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {path}")


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A title line (not folded to the table's width), then the table: the first column
    left-aligned, the figures right-aligned."""
    out.print(f"\n{title}", markup=False)
    t = Table()
    for i, name in enumerate(header):
        t.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        t.add_row(*(_cell(c) for c in row))
    out.print(t)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}"
    return value if isinstance(value, str) else f"{value:,}"


def print_results(
    title: str,
    report: Mapping[str, Any],
    variants: Mapping[str, Variant],
    *,
    unit: str = "events",
    columns: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> None:
    """The variants' table (``columns``: extra figures of the median run, key -> header),
    the ratios, then ``notes`` saying what each variant is."""
    columns = columns or {}
    header = ["variant", unit, "median s", f"median {unit}/s", f"best {unit}/s", f"each run, {unit}/s"]
    rows = []
    for name in [*VARIANTS, *peer_names(variants)]:
        v = variants[name]
        m = v.median
        each = " ".join(_cell(r.rate) for r in v.runs)
        extra = ["" if m.extra.get(k) is None else m.extra[k] for k in columns]
        rows.append([name, m.events, f"{m.seconds:.2f}", _cell(m.rate), _cell(v.best.rate), each, *extra])
    print_table(title, [*header, *columns.values()], rows)
    targets = report.get("targets", {})
    lines = []
    labels = [
        ("ours_vs_baseline", "baseline"),
        ("ours_vs_ceiling", "ceiling"),
        *((f"ours_vs_{n}", n) for n in peer_names(variants)),
    ]
    width = max(len(name) for _, name in labels)
    for key, name in labels:
        label = f"ours / {name:<{width}}"
        med, best = report["ratios"][key], report["ratios_best"][key]
        line = f"{label} = {_times(med)} median, {_times(best)} best"
        if key in targets:
            met = med is not None and med >= targets[key]
            line += f"   (target >= {targets[key]:g}x: {'met' if met else 'MISSED'})"
        lines.append(line)
    if "ours_rate" in targets:
        rate, goal = variants["ours"].median.rate, targets["ours_rate"]
        met = "met" if rate >= goal else "MISSED"
        lines.append(f"ours median = {rate:,.0f} {unit}/s   (target >= {goal:,.0f}: {met})")
    baseline = variants["baseline"].median.events
    if report["results"]["baseline"]["subset"]:
        notes = [
            *notes,
            f"baseline ran over the first {baseline:,} {unit} only: at its rate, all would take minutes",
        ]
    for line in [*lines, *(f"({n})" for n in notes)]:
        out.print(line, markup=False)


def _times(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f}x" if value >= 10 else f"{value:.2f}x"
