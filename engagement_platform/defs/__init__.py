"""Dagster definitions only, one sub-package per domain of the data path (postgres, cdc, kafka,
warehouse, serving), each with its assets, checks and resources; merged by
``engagement_platform.definitions``. The library code they call lives outside ``defs/``."""
