"""Detections and errors per intensity and basis: what a finite-key (or asymptotic decoy) analysis
reads, as expected values at a block size or after N pulses, per emitted pulse, or observed.

Block size. ``block_size`` is n_X of Lim et al. (PRA 89, 022307 (2014); n_Z of Rusca et al.,
APL 112, 171104 (2018)): the number of key-basis detections summed over all intensities. With
expected counts, the number of emitted pulses is N = n_X / P(key-basis detection per pulse),
P = sum_k p_k p_z^2 Q_k,Z, and every other count is its expectation after N pulses.
"""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.analysis.decoy_bounds import safe_div
from qmc.engines.observations import Observations

__all__ = ["DecoyCounts"]


@pytree_dataclass
class DecoyCounts:
    """Detections and errors per intensity and basis, and the number of emitted pulses.

    Attributes:
        detections: n[k, b], detections of intensity k in matched basis b (0 = key Z, 1 = test X),
            shape (k, 2). Expected values or observed counts (float64).
        errors: m[k, b], bit errors among them (double clicks count 1/2), shape (k, 2).
        n_pulses: N, pulses emitted by Alice (all classes, mismatched bases included), scalar.
    """

    detections: object
    errors: object
    n_pulses: object

    @classmethod
    def expected(cls, obs: Observations, protocol, block_size) -> "DecoyCounts":
        """Expected counts when the key basis has collected ``block_size`` detections.

        N = n_X / P(key-basis detection per pulse) with P = sum_k p_k p_z^2 Q[k, Z]; each count is
        N times its class probability p_k P_b^2 times the gain (error gain) of that class.
        """
        weight = jnp.asarray(protocol.probabilities)[:, None] * protocol.basis_probabilities()[None, :] ** 2
        per_pulse_det = weight * obs.gain  # (k, 2) detections per emitted pulse
        per_pulse_err = weight * obs.error_gain
        p_key = jnp.sum(per_pulse_det[:, 0])
        n_pulses = safe_div(jnp.asarray(block_size, jnp.float64), p_key)
        return cls(n_pulses * per_pulse_det, n_pulses * per_pulse_err, n_pulses)

    @classmethod
    def for_pulses(cls, obs: Observations, protocol, n_pulses) -> "DecoyCounts":
        """Expected counts after ``n_pulses`` emitted pulses (N fixed, n_X = N P(key-basis
        detection) follows)."""
        per = cls.per_pulse(obs, protocol)
        n = jnp.asarray(n_pulses, jnp.float64)
        return cls(n * per.detections, n * per.errors, n)

    @classmethod
    def per_pulse(cls, obs: Observations, protocol) -> "DecoyCounts":
        """Expected counts per emitted pulse (N = 1): what asymptotic analyses need."""
        weight = jnp.asarray(protocol.probabilities)[:, None] * protocol.basis_probabilities()[None, :] ** 2
        return cls(weight * obs.gain, weight * obs.error_gain, jnp.asarray(1.0))

    @classmethod
    def observed(cls, obs: Observations, protocol) -> "DecoyCounts":
        """Observed counts from :class:`Observations` built from counts (``n_sent`` set).

        The pulses emitted in total are ``obs.n_pulses`` (a Tally knows them); when None they are
        estimated as sum(n_sent) / (p_z^2 + (1 - p_z)^2), their expectation given the matched-basis
        pulses.
        """
        if obs.n_sent is None:
            raise ValueError("observed counts need Observations.from_counts (n_sent is None)")
        sent = jnp.asarray(obs.n_sent, jnp.float64)
        detections = sent * obs.gain
        errors = sent * obs.error_gain
        n_pulses = obs.n_pulses
        if n_pulses is None:
            pb = protocol.basis_probabilities()
            n_pulses = jnp.sum(sent) / jnp.sum(pb**2)
        return cls(detections, errors, jnp.asarray(n_pulses, jnp.float64))
