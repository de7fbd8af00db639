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

Its free parameters for :mod:`qmc.optimize` (:meth:`BBM92.parameter_space`, :class:`BBM92Space`):
the mean pair number, which the protocol then sets on the link's source, and the basis bias p_z.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass, static
from qmc.protocols.base import AbstractProtocol
from qmc.validation import Range, Rule

__all__ = ["BBM92", "BBM92Space", "CELL_SHAPE", "COINCIDENCE", "ERROR_WEIGHT", "LOG10_PAIR_NUMBER_RANGE",
           "START_PAIR_NUMBER"]

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

    def parameter_space(self, analysis=None) -> "BBM92Space":
        """The parameters ``analysis`` reads (its ``parameters``; both without an analysis): the
        mean pair number always, the basis bias ``p_z`` where the analysis lists it (finite keys:
        :class:`qmc.analysis.BBM92Finite`; the asymptotic rate rises toward p_z -> 0 or 1, so
        :class:`qmc.analysis.BBM92Asymptotic` leaves it fixed). Pass ``BBM92Space(p_z=True)`` to the
        optimizer to free it anyway."""
        uses = getattr(analysis, "parameters", ("mean_pair_number", "p_z"))
        return BBM92Space(p_z="p_z" in uses)

    def parameters(self) -> dict:
        """Every parameter as a flat dict: ``mean_pair_number`` (NaN where the source's is used) and
        ``p_z`` (arrays keep their leading batch axes)."""
        mu = np.nan if self.mean_pair_number is None else self.mean_pair_number
        return {"mean_pair_number": np.asarray(mu, np.float64), "p_z": np.asarray(self.p_z, np.float64)}

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


# The mean pair number ranges over [1e-6, 10] (log-uniformly): every optimum of a physical link lies
# well inside (the rate falls as mu^2 below the dark counts' floor and as the multi-pair errors
# grow above mu ~ 1). p_z: the range of the decoy protocols' space.
LOG10_PAIR_NUMBER_RANGE = (-6.0, 1.0)
P_Z_RANGE = (1e-4, 1.0 - 1e-6)
START_PAIR_NUMBER = 0.05  # the first start where the protocol leaves the mean pair number to the source
# Where the spread-out starts and the derivative-free search look: log10 mu in [-4, 0], p_z in [0.3, 0.97].
_SEARCH_LOG10_MU = (-4.0, 0.0)
_SEARCH_P_Z = (0.3, 0.97)


def _logit(u, xp):
    u = xp.clip(u, 1e-12, 1.0 - 1e-12)
    return xp.log(u) - xp.log1p(-u)


@dataclasses.dataclass(frozen=True)
class BBM92Space:
    """The free parameters of :class:`BBM92` (static and hashable: what :mod:`qmc.optimize` varies).

    theta maps onto a feasible protocol by construction: log10 mu = a + (b - a) sigmoid(theta_0)
    with (a, b) = :data:`LOG10_PAIR_NUMBER_RANGE`, and (when free) p_z = 1e-4 + (1 - 1e-4 - 1e-6)
    sigmoid(theta_1). The protocol's other fields are kept. Sizes and names take the number of
    intensities (always 1 here) for the optimizer's common interface.

    Attributes:
        mean_pair_number: optimize the mean pair number.
        p_z: optimize the basis probability.
    """

    mean_pair_number: bool = True
    p_z: bool = False

    def size(self, n_intensities: int = 1) -> int:
        return int(self.mean_pair_number) + int(self.p_z)

    def names(self, n_intensities: int = 1) -> tuple[str, ...]:
        return tuple(name for name, free in (("mean_pair_number", self.mean_pair_number), ("p_z", self.p_z)) if free)

    def to_protocol(self, theta, protocol):
        """The feasible protocol of an unconstrained vector ``theta`` (traceable)."""
        theta = jnp.asarray(theta, jnp.float64)
        replace: dict[str, Any] = {}
        i = 0
        if self.mean_pair_number:
            lo, hi = LOG10_PAIR_NUMBER_RANGE
            replace["mean_pair_number"] = 10.0 ** (lo + (hi - lo) * jax.nn.sigmoid(theta[i]))
            i += 1
        if self.p_z:
            lo, hi = P_Z_RANGE
            replace["p_z"] = lo + (hi - lo) * jax.nn.sigmoid(theta[i])
        return dataclasses.replace(protocol, **replace) if replace else protocol

    def from_protocol(self, protocol, xp=jnp):
        """Unconstrained vector whose image is (close to) ``protocol``; a mean pair number left to
        the source starts at :data:`START_PAIR_NUMBER`. ``xp=numpy`` on concrete values."""
        parts = []
        if self.mean_pair_number:
            lo, hi = LOG10_PAIR_NUMBER_RANGE
            mu = START_PAIR_NUMBER if protocol.mean_pair_number is None else protocol.mean_pair_number
            u = (xp.log10(xp.asarray(mu, dtype=xp.float64)) - lo) / (hi - lo)
            parts.append(xp.reshape(_logit(u, xp), (1,)))
        if self.p_z:
            lo, hi = P_Z_RANGE
            u = (xp.asarray(protocol.p_z, dtype=xp.float64) - lo) / (hi - lo)
            parts.append(xp.reshape(_logit(u, xp), (1,)))
        return xp.concatenate(parts) if parts else xp.zeros((0,))

    def _theta(self, log10_mu, p_z, protocol, xp):
        return self.from_protocol(dataclasses.replace(protocol, mean_pair_number=10.0 ** log10_mu, p_z=p_z), xp)

    def box(self, n_intensities: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Bounds ``(lo, hi)`` of theta over the region searched (see the constants above)."""
        lo = self._theta(_SEARCH_LOG10_MU[0], _SEARCH_P_Z[0], BBM92(), np)
        hi = self._theta(_SEARCH_LOG10_MU[1], _SEARCH_P_Z[1], BBM92(), np)
        return lo, hi

    def sample(self, key, protocol, n: int):
        """``n`` thetas drawn uniformly in log10 mu and p_z over the searched region (traceable)."""
        u = jax.random.uniform(key, (n, 2), jnp.float64)

        def one(row):
            log10_mu = _SEARCH_LOG10_MU[0] + (_SEARCH_LOG10_MU[1] - _SEARCH_LOG10_MU[0]) * row[0]
            p_z = _SEARCH_P_Z[0] + (_SEARCH_P_Z[1] - _SEARCH_P_Z[0]) * row[1] if self.p_z else protocol.p_z
            return self._theta(log10_mu, p_z, protocol, jnp)

        return jax.vmap(one)(u)

    def starting_points(self, protocol, n_starts: int, seed: int = 0) -> np.ndarray:
        """The protocol's own theta plus ``n_starts - 1`` starts stratified over the searched region
        (a Latin hypercube, fixed seed), shape (n, d)."""
        theta0 = self.from_protocol(protocol, np)
        n_extra = max(int(n_starts) - 1, 0)
        if n_extra == 0 or theta0.size == 0:
            return np.repeat(theta0[None, :], max(int(n_starts), 1), axis=0)
        rng = np.random.default_rng(seed)

        def strata(lo_hi):
            lo, hi = lo_hi
            return lo + (hi - lo) * (rng.permutation(n_extra) + rng.uniform(size=n_extra)) / n_extra

        log10_mu, p_z = strata(_SEARCH_LOG10_MU), strata(_SEARCH_P_Z)
        if not self.p_z:
            p_z = np.full(n_extra, float(protocol.p_z))
        rows = [self._theta(log10_mu[r], p_z[r], protocol, np) for r in range(n_extra)]
        return np.concatenate([theta0[None, :], np.stack(rows)]).astype(np.float64)
