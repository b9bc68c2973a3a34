"""Benchmark commands: each prints figures measured in one run against a baseline in the same run."""
