"""Engines: one physics definition, several ways to evaluate it (see docs/design.md)."""

from qmc.engines import exact
from qmc.engines.exact import outcome_table, observations
from qmc.engines.tally import SiftedTally, Tally  # noqa: I001  (after exact: tally imports it)
from qmc.engines.block import BlockEngine
from qmc.engines.pulse import PulseEngine
from qmc.engines.base import ExactEngine
from qmc.engines.streams import StreamEngine

__all__ = [
    "exact", "outcome_table", "observations", "Tally", "SiftedTally", "ExactEngine", "BlockEngine",
    "PulseEngine", "StreamEngine",
]
