"""The Dagster code location: one ``dg.Definitions`` merged from the domain modules."""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions.merge(dg.Definitions())
