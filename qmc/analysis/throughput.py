"""Key in bits per second: detector dead time saturates the detection rate at high repetition rates.

A detector with dead time tau_dead (non-paralyzable: clicks during dead time are lost and do not
extend it) that would click at rate R_click detects at

    R_det = R_click / (1 + R_click tau_dead)                                      (1)

(e.g. Knoll, Radiation Detection and Measurement, 4th ed., Sec. 4.VII). In gates: click
probability p per gate at repetition rate f, dead time d = tau_dead f gates, gives p / (1 + d p)
per gate, the steady state of the stream engine with common dead time (tested there). So at a
fixed tau_dead, raising f raises the key per second until d p ~ 1, after which R_det saturates at
1 / tau_dead and the key per second stops growing (or falls: more pulses land in dead time while
decoy and error statistics stay the same).

Functions here are closed form (the exact engine's dead-time approximation,
:func:`qmc.engines.exact.correlated_approximation`, which is exact for the per-pulse marginals
of common dead time without afterpulsing). Key rates computed with dead time are *model rates*:
the security proofs behind the analyses assume no dead time (docs/correlated.md).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from qmc.engines import exact

__all__ = [
    "dead_time_gates", "saturated_click_rate_hz", "with_dead_time", "key_basis_detection_probability",
    "key_rate_bps", "time_to_collect_s",
]


def dead_time_gates(dead_time_s, rep_rate_hz):
    """d = tau_dead f: the dead time in gates (a float; the stream engine rounds it)."""
    return jnp.asarray(dead_time_s) * jnp.asarray(rep_rate_hz)


def saturated_click_rate_hz(click_probability, rep_rate_hz, dead_time_s):
    """Eq. (1): R_click / (1 + R_click tau_dead) with R_click = p f (clicks per second)."""
    r_click = jnp.asarray(click_probability) * jnp.asarray(rep_rate_hz)
    return r_click / (1.0 + r_click * jnp.asarray(dead_time_s))


def with_dead_time(link, dead_time_s, rep_rate_hz=None):
    """``link`` whose detectors have ``dead_time_s`` at ``rep_rate_hz`` (default: the source's)."""
    rep = link.source.rep_rate_hz if rep_rate_hz is None else rep_rate_hz
    det = dataclasses.replace(link.detector, dead_time_gates=dead_time_gates(dead_time_s, rep))
    return dataclasses.replace(link, detector=det)


def key_basis_detection_probability(link, protocol):
    """Probability per emitted pulse of a detection in the key basis with matched bases:
    sum over intensities k and key bases b of P(k) p_b^2 Q[k, b] (dead time and afterpulsing as
    in the exact engine's approximation)."""
    obs = exact.observations(link, protocol)
    pb = protocol.basis_probabilities()
    weight = jnp.asarray(protocol.probabilities)[:, None] * (pb**2 * protocol.key_basis_mask())[None, :]
    return jnp.sum(weight * obs.gain)


def key_rate_bps(analysis, link, protocol, rep_rate_hz, dead_time_s=0.0):
    """Secret bits per second at ``rep_rate_hz`` with detector dead time ``dead_time_s``.

    The analysis's per-pulse rate on the link whose detectors have d = tau_dead f dead gates
    (:func:`with_dead_time`), times f. A model rate when ``dead_time_s > 0``.

    Returns:
        ``(bits_per_s, KeyRate)``.
    """
    kr = analysis.key_rate(with_dead_time(link, dead_time_s, rep_rate_hz), protocol)
    return kr.rate * jnp.asarray(rep_rate_hz), kr


def time_to_collect_s(n_detections, link, protocol, rep_rate_hz, dead_time_s=0.0):
    """Seconds to collect ``n_detections`` key-basis detections (matched bases) at
    ``rep_rate_hz`` with dead time ``dead_time_s``: n / (f P_det), P_det from
    :func:`key_basis_detection_probability` (expected time; finite-key block sizes n_X)."""
    p = key_basis_detection_probability(with_dead_time(link, dead_time_s, rep_rate_hz), protocol)
    return jnp.asarray(n_detections) / (jnp.asarray(rep_rate_hz) * p)
