"""BBM92: entanglement-based BB84 (Bennett, Brassard, Mermin, PRL 68, 557 (1992)) with a pair
source between Alice and Bob, and the outcome layout it owns.

Each pulse of the pair source (:class:`qmc.entanglement.TwoArmLink`) is measured by Alice and by
Bob, each in basis Z or X (Z with probability ``p_z``, independently); the cells of a pulse are
(Alice basis, Bob basis, Alice outcome, Bob outcome), outcomes (no click, bit 0, bit 1, double
click) per side: shape (2, 2, 4, 4), 64 cells. The protocol owns this layout: it gives the
engines the joint probabilities of the cells (:meth:`BBM92.joint_probabilities`) and how their
counts reduce to observations (:meth:`BBM92.reduction`), so the exact, block and pulse engines
(the alias draw and the fused GPU kernel included) run it unchanged
(:class:`qmc.engines.cells.CellTally`); BB84's tables and tallies are untouched
(:func:`qmc.engines.exact.owns_layout`).

The observations of a tally are BB84's with one "intensity": per matched basis b, the gain
Q[0, b] (coincidences: a click on both sides, per pulse measured in matched bases b) and the
error gain (bits that differ, a double click on either side counting 1/2: it gets a random bit,
Ma, Fung, Lo, PRA 76, 012307 (2007)).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass, static
from qmc.protocols.base import AbstractProtocol
from qmc.validation import Range, Rule

__all__ = ["BBM92", "CELL_SHAPE", "COINCIDENCE", "ERROR_WEIGHT"]

CELL_SHAPE = (2, 2, 4, 4)
# Per (Alice outcome, Bob outcome): a coincidence (both sides click), and its error weight.
COINCIDENCE = np.array([[0.0] * 4] + [[0.0, 1.0, 1.0, 1.0]] * 3)
ERROR_WEIGHT = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5], [0.0, 1.0, 0.0, 0.5], [0.0, 0.5, 0.5, 0.5]])


@pytree_dataclass
class BBM92(AbstractProtocol):
    """BBM92 with basis probability ``p_z`` on both sides.

    Args:
        p_z: probability that each side measures in Z (1/2: symmetric, sifting q = 1/2).
        mean_pair_number: the pump's mean pair number per pulse when the protocol sets it (an
            optimizer's choice); None keeps the source's (``source.mean_pair_number``).
        key_basis: ``"both"`` (key from both matched bases, Ma-Fung-Lo's convention) or ``"Z"``.
    """

    p_z: float = 0.5
    mean_pair_number: float | None = None
    key_basis: str = static("both")

    def checks(self):
        return [Range("p_z", 0.0, 1.0, lo_open=True, hi_open=True),
                Rule("mean_pair_number", lambda p, xp: xp.asarray(True) if p.mean_pair_number is None
                     else xp.asarray(p.mean_pair_number) > 0, "must be > 0 or null"),
                Rule("key_basis", lambda p, xp: xp.asarray(p.key_basis in ("both", "Z")), "must be one of both, Z")]

    @property
    def intensities(self):
        """One class of pulses (the pair source's): BB84's observations with k = 1."""
        return jnp.ones(1)

    @property
    def probabilities(self):
        return jnp.ones(1)

    def basis_probabilities(self):
        p = jnp.asarray(self.p_z, jnp.float64)
        return jnp.stack([p, 1.0 - p])

    def class_probabilities(self):
        """P(Alice basis, Bob basis), shape (2, 2)."""
        pb = self.basis_probabilities()
        return pb[:, None] * pb[None, :]

    def key_basis_mask(self):
        return jnp.asarray([1.0, 1.0] if self.key_basis == "both" else [1.0, 0.0])

    def parameter_space(self, analysis=None):
        raise NotImplementedError("BBM92: the mean pair number is optimized by qmc.entanglement.bbm92."
                                  "optimal_key_rate (a grid refined around its best point)")

    def link_at(self, link):
        """``link`` with the protocol's mean pair number, if it sets one."""
        if self.mean_pair_number is None:
            return link
        return dataclasses.replace(link, source=dataclasses.replace(link.source, mean_pair_number=self.mean_pair_number))

    def joint_probabilities(self, link):
        """P(Alice basis, Bob basis, Alice outcome, Bob outcome) per pulse, shape (2, 2, 4, 4)."""
        table = self.link_at(link).table()
        return self.class_probabilities()[..., None, None] * table

    def reduction(self):
        """How counts of the cells reduce to observations (:class:`qmc.engines.cells.CellTally`):
        (2, 64) weights per matched basis b of the cells measured in b by both sides, of their
        coincidences, and of their errors (a double click on either side counts 1/2)."""
        matched = np.zeros((2,) + CELL_SHAPE)
        for b in range(2):
            matched[b, b, b] = 1.0
        coincidence = matched * COINCIDENCE
        errors = matched * ERROR_WEIGHT
        return tuple(w.reshape(2, -1) for w in (matched, coincidence, errors))
