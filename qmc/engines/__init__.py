"""Engines: one physics definition, several ways to evaluate it (see docs/design.md)."""

from qmc.engines import exact
from qmc.engines.exact import outcome_table, observations

__all__ = ["exact", "outcome_table", "observations"]
