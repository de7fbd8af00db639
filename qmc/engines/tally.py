"""Tallies: the counts a Monte Carlo engine (or an experiment) observed, with their error bars.

A :class:`Tally` counts the cells of the exact engine's outcome table: (intensity k, Alice basis,
Bob basis, Alice bit) x Bob's outcome (no click, detector 0 only, detector 1 only, double click),
shape (k, 2, 2, 2, 4), int64 (exact to 2**63; a float32 sum would stop counting at 2**24). Pulses
sent per class are the sum over outcomes. Optional hidden counts split every cell by the photon
number Alice sent (0, 1, 2 or more), shape (k, 2, 2, 2, 3, 4), to check decoy estimates against
the truth. Leading axes (sessions, sweep points) are allowed everywhere.

A :class:`SiftedTally` keeps only what the analyses read: matched-basis pulses per (intensity,
basis), with Bob's outcome relative to Alice's bit (no click, correct detector only, wrong detector
only, double click), shape (k, 2, 4). The block engine's fast mode draws it directly;
``Tally.sifted()`` reduces a full tally to it.

Both give :class:`qmc.Observations` (``observations()``) and the statistics of the gains and
QBERs (methods in :mod:`qmc.stats`), and ``key_rate(analysis, protocol)`` gives the rate of an
observation-based analysis with a delta-method interval.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from qmc import stats
from qmc._pytree import register
from qmc.engines.observations import Observations

__all__ = ["Tally", "SiftedTally", "SIFTED_OUTCOMES", "PHOTON_BINS", "relative_outcomes"]

SIFTED_OUTCOMES = ("no_click", "correct", "error", "double_click")
PHOTON_BINS = ("0", "1", "2+")


def _register(cls):
    # Not qmc._pytree.pytree_dataclass: that one converts numeric leaves to float64, and tallies
    # are int64. No __post_init__ either: JAX unflattens PyTrees with placeholders (vmap axes).
    cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
    return register(cls, [f.name for f in dataclasses.fields(cls)], [])


class _Stats:
    """Statistics shared by both tallies, from the sifted counts (..., k, 2, 4)."""

    def _sifted_counts(self):
        raise NotImplementedError

    @property
    def n_sent_matched(self):
        """Matched-basis pulses per (intensity, basis), int64 (..., k, 2)."""
        return self._sifted_counts().sum(axis=-1)

    @property
    def n_detected(self):
        """Matched-basis pulses with at least one click, int64 (..., k, 2)."""
        c = self._sifted_counts()
        return c[..., 1] + c[..., 2] + c[..., 3]

    @property
    def n_errors(self):
        """Bit errors: wrong detector only, plus 1/2 per double click, float64 (..., k, 2)."""
        c = self._sifted_counts().astype(jnp.float64)
        return c[..., 2] + 0.5 * c[..., 3]

    def observations(self) -> Observations:
        """Gains Q[k, b] and error gains E Q[k, b] per intensity and matched basis, with the
        pulses sent per matched class and in total."""
        s = self.n_sent_matched.astype(jnp.float64)
        safe = jnp.maximum(s, 1.0)
        return Observations(self.n_detected / safe, self.n_errors / safe, s, self.n_pulses.astype(jnp.float64))

    def gain(self):
        """Observed gain Q[k, b] = detections / matched pulses, (..., k, 2)."""
        return self.observations().gain

    def qber(self):
        """Observed QBER E[k, b] = errors / detections (0 without detections), (..., k, 2)."""
        d = self.n_detected.astype(jnp.float64)
        return jnp.where(d > 0, self.n_errors / jnp.maximum(d, 1.0), 0.0)

    def gain_stderr(self):
        """Binomial standard error of the gain, sqrt(Q (1 - Q) / n), (..., k, 2)."""
        return stats.binomial_stderr(self.n_detected, self.n_sent_matched)

    def qber_stderr(self):
        """Standard error of the QBER given the detections: error values e in {0, 1/2, 1}
        (double clicks 1/2), stderr = sqrt(Var(e) / D). (..., k, 2)."""
        c = self._sifted_counts().astype(jnp.float64)
        sum_w = c[..., 2] + 0.5 * c[..., 3]
        sum_w2 = c[..., 2] + 0.25 * c[..., 3]
        return stats.weighted_outcome_stderr(sum_w, sum_w2, self.n_detected)

    def gain_interval(self, confidence: float = 0.95, method: str = "wilson"):
        """(lo, hi) for the gain: ``"wilson"`` (default) or ``"clopper_pearson"``."""
        if method == "wilson":
            return stats.wilson_interval(self.n_detected, self.n_sent_matched, confidence)
        if method == "clopper_pearson":
            return stats.clopper_pearson_interval(self.n_detected, self.n_sent_matched, confidence)
        raise ValueError(f"method = {method!r}: must be 'wilson' or 'clopper_pearson'")

    def qber_interval(self, confidence: float = 0.95):
        """Wilson interval of errors / detections, double clicks counted as 1/2 error (a
        non-integer count in the Wilson formula; slightly narrow when double clicks dominate)."""
        return stats.wilson_interval(self.n_errors, self.n_detected, confidence)

    def observation_covariance(self):
        """Covariance of (gain, error gain) per (k, b): (..., k, 2, 2, 2) over [Q, EQ] x [Q, EQ].

        Per pulse, click c in {0, 1} and error value e in {0, 1/2, 1} with e > 0 only if c = 1:
        Var(Q) = Q (1 - Q) / n, Var(EQ) = (E[e^2] - EQ^2) / n, Cov = EQ (1 - Q) / n. Different
        classes are treated as independent (exact given the pulses sent per class).
        """
        c = self._sifted_counts().astype(jnp.float64)
        n = jnp.maximum(c.sum(axis=-1), 1.0)
        q = (c[..., 1] + c[..., 2] + c[..., 3]) / n
        eq = (c[..., 2] + 0.5 * c[..., 3]) / n
        e2 = (c[..., 2] + 0.25 * c[..., 3]) / n
        v_q = q * (1.0 - q) / n
        v_e = jnp.maximum(e2 - eq * eq, 0.0) / n
        cov = eq * (1.0 - q) / n
        return jnp.stack([jnp.stack([v_q, cov], -1), jnp.stack([cov, v_e], -1)], -2)

    def key_rate(self, analysis, protocol, link=None, confidence: float = 0.95):
        """Rate of an observation-based analysis (e.g. :class:`qmc.VacuumWeak`) with its interval.

        Method: the analysis applied to the observed gains and error gains; first-order delta
        method with :meth:`observation_covariance` (gradient by ``jax.grad``); interval rate +- z
        stderr, clipped at 0. Where the rate is clipped to 0 its gradient is 0, so the interval of
        a zero rate is [0, 0]: read it together with the reason code.

        Returns:
            ``(KeyRate, Estimate)``; leading axes of the tally are mapped over.
        """
        stats._check_confidence(confidence)
        return _key_rate(self, analysis, protocol, link, float(confidence))


@functools.partial(jax.jit, static_argnames="confidence")
def _key_rate(tally, analysis, protocol, link, confidence):
    n_lead = tally._sifted_counts().ndim - 3
    if n_lead:
        return _map_leading(lambda t: _key_rate_one(t, analysis, protocol, link, confidence), tally, n_lead)
    return _key_rate_one(tally, analysis, protocol, link, confidence)


def _key_rate_one(tally, analysis, protocol, link, confidence):
    obs = tally.observations()
    shape = obs.gain.shape

    def rate_of(x):
        gain, error_gain = x[: x.size // 2].reshape(shape), x[x.size // 2:].reshape(shape)
        return analysis.key_rate_from_observations(Observations(gain, error_gain, obs.n_sent, obs.n_pulses), protocol,
                                                   link).rate

    x = jnp.concatenate([obs.gain.ravel(), obs.error_gain.ravel()])
    cov4 = tally.observation_covariance()  # (k, 2, 2, 2)
    m = obs.gain.size
    cov = jnp.zeros((2 * m, 2 * m))
    idx = jnp.arange(m)
    cov = cov.at[idx, idx].set(cov4[..., 0, 0].ravel())
    cov = cov.at[idx + m, idx + m].set(cov4[..., 1, 1].ravel())
    cov = cov.at[idx, idx + m].set(cov4[..., 0, 1].ravel())
    cov = cov.at[idx + m, idx].set(cov4[..., 1, 0].ravel())
    _, se = stats.delta_method_stderr(rate_of, x, cov)
    kr = analysis.key_rate_from_observations(obs, protocol, link)
    lo, hi = stats.normal_interval(kr.rate, se, confidence, 0.0)
    return kr, stats.Estimate(kr.rate, se, lo, hi)


@_register
class SiftedTally(_Stats):
    """Matched-basis counts: (..., k, 2 [basis Z, X], 4 [no click, correct, error, double]).

    Attributes:
        counts: int64 (..., k, 2, 4).
        photon_counts: optional hidden counts int64 (..., k, 2, 3 [photons 0, 1, 2+], 4).
        n_pulses: all pulses emitted in the session (mismatched bases included), int64 (...).
    """

    counts: object
    n_pulses: object
    photon_counts: object = None

    def _sifted_counts(self):
        return self.counts

    def sifted(self) -> "SiftedTally":
        return self

    def __add__(self, other: "SiftedTally") -> "SiftedTally":
        pc = None if self.photon_counts is None else self.photon_counts + other.photon_counts
        return SiftedTally(self.counts + other.counts, self.n_pulses + other.n_pulses, pc)

    def photon_yields(self):
        """True n-photon yields and error rates from the hidden counts, per (k, basis, n).

        Returns:
            ``(yield, yield_stderr, error_rate, error_rate_stderr)``, each (..., k, 2, 3): yield =
            detections / pulses with n photons (binomial stderr), error rate = errors /
            detections (stderr as :meth:`qber_stderr`). Needs ``photon_counts``.
        """
        if self.photon_counts is None:
            raise ValueError("this tally has no hidden photon-number counts (photon_counts=True)")
        return _photon_yields(self.photon_counts)


def _photon_yields(c):
    c = c.astype(jnp.float64)
    n = c.sum(axis=-1)
    det = c[..., 1] + c[..., 2] + c[..., 3]
    err = c[..., 2] + 0.5 * c[..., 3]
    y = det / jnp.maximum(n, 1.0)
    e = jnp.where(det > 0, err / jnp.maximum(det, 1.0), 0.0)
    return (
        y, stats.binomial_stderr(det, n), e,
        stats.weighted_outcome_stderr(err, c[..., 2] + 0.25 * c[..., 3], det),
    )


def _map_leading(fn, tree, n_lead: int):
    """Apply ``fn`` to each element of the ``n_lead`` leading axes of every leaf of ``tree``."""
    if n_lead == 0:
        return fn(tree)
    lead = jax.tree_util.tree_leaves(tree)[0].shape[:n_lead]
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[n_lead:]), tree)
    out = jax.vmap(fn)(flat)
    return jax.tree_util.tree_map(lambda x: x.reshape(lead + x.shape[1:]), out)


@_register
class Tally(_Stats):
    """Counts of every cell of the outcome table.

    Attributes:
        counts: int64 (..., k, 2 [Alice basis], 2 [Bob basis], 2 [Alice bit], 4 [no click,
            detector 0 only, detector 1 only, double click]).
        photon_counts: optional hidden counts int64 (..., k, 2, 2, 2, 3 [photons 0, 1, 2+], 4).
    """

    counts: object
    photon_counts: object = None

    @property
    def sent(self):
        """Pulses sent per class (k, a, b, x), int64 (..., k, 2, 2, 2)."""
        return self.counts.sum(axis=-1)

    @property
    def n_pulses(self):
        """All pulses emitted, int64 (...)."""
        return self.counts.sum(axis=(-5, -4, -3, -2, -1))

    def observations(self) -> Observations:
        """Through :meth:`qmc.Observations.from_counts` (matched bases, double clicks 1/2)."""
        return _map_leading(lambda t: Observations.from_counts(t.counts, t.sent), self, self.counts.ndim - 5)

    def __add__(self, other: "Tally") -> "Tally":
        pc = None if self.photon_counts is None else self.photon_counts + other.photon_counts
        return Tally(self.counts + other.counts, pc)

    def sifted(self) -> SiftedTally:
        """Matched bases only, outcomes relative to Alice's bit, bits summed."""
        return SiftedTally(
            relative_outcomes(self.counts), self.n_pulses,
            None if self.photon_counts is None else relative_outcomes(self.photon_counts, photons=True),
        )

    def _sifted_counts(self):
        return relative_outcomes(self.counts)

    def photon_yields(self):
        """As :meth:`SiftedTally.photon_yields` (matched bases, bits summed)."""
        return self.sifted().photon_yields()


def relative_outcomes(x, photons: bool = False):
    """(..., k, a, b, x, [n,] 4) -> matched (..., k, b, [n,] 4) with outcomes (none, correct,
    error, double), summed over Alice's bit."""
    if photons:
        rel = _relative_core(jnp.moveaxis(x, -2, -5))  # (..., k, n, a, b, x, 4) -> (..., k, n, b, 4)
        return jnp.swapaxes(rel, -2, -3)  # (..., k, b, n, 4)
    return _relative_core(x)


def _relative_core(x):
    """(..., a, b, x, 4) -> (..., b, 4) matched, relative outcomes, summed over x."""
    m = jnp.stack([x[..., 0, 0, :, :], x[..., 1, 1, :, :]], axis=-3)  # (..., b, x, 4)
    none = m[..., 0].sum(-1)
    correct = m[..., 0, 1] + m[..., 1, 2]  # bit 0 -> detector 0, bit 1 -> detector 1
    error = m[..., 0, 2] + m[..., 1, 1]
    double = m[..., 3].sum(-1)
    return jnp.stack([none, correct, error, double], axis=-1)
