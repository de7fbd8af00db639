"""Exact binomial and multinomial counts (up to 2**53) and Bernoulli positions, on Philox words.

* :func:`binomial`: inversion (sequential search of the pmf) when n min(p, 1-p) < 10, otherwise
  BTRS (Hormann, "The generation of binomial random variates", J. Stat. Comput. Simul. 46, 101
  (1993)) with the acceptance bound written in ``log1p`` form so that it stays accurate for n up to
  1e15 (the textbook form loses ~0.1 in the log-acceptance at n = 1e15).
* :func:`multinomial` chains conditional binomials along the cells.
* :func:`geometric_positions` places the successes of many Bernoulli trials by geometric gaps.

Every element's value depends only on (key, stream, lanes, n, p), never on the batch it is drawn
in: the engines' counts are reproducible whatever their chunking.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from qmc.random.compact import first_true
from qmc.random.philox import uniform_pair

__all__ = ["binomial", "multinomial", "geometric_positions"]


_STIRLING_TAIL = np.array([
    0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
    0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
    0.00925546218271273, 0.00833056343336287,
])
# fc(k) for k = 0..9 as a degree-9 polynomial through the tabulated values (exact to ~2e-16): a
# table lookup (gather) inside the fused BTRS loop stops XLA:CPU from vectorizing it (3x slower).
_FC_POLY = np.polyfit((np.arange(10.0) - 4.5) / 4.5, _STIRLING_TAIL, 9)


def _fc(k):
    """Stirling tail fc(k) = log(k!) - [(k + 1/2) log(k + 1) - (k + 1) + log(sqrt(2 pi))]."""
    kp1 = k + 1.0
    kp1sq = kp1 * kp1
    approx = (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kp1sq) / kp1sq) / kp1
    t = (jnp.clip(k, 0.0, 9.0) - 4.5) / 4.5
    small = jnp.zeros_like(t)
    for c in _FC_POLY:
        small = small * t + c
    return jnp.where(k <= 9, small, approx)


def _btrs_propose(pkey, counter, stream, lane, lane2, nb, qb, rolled=False):
    """One BTRS proposal (Hormann 1993) per element: the proposed count, or NaN if rejected."""
    spq = jnp.sqrt(nb * qb * (1.0 - qb))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * qb
    c = nb * qb + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    m = jnp.floor((nb + 1.0) * qb)
    uu, vv = uniform_pair(pkey, counter, stream, lane, lane2, rolled=rolled)
    uu = uu - 0.5
    us = 0.5 - jnp.abs(uu)
    k = jnp.floor((2.0 * a / us + b) * uu + c)
    ok = (k >= 0.0) & (k <= nb)
    squeeze = (us >= 0.07) & (vv <= v_r)
    ks = jnp.clip(k, 0.0, nb)
    d = ks - m
    # log f(k) / f(m), with every ratio near 1 in log1p form (accurate for n up to 1e15; the
    # textbook form (n + 1) log((n - m + 1) / (n - k + 1)) loses ~0.1 at n = 1e15).
    log_ratio = (
        -(m + 0.5) * jnp.log1p(d / (m + 1.0))
        + (nb - m + 0.5) * jnp.log1p(d / (nb - ks + 1.0))
        + d * (jnp.log(qb) - jnp.log1p(-qb) + jnp.log((nb - ks + 1.0) / (ks + 1.0)))
        + _fc(m) + _fc(nb - m) - _fc(ks) - _fc(nb - ks)
    )
    lv = jnp.log(vv * alpha / (a / (us * us) + b))
    return jnp.where(squeeze | (ok & (lv <= log_ratio)), k, jnp.nan)


# Rejected BTRS proposals are compacted into a buffer of 1/_FINISH_FRACTION of the batch.
_FINISH_FRACTION = 8
# Steps per iteration of the sampler's loops, unrolled inside one iteration. Each iteration of a
# ``while_loop`` over a batch is a pass over the batch's arrays in memory and, on a GPU, kernel
# launches and a device-to-host copy of the loop test: with one step per iteration the inversion's
# walk up the pmf (to k ~ 30 for n p just below 10) would make ~30 such iterations per binomial;
# unrolled steps are fused arithmetic instead. The BTRS finish makes one try per iteration: each
# try is a whole proposal for every element of the buffer, accepted ones included. All three are
# speed only: every element takes the same steps in the same order, so no value depends on them
# (docs/benchmarks/ has the timings behind them).
_INVERSION_STEPS = 8
_FINISH_TRIES = 1


def _btrs_finish(pkey, stream, lane, lane2, nb, qb, k_out, tries_done: int):
    """Propose again for the elements still NaN until none is left.

    Each outer pass compacts up to ``buf`` (1/8 of the batch) rejected elements
    (:func:`first_true`) and loops on that buffer alone until all of it is accepted, then scatters
    back (one pass unless more than ``buf`` were rejected). Every element proposes with its own
    counters, so its value does not depend on ``buf`` or on the other elements.
    """
    size = k_out.shape[0]
    buf = max(min(size, 64), size // _FINISH_FRACTION)

    def inner(carry):
        k, used, lane_b, lane2_b, nb_b, qb_b = carry
        for _ in range(_FINISH_TRIES):  # unrolled: one fused pass and one loop test per iteration
            prop = _btrs_propose(pkey, used + 1, stream, lane_b, lane2_b, nb_b, qb_b, rolled=False)
            todo = jnp.isnan(k)
            k, used = jnp.where(todo, prop, k), used + todo.astype(jnp.uint32)
        return k, used, lane_b, lane2_b, nb_b, qb_b

    def outer(k):
        idx = first_true(jnp.isnan(k), buf, size)
        gi = jnp.minimum(idx, size - 1)
        sub = jnp.where(idx < size, jnp.nan, 0.0)
        used = jnp.full(buf, tries_done, jnp.uint32)
        carry = (sub, used, lane[gi], lane2[gi], nb[gi], qb[gi])
        sub = lax.while_loop(lambda c: jnp.any(jnp.isnan(c[0])), inner, carry)[0]
        return k.at[idx].set(sub, mode="drop")

    return lax.while_loop(lambda k: jnp.any(jnp.isnan(k)), outer, k_out)


def binomial(pkey, stream, n, p, lane=0, lane2=0, tries_per_round: int = 2):
    """Exact Binomial(n, p) counts as float64 (exact integers up to 2**53).

    Args:
        pkey: one Philox key, shape (2,). Elements are told apart by ``lane`` and ``lane2`` (a
            per-element key would make XLA carry 20 round-key arrays through the loops).
        stream: an integer naming this draw (different draws with one key need different streams).
        n: trial counts (float64 or int; integers below 2**53).
        p: success probabilities in [0, 1].
        lane, lane2: uint32 arrays telling the elements apart (e.g. session index and cell index);
            every (stream, lane, lane2) must be distinct among the draws of one key.

    Returns:
        float64 array of the broadcast shape of ``n``, ``p``, ``lane`` and ``lane2``.

    Method: for q = min(p, 1 - p) and n q < 10, inversion by sequential search of the pmf from 0
    (one uniform). Otherwise BTRS: ``tries_per_round`` proposals for every element, then the few
    rejected ones are compacted, 1/8 of the batch at a time, and proposed again until all are
    accepted (a plain loop would cost every element the rounds of the slowest). The value of
    every element depends only on (key, stream, lane, lane2, n, p), not on the batch.
    """
    n = jnp.asarray(n, jnp.float64)
    p = jnp.asarray(p, jnp.float64)
    shape = jnp.broadcast_shapes(n.shape, p.shape, jnp.shape(lane), jnp.shape(lane2))
    n = jnp.broadcast_to(jnp.floor(jnp.maximum(n, 0.0)), shape).ravel()
    p = jnp.broadcast_to(jnp.clip(p, 0.0, 1.0), shape).ravel()
    lane = jnp.broadcast_to(jnp.asarray(lane, jnp.uint32), shape).ravel()
    lane2 = jnp.broadcast_to(jnp.asarray(lane2, jnp.uint32), shape).ravel()
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    use_inv = n * q < 10.0
    stream = jnp.uint32(stream)

    # Inversion: k = smallest k with u <= F(k), F the cdf, walking the pmf upwards from P(0).
    u, _ = uniform_pair(pkey, 0, stream, lane, lane2, rolled=False)
    r = q / jnp.where(q < 1.0, 1.0 - q, 1.0)
    p0 = jnp.exp(n * jnp.log1p(-q))
    inv_active = use_inv & (u > p0) & (q > 0.0)

    def inv_body(c):
        k, pk, cdf, active = c
        for _ in range(_INVERSION_STEPS):  # unrolled (see _INVERSION_STEPS)
            k1 = k + 1.0
            pk = jnp.where(active, pk * r * (n - k) / k1, pk)
            cdf = jnp.where(active, cdf + pk, cdf)
            k = jnp.where(active, k1, k)
            active = active & (u > cdf) & (pk > 0.0) & (k < n)
        return k, pk, cdf, active

    zero = jnp.zeros_like(n)
    k_inv = lax.while_loop(lambda c: jnp.any(c[3]), inv_body, (zero, p0, p0, inv_active))[0]

    # BTRS for n q >= 10 (dummy parameters where inversion is used); skipped if none needs it.
    # The arrays carry the accepted value or NaN: with two outputs (value, done) XLA duplicated the
    # whole proposal into two fusions (4x slower on CPU).
    def btrs(_):
        nb = jnp.where(use_inv, 1e4, n)
        qb = jnp.where(use_inv, 0.5, q)
        k_b = jnp.where(use_inv, 0.0, jnp.nan)

        for t in range(tries_per_round):  # unrolled: one fused pass over the batch
            k_b = jnp.where(jnp.isnan(k_b), _btrs_propose(pkey, t + 1, stream, lane, lane2, nb, qb), k_b)
        return _btrs_finish(pkey, stream, lane, lane2, nb, qb, k_b, tries_per_round)

    k_b = lax.cond(jnp.all(use_inv), lambda _: zero, btrs, None)
    k = jnp.where(use_inv, k_inv, k_b)
    return jnp.where(flip, n - k, k).reshape(shape)


def multinomial(pkey, stream, n, probs, lane=0, lane2=0, tries_per_round: int = 2):
    """Exact Multinomial(n, probs) counts over the last axis of ``probs`` (float64 counts).

    Conditional binomials along the cells, count_j ~ Binomial(n - sum_{i<j} count_i,
    p_j / sum_{i>=j} p_i) (suffix sums, so tiny cells keep their precision), in a ``lax.scan``:
    M cells cost M - 1 binomials and one compiled sampler. ``probs`` need not be normalized.

    Args:
        pkey: one Philox key, shape (2,).
        stream: the stream of this call.
        n: counts; the batch shape is the broadcast of ``probs.shape[:-1]``, ``n`` and the lanes.
        probs: shape (..., M).
        lane, lane2: uint32, tell the rows apart (broadcastable to the batch); the cell index is
            folded into the second word as ``lane2 * M + j``.
        tries_per_round: :func:`binomial`'s (speed only: the counts do not depend on it).
    """
    probs = jnp.asarray(probs, jnp.float64)
    m = probs.shape[-1]
    batch = jnp.broadcast_shapes(probs.shape[:-1], jnp.shape(n), jnp.shape(lane), jnp.shape(lane2))
    # Conditional probabilities on the probabilities' own shape (often one row for a whole batch
    # of sessions): broadcast to the batch only inside each binomial, never as (batch, M) arrays.
    probs = jnp.maximum(probs, 0.0)
    rest = jnp.cumsum(probs[..., ::-1], axis=-1)[..., ::-1]  # sum_{i >= j} p_i
    cond = jnp.where(rest > 0, probs / jnp.where(rest > 0, rest, 1.0), 0.0)
    cond = jnp.clip(cond, 0.0, 1.0)
    n = jnp.broadcast_to(jnp.asarray(n, jnp.float64), batch)
    lane = jnp.broadcast_to(jnp.asarray(lane, jnp.uint32), batch)
    lane2 = jnp.broadcast_to(jnp.asarray(lane2, jnp.uint32), batch) * np.uint32(m)
    if m == 1:
        return n[..., None]

    def step(remaining, xs):
        j, p_j = xs
        c = binomial(pkey, stream, remaining, p_j, lane, lane2 + j, tries_per_round)
        return remaining - c, c

    cells = jnp.arange(m - 1, dtype=jnp.uint32)
    last, counts = lax.scan(step, n, (cells, jnp.moveaxis(cond[..., :-1], -1, 0)))
    return jnp.concatenate([jnp.moveaxis(counts, 0, -1), last[..., None]], axis=-1)


def geometric_positions(pkey, stream, p, length: int, batch: int = 256):
    """Positions of the successes of ``length`` Bernoulli(p) trials, as a bool mask (length,).

    Rare events drawn as counts and placed: the gaps between successes are geometric,
    ``g = floor(log(u) / log(1 - p))`` from 53-bit uniforms, so p is realized to 2**-53 absolute
    (1e-7 relative at p = 1e-9, where a float32 uniform would be off by 20 %), accumulated ``batch``
    at a time until they pass the end. Cost: one round of ``batch`` gaps per ``batch`` successes,
    independent of ``length``.
    """
    log_q = jnp.log1p(-jnp.clip(jnp.asarray(p, jnp.float64), 0.0, 1.0))
    idx = jnp.arange(batch // 2, dtype=jnp.uint32)

    def cond(c):
        return c[1] < length

    def body(c):
        rnd, pos, mask = c
        u, v = uniform_pair(pkey, rnd, stream, idx, rolled=True)
        uv = jnp.concatenate([u, v])
        gap = jnp.where(log_q < 0.0, jnp.floor(jnp.log(uv) / jnp.where(log_q < 0, log_q, -1.0)), jnp.inf)
        gap = jnp.minimum(gap, 2.0**62)
        at = pos + jnp.cumsum(gap + 1.0) - 1.0  # float64: exact below 2**53
        inside = at < length
        mask = mask.at[jnp.where(inside, at, length).astype(jnp.int64)].set(True, mode="drop")
        return rnd + 1, at[-1] + 1.0, mask

    init = (jnp.uint32(0), jnp.float64(0.0), jnp.zeros(length, bool))
    return lax.while_loop(cond, body, init)[2]
