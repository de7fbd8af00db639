"""Philox4x32-10, the counter-based generator behind every Monte Carlo engine.

Philox (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11) is
written here in plain ``jnp`` integer ops: the words for (key, counter) are a pure function of
both, so any pulse's words can be recomputed anywhere, on any chunking, under ``vmap``, and the
arithmetic is the same on every backend. It passes the Random123 known-answer tests
(``tests/test_pulse.py``).

Keys: a Philox key is two uint32 words, derived from a JAX PRNG key by :func:`philox_key`, which
folds in a purpose and an index with ``jax.random.fold_in``. A counter is four uint32 words; the
engines use ``(position, stream, 0, 0)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["philox4x32", "philox_key", "words", "word_at", "uniform53", "uniform_pair"]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint32(0x9E3779B9)
_W1 = np.uint32(0xBB67AE85)


def _mulhilo(m, x):
    p = x.astype(jnp.uint64) * m
    return (p >> np.uint64(32)).astype(jnp.uint32), p.astype(jnp.uint32)


def philox4x32(k0, k1, c0, c1, c2, c3, rounds: int = 10, rolled: bool = False):
    """Philox4x32 (Random123): four uint32 words per counter (c0, c1, c2, c3) and key (k0, k1).

    All arguments broadcast against each other; they are cast to uint32. ``rolled=True`` runs the
    rounds in a ``fori_loop`` (same words): a smaller program that compiles faster, for the few
    words of a fix-up; the default unrolled form fuses into one fast kernel for whole blocks.
    """
    u32 = lambda v: jnp.asarray(v).astype(jnp.uint32)  # noqa: E731
    k0, k1, c0, c1, c2, c3 = map(u32, (k0, k1, c0, c1, c2, c3))
    shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in (k0, k1, c0, c1, c2, c3)))

    def one_round(_, state):
        k0, k1, c0, c1, c2, c3 = state
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        return k0 + _W0, k1 + _W1, hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0

    state = tuple(jnp.broadcast_to(v, shape) for v in (k0, k1, c0, c1, c2, c3))
    if rolled:
        state = lax.fori_loop(0, rounds, one_round, state)
    else:
        for r in range(rounds):
            state = one_round(r, state)
    return state[2:]


def philox_key(key, *folds):
    """Philox key (uint32 (2,)) from a JAX PRNG key folded with each integer of ``folds`` in turn.

    ``folds`` name a purpose and an index (block of pulses, session), never anything that depends
    on how the work is chunked. Works for typed keys and raw uint32 keys of any implementation.
    """
    for f in folds:
        key = jax.random.fold_in(key, f)
    return jax.random.bits(key, (2,), jnp.uint32)


def words(pkey, n: int, stream):
    """``n`` uint32 words (n a multiple of 4) of one stream: counters (0 .. n/4 - 1, stream, 0, 0).

    Word ``j * n/4 + i`` is output ``j`` of counter ``i``: contiguous quarters avoid interleaving.
    """
    if n % 4:
        raise ValueError(f"n = {n} must be a multiple of 4")
    i = lax.iota(jnp.uint32, n // 4)
    out = philox4x32(pkey[..., 0, None], pkey[..., 1, None], i, stream, 0, 0)
    return jnp.concatenate(out, axis=-1)


def word_at(pkey, position, stream):
    """The word that :func:`words` puts at ``position`` (int array) of a stream of ``n`` words.

    Needs ``n``: pass ``position`` as ``(quarter, counter)`` = divmod(position, n // 4).
    """
    quarter, counter = position
    out = philox4x32(pkey[..., 0], pkey[..., 1], counter, stream, 0, 0, rolled=True)
    return jnp.select([quarter == 0, quarter == 1, quarter == 2], list(out[:3]), out[3])


def uniform53(hi, lo):
    """Float64 uniform in (0, 1) from two uint32 words (53 random bits, never 0 or 1)."""
    hi = (hi >> np.uint32(5)).astype(jnp.float64)  # 27 bits
    lo = (lo >> np.uint32(6)).astype(jnp.float64)  # 26 bits
    return (hi * 67108864.0 + lo + 0.5) * (1.0 / 9007199254740992.0)


def uniform_pair(pkey, counter, stream, lane, lane2=0x42494E4F, rolled=False):
    """Two float64 uniforms in (0, 1) from the four words of counter (counter, stream, lane, lane2)."""
    a, b, c, d = philox4x32(pkey[0], pkey[1], counter, stream, lane, lane2, rolled=rolled)
    return uniform53(a, b), uniform53(c, d)
