"""Check an optimum with the block engine: sessions drawn at the optimal protocol, each analysed
from its own counts, against the predicted key length."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from qmc.analysis.sessions import key_rates_of_sessions
from qmc.engines.block import sample_sessions

__all__ = ["check_block_engine"]


@functools.partial(jax.jit, static_argnames=("n_sessions",))
def check_block_engine(key, analysis, link, protocol, n_sessions: int = 1000):
    """Finite-key sessions at ``protocol`` from the block engine, against the predicted key length.

    The finite-key analyses predict the key length l from *expected* counts of a block. Here
    ``n_sessions`` sessions of the same number of pulses N (the predicted N for the block,
    ``analysis.key_rate(link, protocol).n_pulses``) are drawn by the block engine
    (:func:`qmc.engines.block.sample_sessions`: multinomial counts of the exact engine's
    probabilities), and each session's own counts go through the same analysis
    (``key_rate_from_observations`` with its pulse total). The optimum is confirmed when the median
    session key length agrees with the prediction within the finite-size spread of the sessions,
    half the 16-84 % interquantile range (at least one bit).

    Args:
        key: JAX PRNG key.
        analysis: a finite-key analysis (``block_size``; e.g. :class:`qmc.analysis.FiniteLim2014`).
        link, protocol: the link and the (optimal) protocol.
        n_sessions: sessions drawn (static).

    Returns:
        dict of scalars: ``predicted`` (l at expected counts), ``median``, ``q16``, ``q84`` (of the
        session key lengths, unclipped, bits), ``abort_fraction`` (sessions whose analysis claims
        no key), ``n_pulses`` (N), ``agrees`` (bool) and ``valid`` (False where N is not below
        2**53, the block engine's limit, or the prediction has no key: then nothing is drawn and
        ``agrees`` is False).
    """
    predicted = analysis.key_rate(link, protocol)
    n = predicted.n_pulses
    valid = jnp.isfinite(n) & (n >= 1.0) & (n < 2.0**53) & (predicted.rate > 0.0)
    tally = sample_sessions(key, link, protocol, jnp.where(valid, jnp.floor(n), 1.0), n_sessions, True)
    out = key_rates_of_sessions(analysis, protocol, tally)
    q16, median, q84 = jnp.quantile(out.key_length, jnp.asarray([0.16, 0.5, 0.84]))
    spread = jnp.maximum(0.5 * (q84 - q16), 1.0)
    return {
        "predicted": predicted.key_length, "median": median, "q16": q16, "q84": q84,
        "abort_fraction": jnp.mean(out.reason != 0), "n_pulses": n,
        "agrees": valid & (jnp.abs(median - predicted.key_length) <= spread), "valid": valid,
    }
