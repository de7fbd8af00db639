"""Engines: one physics definition, several ways to evaluate it (see docs/design.md)."""

from qmc.engines import exact
from qmc.engines.base import ExactEngine
from qmc.engines.block import BlockEngine
from qmc.engines.exact import observations, outcome_table
from qmc.engines.observations import Observations
from qmc.engines.pulse import PulseEngine
from qmc.engines.streams import StreamEngine
from qmc.engines.tally import SiftedTally, Tally

__all__ = [
    "exact", "outcome_table", "observations", "Observations", "Tally", "SiftedTally", "ExactEngine",
    "BlockEngine", "PulseEngine", "StreamEngine",
]
