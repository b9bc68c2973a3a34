"""Reconciliation's pure parts: which minutes to read ids of, and the id diff."""

from __future__ import annotations

from engagement_platform.monitoring.reconcile import diff_ids, differing_minutes


def test_only_minutes_whose_fingerprints_differ_are_read_again() -> None:
    source = {"202612041000": (3, 6, 14), "202612041001": (2, 9, 41), "202612041002": (1, 7, 49)}
    sink = {"202612041000": (3, 6, 14), "202612041001": (1, 4, 16), "202612041003": (1, 8, 64)}
    # 10:00 equal; 10:01 lost an event; 10:02 only in Postgres; 10:03 only in ClickHouse
    assert differing_minutes(source, sink) == ["202612041001", "202612041002", "202612041003"]
    assert differing_minutes(source, dict(source)) == []


def test_a_swap_of_ids_with_the_same_count_and_sum_is_still_seen() -> None:
    # missing 5 and 7, extra 4 and 8: count and sum agree, the sum of squares does not
    lost = (4, 1 + 2 + 5 + 7, 1 + 4 + 25 + 49)
    swapped = (4, 1 + 2 + 4 + 8, 1 + 4 + 16 + 64)
    assert lost[:2] == swapped[:2]
    assert differing_minutes({"202612041000": lost}, {"202612041000": swapped}) == ["202612041000"]


def test_the_id_diff_says_what_is_missing_and_what_is_extra() -> None:
    diff = diff_ids([1, 2, 3, 4], [2, 3, 4, 9])
    assert (diff.source, diff.sink, diff.missing, diff.extra) == (4, 4, frozenset({1}), frozenset({9}))
    assert not diff.exact and diff_ids([1], [1]).exact
