"""The bookkeeping of chains and continuation passes, shared by the optimizer's two drivers.

P points are cut into C chains of m consecutive points (the last point repeated to fill the last
chain, T = C m points in all). A pass walks every chain one point per step, forward in even passes
and backward in odd ones; at each step every chain's current point gets L solver runs (lanes).
These functions say where each lane starts and which result a point keeps; they take ``xp``
(``numpy`` or ``jax.numpy``) so that the compiled driver (:func:`qmc.optimize.continuation.solve`,
everything in one program) and the host driver (:func:`qmc.optimize.host.solve`, a loop in Python
around one compiled loss) follow the same rules.

The state between steps is :class:`Bests`: the best point, loss and inverse Hessian found so far
at every point, and the evaluations spent there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from qmc.optimize.objective import INFEASIBLE

__all__ = ["Geometry", "Bests", "Step", "initial", "at_step", "exploring", "screened_scores", "lane_problems",
           "keep_best", "neighbour_starts", "worth_another_pass"]

_HALF = 0.5 * INFEASIBLE  # a loss at or above this: the point has no key


class Geometry(NamedTuple):
    """The static shape of a solve: chains, chain length, lanes and exploration period."""

    n_chains: int
    m: int
    lanes: int
    explore_every: int = 1

    @property
    def total(self) -> int:
        return self.n_chains * self.m


class Bests(NamedTuple):
    theta: Any   # (T, d) best point at every point of the sweep
    f: Any       # (T,) its loss (inf where none yet)
    h: Any       # (T, d, d) the solver's inverse Hessian there (qmc's BFGS)
    n_eval: Any  # (T,) evaluations spent at the point


class Step(NamedTuple):
    """The points one step visits, one per chain (all (C,) index arrays)."""

    idx: Any
    prev: Any
    nxt: Any
    prev2: Any
    offset: Any
    first_pass: Any


def initial(first_starts, d: int, xp=np) -> Bests:
    """Nothing found yet: every point at its first listed start (``first_starts`` (T, d))."""
    total = first_starts.shape[0]
    return Bests(first_starts, xp.full(total, xp.inf), xp.broadcast_to(xp.eye(d), (total, d, d)),
                 xp.zeros(total, xp.int32))


def _set(a, idx, v, xp):
    if xp is np:
        a = np.array(a, copy=True)
        a[idx] = v
        return a
    return a.at[idx].set(v)


def _add(a, idx, v, xp):
    if xp is np:
        a = np.array(a, copy=True)
        np.add.at(a, idx, v)
        return a
    return a.at[idx].add(v)


def at_step(geo: Geometry, j, p, xp=np) -> Step:
    """The points of step ``j`` of pass ``p`` (even passes forward along the chains, odd backward)."""
    m, total = geo.m, geo.total
    forward = p % 2 == 0
    offset = xp.where(forward, j, m - 1 - j)
    idx = xp.arange(geo.n_chains) * m + offset
    prev = xp.clip(xp.where(forward, idx - 1, idx + 1), 0, total - 1)
    nxt = xp.clip(xp.where(forward, idx + 1, idx - 1), 0, total - 1)
    prev2 = xp.clip(xp.where(forward, idx - 2, idx + 2), 0, total - 1)
    return Step(idx, prev, nxt, prev2, offset, p == 0)


def exploring(geo: Geometry, bests: Bests, step: Step, xp=np):
    """(C, L): the lanes that run. Lane 0 always; the others at every ``explore_every``-th step
    (by offset, so that all chains explore in the same steps: a step costs its slowest lane) and
    wherever the previous point has no key."""
    lane_ids = xp.arange(geo.lanes)
    return ((step.offset % geo.explore_every == 0) | (lane_ids[None, :] == 0)
            | (bests.f[step.prev] >= _HALF)[:, None])


def screened_scores(scores, xp=np):
    """Screening losses (C, S) of the listed starts, the user's start (column 0, lane 0's) and
    NaN last."""
    n_pool = scores.shape[1]
    return xp.where(xp.arange(n_pool)[None, :] == 0, xp.inf, xp.nan_to_num(scores, nan=xp.inf))


def _argsort_rows(x, xp):
    return np.argsort(x, axis=1, kind="stable") if xp is np else xp.argsort(x, axis=1)


def lane_problems(geo: Geometry, bests: Bests, step: Step, rows, scores, explore, xp=np):
    """Where every (chain, lane) starts: ``(starts (C, L, d), h0 (C, L, d, d), fresh0 (C, L),
    cutoff (C, L))``.

    First pass: lane 0 starts from the previous point's optimum, extrapolated along the chain
    (secant predictor; at a chain's first point the user's protocol, ``rows[:, 0]``) with its
    inverse Hessian; the other lanes from the best listed starts ``rows`` (C, S, d) by screening
    loss ``scores`` (C, S) with an identity. Later passes: even lanes from the previous
    neighbour's optimum, odd lanes from the next one's, with their inverse Hessians.

    ``cutoff``: a run stops after its first evaluation unless its loss there is below it. First
    pass: +inf where the lane explores, -inf elsewhere. Later passes: the point's own optimum less
    1e-6 of it (a restart must beat it), except where the point has no key and the neighbour has
    one (then it runs: near the edge a key can need a start that is no better by the unclipped
    rate), and -inf where neither has a key.
    """
    lanes, n_chains = geo.lanes, geo.n_chains
    d = rows.shape[-1]
    lane_ids = xp.arange(lanes)
    first_pass = step.first_pass
    if lanes > 1:
        order = _argsort_rows(screened_scores(scores, xp), xp)  # (C, S), best first
        pick = xp.where(lane_ids[None, :] == 0, 0, order[:, xp.clip(lane_ids - 1, 0, rows.shape[1] - 1)])
    else:
        pick = xp.zeros((n_chains, 1), xp.int32)
    listed = xp.take_along_axis(rows, pick[:, :, None], axis=1)  # (C, L, d)
    warm = ((step.offset > 0) & (lane_ids == 0))[None, :, None]
    theta, f = bests.theta, bests.f
    predicted = xp.where(step.offset >= 2, 2.0 * theta[step.prev] - theta[step.prev2], theta[step.prev])
    usable = (xp.isfinite(f[step.prev2]) & (f[step.prev2] < _HALF) & (f[step.prev] < _HALF))[:, None]
    predicted = xp.where(usable, predicted, theta[step.prev])
    listed = xp.where(warm, predicted[:, None, :], listed)
    even = (lane_ids % 2 == 0)[None, :, None]  # even lanes: previous neighbour; odd: next
    neighbour = xp.where(even, theta[step.prev][:, None, :], theta[step.nxt][:, None, :])
    starts = xp.where(first_pass, listed, neighbour)
    eye = xp.broadcast_to(xp.eye(d), (n_chains, lanes, d, d))
    h_prev, h_next = bests.h[step.prev][:, None], bests.h[step.nxt][:, None]
    h0 = xp.where(first_pass, xp.where(warm[..., None], h_prev, eye), xp.where(even[..., None], h_prev, h_next))
    fresh0 = xp.broadcast_to(first_pass & ~warm[..., 0], (n_chains, lanes))
    own = f[step.idx]
    known = xp.where(own >= _HALF, 0.0, own)  # (no inf - inf)
    beat = xp.where(own >= _HALF, xp.inf, known - 1e-6 * (1.0 + xp.abs(known)))  # (C,)
    source_f = xp.where(even[0, :, 0][None, :], f[step.prev][:, None], f[step.nxt][:, None])  # (C, L)
    hopeless = (own >= _HALF)[:, None] & (source_f >= _HALF)
    cutoff = xp.where(first_pass, xp.where(explore, xp.inf, -xp.inf), xp.where(hopeless, -xp.inf, beat[:, None]))
    return starts, h0, fresh0, cutoff


def keep_best(bests: Bests, step: Step, theta, f, n_eval, h, xp=np) -> Bests:
    """Each chain's point keeps its best lane's result (``theta`` (C, L, d), ``f``, ``n_eval``
    (C, L), ``h`` (C, L, d, d)) where it beats the point's own optimum."""
    f = xp.where(xp.isnan(f), xp.inf, f)
    lane = xp.argmin(f, axis=1)
    chains = xp.arange(f.shape[0])
    f_new, theta_new, h_new = f[chains, lane], theta[chains, lane], h[chains, lane]
    own = bests.f[step.idx]
    better = f_new < own
    idx = step.idx
    return Bests(
        _set(bests.theta, idx, xp.where(better[:, None], theta_new, bests.theta[idx]), xp),
        _set(bests.f, idx, xp.where(better, f_new, own), xp),
        _set(bests.h, idx, xp.where(better[:, None, None], h_new, bests.h[idx]), xp),
        _add(bests.n_eval, idx, xp.sum(n_eval, axis=1, dtype=xp.int32), xp),
    )


def _neighbours(total: int, xp):
    everywhere = xp.arange(total)
    return xp.maximum(everywhere - 1, 0), xp.minimum(everywhere + 1, total - 1)


def neighbour_starts(geo: Geometry, bests: Bests, xp=np):
    """(T, 2, d): every point's left and right neighbours' optima (what :func:`worth_another_pass`
    evaluates)."""
    left, right = _neighbours(geo.total, xp)
    return xp.stack([bests.theta[left], bests.theta[right]], axis=1)


def worth_another_pass(geo: Geometry, bests: Bests, values, first, xp=np):
    """Would a pass restart any point profitably? ``values`` (T, 2): the loss of every point at
    its neighbours' optima (:func:`neighbour_starts`). True where a neighbour's optimum beats the
    point's own, or (after the first pass) a point without key lies beside a point with key that
    was not its warm start."""
    total, m = geo.total, geo.m
    left, right = _neighbours(total, xp)
    left_tried = (xp.arange(total) % m != 0) & (m > 1)  # the left neighbour was the warm start
    values = xp.nan_to_num(values, nan=xp.inf)
    f = bests.f
    margin = 1e-6 * (1.0 + xp.abs(f))
    better = xp.any(values < (f - margin)[:, None], axis=1) & (f < _HALF)
    no_key = f >= _HALF
    untried = ((f[left] < _HALF) & ~left_tried) | (f[right] < _HALF)
    return xp.any(better | (no_key & ~xp.all(values >= _HALF, axis=1)) | (first & no_key & untried))
