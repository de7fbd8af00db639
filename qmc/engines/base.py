"""The exact engine as an engine object, beside :class:`BlockEngine` and :class:`PulseEngine`.

Every engine has ``observations(key, link, protocol) -> Observations``; the Monte Carlo engines
also have ``tally(key, link, protocol)``. The exact engine ignores the key.
"""

from __future__ import annotations

from typing import ClassVar

from qmc._pytree import pytree_dataclass
from qmc.engines import exact

__all__ = ["ExactEngine"]


@pytree_dataclass
class ExactEngine:
    """Closed-form probabilities (:func:`qmc.engines.exact.outcome_table`); no randomness."""

    name: ClassVar[str] = "exact"

    def checks(self):
        return []

    def outcome_table(self, link, protocol):
        return exact.outcome_table(link, protocol)

    def observations(self, key, link, protocol):
        del key
        return exact.observations(link, protocol)
