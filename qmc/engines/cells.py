"""Tallies of a protocol-owned outcome layout (a protocol with ``joint_probabilities`` and
``reduction``, e.g. :class:`qmc.protocols.BBM92`).

Engines draw counts of the protocol's cells exactly as they draw BB84's (the exact engine's joint
probabilities, one alias table, multinomial sessions); :class:`CellTally` keeps the counts and
the protocol's reduction weights, and reduces them to :class:`qmc.Observations` with one class
(k = 1): per matched basis b, the pulses sent (sum of the counts of the cells measured in b),
the gain (weighted coincidences / pulses) and the error gain (weighted errors / pulses).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from qmc._pytree import register
from qmc.engines.observations import Observations

__all__ = ["CellTally", "cell_observations"]


def cell_observations(cells, reduction, n_pulses=None) -> Observations:
    """Observations (k = 1) of cell probabilities or counts (..., n_cells) under ``reduction``
    ((matched, coincidence, error) weights, each (2, n_cells)); ``n_pulses`` None: expectations."""
    matched, coincidence, error = (jnp.asarray(w, jnp.float64) for w in reduction)
    x = jnp.asarray(cells, jnp.float64)
    sent = x @ matched.T
    safe = jnp.where(sent > 0, sent, 1.0)
    gain = ((x @ coincidence.T) / safe)[..., None, :]
    error_gain = ((x @ error.T) / safe)[..., None, :]
    if n_pulses is None:
        return Observations(gain, error_gain)
    return Observations(gain, error_gain, sent[..., None, :], jnp.asarray(n_pulses, jnp.float64))


@dataclasses.dataclass(frozen=True, eq=False)
class CellTally:
    """int64 counts of a protocol's cells (..., n_cells) and its reduction weights."""

    counts: object
    matched: object
    coincidence: object
    error: object

    @classmethod
    def of(cls, counts, protocol) -> "CellTally":
        counts = jnp.asarray(counts)
        return cls(counts, *(jnp.asarray(w) for w in protocol.reduction()))

    @property
    def n_pulses(self):
        return jnp.sum(self.counts, axis=-1)

    def observations(self) -> Observations:
        return cell_observations(self.counts, (self.matched, self.coincidence, self.error), self.n_pulses)

    def qber(self):
        """Errors / coincidences per matched basis (k = 1): (..., 1, 2)."""
        obs = self.observations()
        return jnp.where(obs.gain > 0, obs.error_gain / jnp.where(obs.gain > 0, obs.gain, 1.0), 0.0)


register(CellTally, ["counts", "matched", "coincidence", "error"], [])
