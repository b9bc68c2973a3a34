"""The peers of ``bench enrich``: our join written with Faust and with Quix Streams.

They run in ``.venv-peers`` (Quix Streams pins confluent-kafka below the platform's), so these
modules import only the standard library, their framework and the enricher's pure modules.
"""
