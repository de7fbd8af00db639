"""The result of a key-rate analysis, binary entropy, and the reasons a rate can be zero."""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass

__all__ = ["KeyRate", "REASONS", "reason_text", "h2", "finish"]

# A rate that is not positive is reported as 0 with one of these reasons (``KeyRate.reason``).
REASONS = (
    "ok",
    "invalid parameters",
    "no detections",
    "single-photon bound not positive",
    "error rate too high: key rate not positive",
    "not finite",
    "phase-error bound undefined (logarithm argument below 1)",  # finite-key analyses
    "finite-size terms exceed the key: key length not positive",  # finite-key analyses
)
# Codes of the first six reasons; later ones are looked up with REASONS.index(text).
OK, INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, NOT_POSITIVE, NOT_FINITE = range(6)


def reason_text(code) -> str:
    """Human-readable reason for a ``KeyRate.reason`` code."""
    return REASONS[int(code)]


def h2(p):
    """Binary entropy in bits, clipped to [0, 1/2] (an error bound above 1/2 gives H = 1).

    Gradient-safe at 0: the double ``where`` keeps log(0) out of the backward pass.
    """
    p = jnp.clip(p, 0.0, 0.5)
    inside = p > 0.0
    ps = jnp.where(inside, p, 0.25)
    h = -(ps * jnp.log2(ps) + (1.0 - ps) * jnp.log2(1.0 - ps))
    return jnp.where(inside, h, 0.0)


@pytree_dataclass
class KeyRate:
    """A key rate and what it was computed from.

    Attributes:
        rate: secret bits per emitted pulse (never NaN; 0 when not positive).
        reason: index into :data:`REASONS` (0 = ok).
        y1: single-photon yield used (bound or exact) in the key basis Z.
        e1: single-photon phase error rate used (bound or exact) for the key basis Z.
        gain: signal gain Q_mu in the Z basis.
        qber: signal QBER E_mu in the Z basis.
    """

    rate: object
    reason: object
    y1: object = 0.0
    e1: object = 0.0
    gain: object = 0.0
    qber: object = 0.0

    def bits_per_second(self, rep_rate_hz):
        """Secret bits per second at the given pulse repetition rate."""
        return self.rate * rep_rate_hz


def finish(raw_rate, *, valid, detected, y1_positive, **diagnostics) -> KeyRate:
    """Turn a raw rate into a :class:`KeyRate`: 0 with the first failing reason, never NaN."""
    raw_rate = jnp.asarray(raw_rate, jnp.float64)
    finite = jnp.isfinite(raw_rate) | (raw_rate == jnp.inf)
    reason = jnp.select(
        [~valid, ~detected, ~y1_positive, jnp.isnan(raw_rate), ~(raw_rate > 0)],
        [INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, NOT_FINITE, NOT_POSITIVE],
        OK,
    ).astype(jnp.int32)
    rate = jnp.where((reason == OK) & finite, raw_rate, 0.0)
    clean = {
        k: jnp.nan_to_num(jnp.asarray(v, jnp.float64), nan=0.0, posinf=jnp.inf, neginf=-jnp.inf)
        for k, v in diagnostics.items()
    }
    return KeyRate(rate, reason, **clean)
