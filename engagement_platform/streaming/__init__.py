"""The always-on consumers: pure logic (parsing, enrichment, bucketing) beside its runners."""
