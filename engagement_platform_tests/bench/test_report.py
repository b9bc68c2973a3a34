"""What the benchmarks print and write, without a broker: the statistics pick the right
runs, the ratios are of medians and of bests, and the JSON keeps one shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engagement_platform.bench import report
from engagement_platform.bench.report import Run, Variant


def test_median_is_a_measured_value_and_best_depends_on_the_direction() -> None:
    assert report.median_and_best([3.0, 1.0, 2.0]) == (2.0, 3.0)
    assert report.median_and_best([4.0, 1.0, 3.0, 2.0]) == (2.0, 4.0)  # the lower middle one
    assert report.median_and_best([0.5, 0.2, 0.9], higher_is_better=False) == (0.5, 0.2)
    assert report.median_and_best([7.0]) == (7.0, 7.0)
    with pytest.raises(ValueError):
        report.median_and_best([])


def test_variant_median_and_best_are_runs() -> None:
    runs = (Run(100, 2.0, {"k": "slow"}), Run(100, 1.0, {"k": "fast"}), Run(100, 1.25, {"k": "mid"}))
    v = Variant("ours", runs)
    assert (v.median.rate, v.median.extra["k"]) == (80.0, "mid")
    assert (v.best.rate, v.best.extra["k"]) == (100.0, "fast")


def _variants() -> dict[str, Variant]:
    return {
        "ours": Variant("ours", (Run(1000, 1.0), Run(1000, 0.5), Run(1000, 2.0))),  # 1000 2000 500
        "baseline": Variant("baseline", (Run(10, 1.0), Run(10, 0.5), Run(10, 0.25))),  # 10 20 40
        "ceiling": Variant("ceiling", (Run(1000, 0.25), Run(1000, 0.5), Run(1000, 0.2))),  # 4000 2000 5000
    }


def test_figures_keep_the_shape_and_ratios_are_of_medians_and_of_bests(tmp_path: Path) -> None:
    figures = report.figures("enrich", _variants(), report.Targets(), events=1000, partitions=3)
    assert set(figures["results"]) == {"ours", "baseline", "ceiling"}
    assert set(figures["ratios"]) == {"ours_vs_baseline", "ours_vs_ceiling"}
    assert figures["ratios"] == {"ours_vs_baseline": 50.0, "ours_vs_ceiling": 0.25}  # 1000/20, 1000/4000
    assert figures["ratios_best"] == {"ours_vs_baseline": 50.0, "ours_vs_ceiling": 0.4}  # 2000/40, 2000/5000
    assert (figures["benchmark"], figures["events"], figures["partitions"], figures["runs"]) == (
        "enrich",
        1000,
        3,
        3,
    )
    assert figures["targets"] == {"ours_vs_baseline": 10.0, "ours_vs_ceiling": 0.5}
    assert figures["targets_met"] is False
    ours = figures["results"]["ours"]
    assert (ours["events"], ours["seconds"], ours["events_per_s"]) == (1000, 1.0, 1000.0)  # the median run
    assert ours["median"] == {"events_per_s": 1000.0, "seconds": 1.0}
    assert ours["best"] == {"events_per_s": 2000.0, "seconds": 0.5}
    assert [r["events_per_s"] for r in ours["runs"]] == ours["runs_events_per_s"] == [1000.0, 2000.0, 500.0]

    out = tmp_path / "figures.json"
    report.write_json(out, figures)
    assert json.loads(out.read_text()) == figures


def test_a_rate_target_judges_ours_median_and_prints_its_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    variants = _variants()  # ours: median 1000/s, 50x the baseline
    goal = report.Targets(ours_vs_ceiling=None, ours_rate=1500)
    figures = report.figures("leaderboard", variants, goal)
    assert figures["targets"] == {"ours_vs_baseline": 10.0, "ours_rate": 1500}
    assert figures["targets_met"] is False
    report.print_results("title", figures, variants)
    assert "ours median = 1,000 events/s   (target >= 1,500: MISSED)" in capsys.readouterr().out
    met = report.figures("leaderboard", variants, report.Targets(ours_vs_ceiling=None, ours_rate=1000))
    assert met["targets_met"] is True


def test_figures_without_targets_have_no_verdict() -> None:
    figures = report.figures("warehouse", _variants())
    assert "targets" not in figures and "targets_met" not in figures


def test_measure_runs_each_variant_n_times_rotating_the_order(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, int]] = []

    def fake(name: str, events: int) -> report.Measure:
        def run(i: int, bar: report.Bar) -> Run:
            calls.append((name, i))
            bar.update(events // 2)
            return Run(events, 1.0 + i)

        return run

    plan = [(name, 10, fake(name, 10)) for name in ("a", "b", "c")]
    variants = report.measure(plan, 3)
    assert [name for name, _ in calls] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(v.runs) == 3 for v in variants.values())
    assert [r.seconds for r in variants["a"].runs] == [1.0, 2.0, 3.0]


def test_results_table_prints_every_variant_and_both_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    variants = _variants()
    figures = report.figures("enrich", variants, report.Targets())
    report.print_results("title", figures, variants, notes=["what the ceiling is"])
    text = capsys.readouterr().out
    for word in ("ours", "baseline", "ceiling", "ours / baseline", "ours / ceiling", "MISSED", "(what the"):
        assert word in text


def test_peers_are_rows_and_ratios_of_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    variants = {**_variants(), "faust": Variant("faust", (Run(1000, 4.0), Run(1000, 2.0), Run(1000, 10.0)))}
    figures = report.figures("enrich", variants, report.Targets())
    assert list(figures["results"]) == ["ours", "baseline", "ceiling", "faust"]
    assert figures["results"]["faust"]["median"] == {"events_per_s": 250.0, "seconds": 4.0}
    assert figures["ratios"]["ours_vs_faust"] == 4.0  # 1000/250
    assert figures["ratios_best"]["ours_vs_faust"] == 4.0  # 2000/500
    assert figures["targets_met"] is False  # peers set no target
    report.print_results("title", figures, variants)
    text = capsys.readouterr().out
    assert "faust" in text and "ours / faust    = 4.00x median" in text
