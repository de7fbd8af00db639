"""The free parameters of decoy-state BB84, mapped from an unconstrained vector onto the feasible set.

:class:`DecoySpace` is what :meth:`qmc.protocols.DecoyBB84.parameter_space` returns and what the
optimizer (:mod:`qmc.optimize`) varies. A vector theta maps onto a protocol that satisfies every
constraint by construction (:meth:`DecoySpace.to_protocol`):

* intensities, weakest last: mu_j = sum_{i > j} mu_i + 1e-6 + softplus(theta_j). They stay
  strictly decreasing and satisfy Lim et al.'s mu_1 > mu_2 + mu_3 (PRA 89, 022307 (2014)). The
  weakest intensity (vacuum, or Lim's mu_3) keeps the protocol's value unless
  ``intensities == "all"`` (then mu_k = 1e-6 + softplus(theta_k), e.g. Rusca's decoy mu_2);
* probabilities of the intensities: 1e-6 + (1 - k 1e-6) softmax(theta_1, ..., theta_{k-1}, 0)
  (the simplex; the last logit is pinned to 0 so that the map has no flat direction);
* the basis probability p_z: 1e-4 + (1 - 1e-4 - 1e-6) sigmoid(theta).

The floors (1e-6 between intensities, 1e-6 per probability, p_z in [1e-4, 1 - 1e-6]) keep the
decoy bounds computable: as mu_1 -> mu_2 + mu_3 the denominator of Lim's s_1 bound (Eq. (3)),
(mu_2 - mu_3)(mu_1 - mu_2 - mu_3), is lost to rounding, and as some p_k -> 0 the Hoeffding terms
e^k / p_k (n_k +- delta) blow up; in such corners a bound can come out as rounding noise with a
huge positive value, which an optimizer would otherwise find and exploit. No optimum of a
physical link lies beyond them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DecoySpace", "GAP_MIN", "P_MIN", "P_Z_RANGE", "INTENSITY_MODES"]

INTENSITY_MODES = ("none", "signal", "decoys", "all")
GAP_MIN = 1e-6  # smallest gap between an intensity and the sum of the weaker ones
P_MIN = 1e-6  # smallest intensity probability
P_Z_RANGE = (1e-4, 1.0 - 1e-6)  # range of the basis probability

# Where the derivative-free search (qmc.optimize.search) looks: gaps between intensities in
# [0.003, 1] (signal) and [0.001, 0.5] (decoys), log-uniform; the signal probability uniform in
# [1e-4, 1], the rest split uniformly; p_z logit-uniform in [0.02, 0.9999]. The box of theta
# around that region scales its refinement steps.
_SEARCH_SIGNAL_GAP = (0.003, 1.0)
_SEARCH_DECOY_GAP = (0.001, 0.5)
_SEARCH_P_Z = (0.02, 0.9999)
_BOX_SIGNAL_GAP = (-5.8, 0.55)
_BOX_DECOY_GAP = (-6.9, -0.43)
_BOX_LOGIT = (-7.0, 7.0)
_BOX_P_Z = (-4.0, 9.2)


def _softplus_inv(y, xp=jnp):
    y = xp.maximum(y, 1e-12)
    return y + xp.log(-xp.expm1(-y))


@dataclasses.dataclass(frozen=True)
class DecoySpace:
    """Which parameters of a :class:`qmc.protocols.DecoyBB84` are free (static and hashable).

    Attributes:
        intensities: ``"signal"`` (only the signal intensity), ``"decoys"`` (all but the weakest,
            which keeps the protocol's value), ``"all"``, or ``"none"``.
        probabilities: optimize the intensity probabilities (on the simplex).
        p_z: optimize the basis probability.
    """

    intensities: str = "signal"
    probabilities: bool = False
    p_z: bool = False

    def __post_init__(self) -> None:
        if self.intensities not in INTENSITY_MODES:
            raise ValueError(f"Space.intensities = {self.intensities!r}: must be one of {', '.join(INTENSITY_MODES)}")

    def n_intensities_free(self, n_intensities: int) -> int:
        return {"none": 0, "signal": 1, "decoys": n_intensities - 1, "all": n_intensities}[self.intensities]

    def size(self, n_intensities: int) -> int:
        """Dimension of theta for a protocol with ``n_intensities`` intensities."""
        n_p = n_intensities - 1 if self.probabilities else 0
        return self.n_intensities_free(n_intensities) + n_p + (1 if self.p_z else 0)

    def names(self, n_intensities: int) -> tuple[str, ...]:
        """Names of the free parameters (``mu1``, ``p_mu1``, ``p_z``, ...) in protocol order."""
        out = [f"mu{j + 1}" for j in range(self.n_intensities_free(n_intensities))]
        if self.probabilities:
            out += [f"p_mu{j + 1}" for j in range(n_intensities)]
        if self.p_z:
            out.append("p_z")
        return tuple(out)

    # -- theta <-> protocol -------------------------------------------------------------------

    def to_protocol(self, theta, protocol):
        """The feasible protocol of an unconstrained vector ``theta`` (see the module docstring).

        Fixed parameters keep the values of ``protocol``. Traceable; ``theta`` has shape (d,) with
        d = ``self.size(k)``.
        """
        theta = jnp.asarray(theta, jnp.float64)
        mu = jnp.asarray(protocol.intensities, jnp.float64)
        k = mu.shape[0]
        i = 0
        n_free = self.n_intensities_free(k)
        replace: dict[str, Any] = {}
        if n_free:
            gaps = GAP_MIN + jax.nn.softplus(theta[:n_free])
            i = n_free
            new = [None] * k
            tail = jnp.asarray(0.0, jnp.float64)
            for j in range(k - 1, -1, -1):  # weakest first: sum of all weaker intensities + a gap
                new[j] = tail + gaps[j] if j < n_free else mu[j]
                tail = tail + new[j]
            replace["intensities"] = jnp.stack(new)
        if self.probabilities:
            logits = jnp.concatenate([theta[i : i + k - 1], jnp.zeros(1)])
            replace["probabilities"] = P_MIN + (1.0 - k * P_MIN) * jax.nn.softmax(logits)
            i += k - 1
        if self.p_z:
            lo, hi = P_Z_RANGE
            replace["p_z"] = lo + (hi - lo) * jax.nn.sigmoid(theta[i])
            i += 1
        return dataclasses.replace(protocol, **replace) if replace else protocol

    def from_protocol(self, protocol, xp=jnp):
        """Unconstrained vector whose image under :meth:`to_protocol` is (close to) ``protocol``.

        Values outside the feasible set are moved just inside it (onto the floors). ``xp=numpy``
        computes it on concrete values without dispatching JAX operations.
        """
        mu = xp.asarray(protocol.intensities, dtype=xp.float64)
        k = mu.shape[0]
        parts = []
        n_free = self.n_intensities_free(k)
        if n_free:
            tails = xp.concatenate([xp.cumsum(mu[::-1])[::-1][1:], xp.zeros(1)])  # sum_{i > j} mu_i
            parts.append(_softplus_inv(mu - tails - GAP_MIN, xp)[:n_free])
        if self.probabilities:
            p = xp.asarray(protocol.probabilities, dtype=xp.float64)
            logp = xp.log(xp.maximum((p - P_MIN) / (1.0 - k * P_MIN), 1e-12))
            parts.append(logp[:-1] - logp[-1])
        if self.p_z:
            lo, hi = P_Z_RANGE
            u = xp.clip((xp.asarray(protocol.p_z, dtype=xp.float64) - lo) / (hi - lo), 1e-12, 1.0 - 1e-12)
            parts.append(xp.reshape(xp.log(u) - xp.log1p(-u), (1,)))
        return xp.concatenate(parts) if parts else xp.zeros((0,))

    def box(self, n_intensities: int) -> tuple[np.ndarray, np.ndarray]:
        """Bounds ``(lo, hi)`` of theta, each (d,), for a search that draws theta uniformly: the
        region where physical optima lie (see the constants above), not a constraint."""
        lo, hi = [], []
        for j in range(self.n_intensities_free(n_intensities)):
            a, b = _BOX_SIGNAL_GAP if j == 0 else _BOX_DECOY_GAP
            lo.append(a)
            hi.append(b)
        if self.probabilities:
            lo += [_BOX_LOGIT[0]] * (n_intensities - 1)
            hi += [_BOX_LOGIT[1]] * (n_intensities - 1)
        if self.p_z:
            lo.append(_BOX_P_Z[0])
            hi.append(_BOX_P_Z[1])
        return np.asarray(lo, np.float64), np.asarray(hi, np.float64)

    def sample(self, key, protocol, n: int):
        """``n`` thetas drawn over the region where physical optima lie (see the constants above),
        in natural units and mapped by :meth:`from_protocol`: the derivative-free search's first
        round (traceable; one key)."""
        mu = jnp.asarray(protocol.intensities, jnp.float64)
        k = mu.shape[0]
        n_free = self.n_intensities_free(k)
        u = jax.random.uniform(key, (n, n_free + k + 1), jnp.float64)

        def log_uniform(x, lo_hi):
            lo, hi = lo_hi
            return lo * (hi / lo) ** x

        def one(row):
            replace: dict[str, Any] = {}
            if n_free:
                new, tail = [None] * k, jnp.asarray(0.0, jnp.float64)
                for j in range(k - 1, -1, -1):
                    gap = log_uniform(row[j], _SEARCH_SIGNAL_GAP if j == 0 else _SEARCH_DECOY_GAP)
                    new[j] = tail + gap if j < n_free else mu[j]
                    tail = tail + new[j]
                replace["intensities"] = jnp.stack(new)
            if self.probabilities:
                p1 = 1e-4 + (1.0 - 1e-4) * row[n_free]
                split = -jnp.log(row[n_free + 1 : n_free + k])  # a uniform point of the simplex
                rest = (1.0 - p1) * split / jnp.sum(split) if k > 1 else jnp.zeros(0)
                replace["probabilities"] = jnp.concatenate([p1[None], rest])
            if self.p_z:
                lo, hi = (jnp.log(x / (1.0 - x)) for x in _SEARCH_P_Z)
                replace["p_z"] = jax.nn.sigmoid(lo + (hi - lo) * row[-1])
            return self.from_protocol(dataclasses.replace(protocol, **replace))

        return jax.vmap(one)(u)

    # -- starting points ----------------------------------------------------------------------

    def starting_points(self, protocol, n_starts: int, seed: int = 0) -> np.ndarray:
        """The protocol's own theta plus ``n_starts - 1`` spread-out feasible starts, shape (n, d).

        The extra starts are drawn (fixed seed, stratified per coordinate) in natural units: gaps
        between consecutive intensities log-uniform in [0.003, 1] (signal) and [0.005, 0.4]
        (decoys), the signal probability uniform in [0.4, 0.95] with the rest split at random, p_z
        uniform in [0.3, 0.97]; fixed parameters keep the protocol's values.
        """
        theta0 = self.from_protocol(protocol, np)
        n_extra = max(int(n_starts) - 1, 0)
        if n_extra == 0 or theta0.size == 0:
            return np.repeat(theta0[None, :], max(int(n_starts), 1), axis=0)
        rng = np.random.default_rng(seed)
        k = int(np.shape(protocol.intensities)[0])

        def strata():  # one value per stratum of [0, 1), shuffled (a Latin hypercube column)
            return (rng.permutation(n_extra) + rng.uniform(size=n_extra)) / n_extra

        rows = []
        mu_user = np.asarray(protocol.intensities, np.float64)
        n_free = self.n_intensities_free(k)
        cols = {}
        if n_free:
            for j in range(n_free):
                lo, hi = (0.003, 1.0) if j == 0 else (0.005, 0.4)
                cols[f"gap{j}"] = lo * (hi / lo) ** strata()
        if self.probabilities:
            cols["p1"] = 0.4 + 0.55 * strata()
            cols["split"] = rng.dirichlet(np.ones(max(k - 1, 1)), size=n_extra)
        if self.p_z:
            cols["p_z"] = 0.3 + 0.67 * strata()
        for r in range(n_extra):
            mu = mu_user.copy()
            if n_free:
                tail = 0.0
                for j in range(k - 1, -1, -1):
                    if j < n_free:
                        mu[j] = tail + cols[f"gap{j}"][r]
                    tail += mu[j]
            replace: dict[str, Any] = {"intensities": mu}
            if self.probabilities:
                p1 = cols["p1"][r] if k > 1 else 1.0
                replace["probabilities"] = np.concatenate([[p1], (1.0 - p1) * cols["split"][r]])[:k]
            if self.p_z:
                replace["p_z"] = cols["p_z"][r]
            rows.append(self.from_protocol(dataclasses.replace(protocol, **replace), np))
        return np.concatenate([theta0[None, :], np.stack(rows)]).astype(np.float64)
