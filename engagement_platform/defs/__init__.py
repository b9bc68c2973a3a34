"""Dagster definitions, one sub-package per domain (postgres, cdc, kafka, warehouse, leaderboard)."""
