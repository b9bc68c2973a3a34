"""Is the pipeline healthy? Measurements and verdicts, free of Dagster (its checks call these)."""
