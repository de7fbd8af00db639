"""The result of a key-rate analysis, binary entropy, and the reasons a rate can be zero."""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.entropy import h2  # noqa: F401  (the key-rate formulas' binary entropy, re-exported)

__all__ = ["KeyRate", "REASONS", "reason_text", "h2", "finish", "unclipped_rate", "score"]

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
    "eps_sec = kappa l did not converge: no key claimed",  # finite-key analyses, kappa > 0
)
# Codes of the first six reasons; later ones are looked up with REASONS.index(text).
OK, INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, NOT_POSITIVE, NOT_FINITE = range(6)


def reason_text(code) -> str:
    """Human-readable reason for a ``KeyRate.reason`` code."""
    return REASONS[int(code)]


@pytree_dataclass
class KeyRate:
    """A key rate and what it was computed from.

    Attributes:
        rate: secret bits per emitted pulse (never NaN; 0 when not positive).
        reason: index into :data:`REASONS` (0 = ok); ``analysis.explain(link, protocol)`` says
            in one line which rule an invalid input breaks, with its values.
        y1: single-photon yield used (bound or exact) in the key basis Z.
        e1: single-photon phase error rate used (bound or exact) for the key basis Z.
        gain: signal gain Q_mu in the Z basis.
        qber: signal QBER E_mu in the Z basis.
        raw_rate: the rate's formula before it is clipped at 0 (negative where it gives no key;
            not finite where it cannot be evaluated): what ranks zero rates by how far they are
            from a key (:func:`score`).
    """

    rate: object
    reason: object
    y1: object = 0.0
    e1: object = 0.0
    gain: object = 0.0
    qber: object = 0.0
    raw_rate: object = 0.0

    def bits_per_second(self, rep_rate_hz):
        """Secret bits per second at the given pulse repetition rate."""
        return self.rate * rep_rate_hz


def finish(raw_rate, *, valid, detected, y1_positive, unclipped=None, **diagnostics) -> KeyRate:
    """Turn a raw rate into a :class:`KeyRate`: 0 with the first failing reason, never NaN.
    ``unclipped``: the formula before its clipping at 0, where ``raw_rate`` is already clipped
    (kept as ``KeyRate.raw_rate``)."""
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
    raw = raw_rate if unclipped is None else jnp.asarray(unclipped, jnp.float64)
    raw = jnp.where(jnp.isnan(raw), -jnp.inf, raw)  # never NaN: not finite ranks last
    return KeyRate(rate, reason, raw_rate=raw, **clean)


def unclipped_rate(out, fill=0.0):
    """The key length over the pulses, l / N, before clipping at 0, where an analysis reports it
    (``key_length`` and ``n_pulses``: the finite-key analyses and their asymptotic limits); ``fill``
    where N is not positive. None for analyses that report only the clipped rate."""
    key_length = getattr(out, "key_length", None)
    n_pulses = getattr(out, "n_pulses", None)
    if key_length is None or n_pulses is None:
        return None
    n_ok = n_pulses > 0.0
    return jnp.where(n_ok, key_length / jnp.where(n_ok, n_pulses, 1.0), fill)


# Among zero rates, prefer the reason closest to a key, so that a zero rate reports why the best
# candidate fails rather than why the worst one does (other reasons rank in the middle).
_ZERO_RATE_PENALTY = {
    "ok": 0.0,
    "error rate too high: key rate not positive": 1.0,
    "single-photon bound not positive": 2.0,
    "not finite": 3.0,
    "no detections": 4.0,
    "invalid parameters": 5.0,
}


_GRADED = (NOT_POSITIVE, NO_SINGLE_PHOTONS)  # zero rates whose raw formula says how far a key is


def score(out):
    """A number that ranks analysis outputs (candidates of a search, points of a grid), higher
    is better: a positive rate is its value; a zero rate ranks below every positive one, by how
    far its unclipped l / N lies below 0 where the analysis reports it (so a search still moves
    toward a key), else by its reason (the reason closest to a key first) and, within the reasons
    whose formula was evaluated (rate or single-photon bound not positive), by how far the raw
    rate per detected signal, raw_rate / gain, lies below 0 (per detection, so that a weak signal
    is not close to a key only because every term is small): the score then rises toward a key
    along a grid of intensities."""
    raw = unclipped_rate(out, -jnp.inf)
    if raw is None:
        penalty = jnp.asarray([_ZERO_RATE_PENALTY.get(text, 2.5) for text in REASONS])[out.reason]
        raw_rate = getattr(out, "raw_rate", None)
        if raw_rate is None:
            fallback = -penalty
        else:  # within (-penalty, -penalty + 1): 1 / (1 - r) rises from 0 to 1 as r rises to 0
            gain = jnp.asarray(out.gain)
            graded = jnp.isin(out.reason, jnp.asarray(_GRADED)) & jnp.isfinite(raw_rate) & (gain > 0.0)
            per_detection = jnp.where(graded, raw_rate / jnp.where(graded, gain, 1.0), -jnp.inf)
            closeness = 1.0 / (1.0 - jnp.minimum(per_detection, 0.0))
            fallback = -penalty + jnp.where(graded, closeness, 0.0)
    else:
        fallback = jnp.where(jnp.isfinite(raw), jnp.minimum(raw, 0.0) - 1e-300, -jnp.inf)
    return jnp.where(out.rate > 0, out.rate, fallback)
