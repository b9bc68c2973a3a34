"""The writer's pure parts: its schedule, how connections are spread, when it kept up."""

from __future__ import annotations

import pytest

from engagement_platform.bench.writer import Pacer, connections_for, insert_sql, kept_up, spread


def test_pacer_spaces_transactions_by_their_size_over_the_rate() -> None:
    pacer = Pacer(rate=100.0, tx_size=20, start=1000.0)  # 5 transactions/s
    assert [pacer.due(i) for i in range(3)] == [1000.0, 1000.2, 1000.4]
    assert pacer.wait(1, now=1000.05) == pytest.approx(0.15)
    assert pacer.behind(1, now=1000.05) == 0.0


def test_a_late_writer_does_not_sleep_and_says_how_late_it_is() -> None:
    pacer = Pacer(rate=1000.0, tx_size=1, start=0.0)
    assert pacer.wait(10, now=0.5) == 0.0  # due at 0.01: caught up at once, nothing skipped
    assert pacer.behind(10, now=0.5) == pytest.approx(0.49)


def test_connections_spread_evenly_over_at_most_one_process_per_core() -> None:
    assert spread(10, 2) == [5, 5]
    assert spread(7, 2) == [4, 3]
    assert spread(1, 4) == [1]
    assert sum(spread(64, 3)) == 64


def test_connections_follow_the_transactions_asked() -> None:
    assert connections_for(1000, 1, None) == 40  # 1,000 transactions/s
    assert connections_for(1000, 50, None) == 2  # 20 transactions/s: the floor
    assert connections_for(100_000, 1, None) == 64  # the ceiling
    assert connections_for(1000, 1, 3) == 3  # asked for


def test_kept_up_is_ninety_percent_of_the_rate_asked() -> None:
    assert kept_up(9_000, 1000, 10, 0.9)
    assert not kept_up(8_999, 1000, 10, 0.9)
    assert not kept_up(100, 1000, 0, 0.9)


def test_one_statement_per_transaction_holds_tx_size_rows() -> None:
    sql = insert_sql(3)
    assert sql.count("(%s, %s, %s, %s, %s, %s, %s)") == 3
    assert sql.startswith("INSERT INTO engagement_events") and sql.endswith("RETURNING id")
