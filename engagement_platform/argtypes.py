"""Argument types shared by every command's parser, so bad numbers fail the same way everywhere."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


class UsageError(Exception):
    """A command was called with arguments it cannot use (the CLI exits 2 with one line)."""


def _int_at_least(raw: str, lowest: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {value}")
    return value


def positive_int(raw: str) -> int:
    return _int_at_least(raw, 1)


def non_negative_int(raw: str) -> int:
    return _int_at_least(raw, 0)


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None


def positive_float(raw: str) -> float:
    value = _float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {raw}")
    return value


def non_negative_float(raw: str) -> float:
    value = _float(raw)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {raw}")
    return value


def utc_time(raw: str) -> datetime:
    """An ISO-8601 time, UTC unless it says otherwise (``Z`` or an offset), as an aware datetime."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2026-11-29T19:00:00Z, got {raw!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
