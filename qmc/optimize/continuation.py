"""Optima of many problems in one compiled call: chains of warm starts and continuation passes.

:func:`solve` runs the solver from several starts per point (lanes) on chains of consecutive
points: along a chain each point is warm-started from the previous optimum (extrapolated, with
its inverse Hessian), a spread-out start every few points; then passes restart every point from
its neighbours' optima while a vectorized check says that helps. :func:`qmc.optimize.maximize`
and :func:`qmc.optimize.maximize_sweep` call it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from qmc._pytree import replace_path
from qmc.optimize.bfgs import BFGSState, warm_start
from qmc.optimize.minimize import minimize
from qmc.optimize.objective import INFEASIBLE as _INFEASIBLE
from qmc.optimize.objective import objective
from qmc.optimize.result import Optimum
from qmc.sweep import padded_index

__all__ = ["solve"]


@functools.partial(jax.jit, static_argnames=("paths", "space", "solver", "driver", "lanes", "chain_length",
                                             "continuation", "explore_every", "sequential_lanes"))
def solve(tree, batch, pool, paths, space, solver, driver, lanes, chain_length, continuation, explore_every=1,
          sequential_lanes=False):
    """Optima of P problems: chains of ``chain_length`` consecutive points, vmapped over chains.

    Args:
        tree: ``{"link", "analysis", "protocol"}``.
        batch: (P, n) values at ``paths``, or (``paths`` None) a Link whose leaves have a leading
            axis P (it replaces ``tree["link"]``).
        pool: (P, S, d) listed starts per point (S >= lanes; start 0 is the user's protocol).
        solver: an optax transformation (:func:`qmc.optimize.minimize.solver_from`); qmc's BFGS
            passes its inverse Hessian along a chain, other solvers their point only.
        driver: the driver's options, ``((name, value), ...)`` (:func:`qmc.optimize.minimize.minimize`).
        lanes: solver runs per point (side by side, or one after the other if ``sequential_lanes``).
        chain_length: consecutive points solved one after the other (a ``lax.scan``), each
            warm-started from the previous point's optimum; the P / chain_length chains run side
            by side (``vmap``). 1: every point at once, no warm start.
        continuation: passes after the first, alternately backward and forward, each run only if
            a vectorized check (the loss of every point at its neighbours' optima, values only)
            finds a point to improve: each point restarts from its two neighbours' optima (lanes 0
            and 1), and a lane stops after one evaluation unless its start already beats the
            point's own optimum.
        explore_every: along a chain, the lanes other than the warm start run at every
            ``explore_every``-th point only (and at the chain's first); elsewhere they stop after
            one evaluation.

    First pass: lane 0 starts from the previous point's optimum (from ``pool[:, 0]``, the user's
    protocol, at the first point of a chain) with its inverse Hessian; the other lanes, where they
    explore, from the best starts of the pool after screening it by loss value (a coarse search;
    the continuation passes carry the best basin along). The loss and its gradient are traced
    once, the screening loss once.
    """
    driver = dict(driver)
    n_points, n_pool, d = pool.shape
    m = chain_length
    n_chains = -(-n_points // m)
    if n_chains * m > n_points:  # the last point repeated to fill the last chain
        rows = padded_index(0, n_points, n_chains * m)
        batch = jax.tree_util.tree_map(lambda x: x[rows], batch)
        pool = pool[rows]
    total = n_chains * m
    chain_first = jnp.arange(n_chains) * m  # (C,)

    def setup(item):
        if paths is None:
            return {**tree, "link": item}
        t = tree
        for i, path in enumerate(paths):
            t = replace_path(t, path, item[i])
        return t

    def solve_one(item, start, cutoff, h0, fresh0):
        t = setup(item)
        loss = functools.partial(objective, link=t["link"], protocol=t["protocol"], analysis=t["analysis"],
                                 space=space)
        out = minimize(solver, loss, start, cutoff=cutoff, state=warm_start(solver.init(start), h0, fresh0), **driver)
        h = out.state.h if isinstance(out.state, BFGSState) else h0  # other solvers keep no curvature
        return out.x, out.f, out.n_iter, out.n_eval, h

    def solve_lanes(items, lane_starts, cutoff, h0, fresh0):
        """The solver for every (chain, lane): (C, L, ...) outputs."""
        if not sequential_lanes:  # lanes side by side, in lockstep (accelerators)
            per_point = jax.vmap(solve_one, in_axes=(None, 0, 0, 0, 0))
            return jax.vmap(per_point)(items, lane_starts, cutoff, h0, fresh0)
        # One lane after the other (CPU: a lockstep lane costs what it computes even when its run
        # is over); a lane that no chain runs (cutoff -inf everywhere) is skipped outright.
        def lane(l, acc):
            def run():
                return jax.vmap(solve_one)(items, lane_starts[:, l], cutoff[:, l], h0[:, l], fresh0[:, l])

            def skip():
                return (lane_starts[:, l], jnp.full(n_chains, jnp.inf), jnp.zeros(n_chains, jnp.int32),
                        jnp.zeros(n_chains, jnp.int32), h0[:, l])

            out = jax.lax.cond(jnp.any(cutoff[:, l] > -jnp.inf), run, skip)
            return tuple(a.at[:, l].set(o) for a, o in zip(acc, out))

        init = (lane_starts, jnp.full((n_chains, lanes), jnp.inf), jnp.zeros((n_chains, lanes), jnp.int32),
                jnp.zeros((n_chains, lanes), jnp.int32), h0)
        return jax.lax.fori_loop(0, lanes, lane, init)

    def screen_point(item, starts):
        t = setup(item)
        return jax.vmap(lambda s: objective(s, t["link"], t["protocol"], t["analysis"], space))(starts)

    def step(carry, j):
        best_theta, best_f, best_h, n_eval, improved, p = carry
        forward = p % 2 == 0
        offset = jnp.where(forward, j, m - 1 - j)
        idx = chain_first + offset  # (C,) the points of this step
        prev = jnp.clip(jnp.where(forward, idx - 1, idx + 1), 0, total - 1)
        nxt = jnp.clip(jnp.where(forward, idx + 1, idx - 1), 0, total - 1)
        first_pass = p == 0
        # First pass: the warm start in lane 0, screened starts of the pool in the others. Later
        # passes: the neighbours' optima.
        lane_ids = jnp.arange(lanes)
        items = jax.tree_util.tree_map(lambda x: x[idx], batch)
        rows = pool[idx]  # (C, S, d)
        # Lanes other than 0 explore at every explore_every-th step (by offset, so that all chains
        # explore in the same steps: a step costs its slowest lane) and wherever the warm start
        # has no key.
        explore = ((offset % explore_every == 0) | (lane_ids[None, :] == 0)
                   | (best_f[prev] >= 0.5 * _INFEASIBLE)[:, None])  # (C, L)
        # Exploring lanes start from the best starts of the pool by loss (values only; the
        # user's start, pool[0], is lane 0's at a chain's first point). A real branch: skipped
        # in steps where no lane explores.
        if lanes > 1:
            scores = jax.lax.cond(first_pass & jnp.any(explore[:, 1:]), lambda: jax.vmap(screen_point)(items, rows),
                                  lambda: jnp.zeros((n_chains, n_pool)))
            scores = jnp.where(jnp.arange(n_pool)[None, :] == 0, jnp.inf, jnp.nan_to_num(scores, nan=jnp.inf))
            order = jnp.argsort(scores, axis=1)  # (C, S), best first
            pick = jnp.where(lane_ids[None, :] == 0, 0, order[:, jnp.clip(lane_ids - 1, 0, n_pool - 1)])  # (C, L)
        else:
            pick = jnp.zeros((n_chains, 1), jnp.int32)
        listed = jnp.take_along_axis(rows, pick[:, :, None], axis=1)  # (C, L, d)
        warm = ((offset > 0) & (lane_ids == 0))[None, :, None]
        # warm start: the previous point's optimum, extrapolated along the chain (secant predictor)
        prev2 = jnp.clip(jnp.where(forward, idx - 2, idx + 2), 0, total - 1)
        predicted = jnp.where((offset >= 2), 2.0 * best_theta[prev] - best_theta[prev2], best_theta[prev])
        predicted = jnp.where(jnp.isfinite(best_f[prev2])[:, None] & (best_f[prev2] < 0.5 * _INFEASIBLE)[:, None]
                              & (best_f[prev] < 0.5 * _INFEASIBLE)[:, None], predicted, best_theta[prev])
        listed = jnp.where(warm, predicted[:, None, :], listed)
        even = (lane_ids % 2 == 0)[None, :, None]  # even lanes: previous neighbour; odd: next
        neighbour = jnp.where(even, best_theta[prev][:, None, :], best_theta[nxt][:, None, :])
        lane_starts = jnp.where(first_pass, listed, neighbour)
        # Warm and neighbour starts bring their point's inverse Hessian; spread-out starts an identity.
        eye = jnp.broadcast_to(jnp.eye(d), (n_chains, lanes, d, d))
        h_prev, h_next = best_h[prev][:, None], best_h[nxt][:, None]
        h_listed = jnp.where(warm[..., None], h_prev, eye)
        h_neighbour = jnp.where(even[..., None], h_prev, h_next)
        h0 = jnp.where(first_pass, h_listed, h_neighbour)
        fresh0 = jnp.broadcast_to(first_pass & ~warm[..., 0], (n_chains, lanes))
        own = best_f[idx]
        # A restart must beat the point's own optimum (by 1e-6 of the rate) at its first
        # evaluation, except where the point has no key and the neighbour has one: then it runs
        # (near the edge a key can need a start that is no better by the unclipped rate).
        cutoff = jnp.where(own >= 0.5 * _INFEASIBLE, jnp.inf, own - 1e-6 * (1.0 + jnp.abs(own)))  # (C,)
        source_f = jnp.where(even[0, :, 0][None, :], best_f[prev][:, None], best_f[nxt][:, None])  # (C, L)
        # A neighbour without key is no start for a point without key: stop at once.
        hopeless = (own >= 0.5 * _INFEASIBLE)[:, None] & (source_f >= 0.5 * _INFEASIBLE)
        cutoff = jnp.where(first_pass, jnp.where(explore, jnp.inf, -jnp.inf),
                           jnp.where(hopeless, -jnp.inf, cutoff[:, None]))  # (C, L)
        theta, f, _, evals, h = solve_lanes(items, lane_starts, cutoff, h0, fresh0)  # (C, L, ...)
        f = jnp.where(jnp.isnan(f), jnp.inf, f)
        lane = jnp.argmin(f, axis=1)
        chains = jnp.arange(n_chains)
        f_new, theta_new = f[chains, lane], theta[chains, lane]
        better = f_new < own
        best_theta = best_theta.at[idx].set(jnp.where(better[:, None], theta_new, best_theta[idx]))
        best_f = best_f.at[idx].set(jnp.where(better, f_new, own))
        best_h = best_h.at[idx].set(jnp.where(better[:, None, None], h[chains, lane], best_h[idx]))
        n_eval = n_eval.at[idx].add(jnp.sum(evals, axis=1, dtype=jnp.int32))
        return (best_theta, best_f, best_h, n_eval, improved, p), None

    everywhere = jnp.arange(total)
    left, right = jnp.maximum(everywhere - 1, 0), jnp.minimum(everywhere + 1, total - 1)
    # the left neighbour was the warm start in the first pass, except at a chain's first point
    left_tried = (everywhere % m != 0) & (m > 1)

    def worth_another_pass(best_theta, best_f, first):
        """Would a pass restart any point profitably? All points at once, values only: a
        neighbour's optimum beats the point's own here, or (after the first pass) a point without
        key lies beside a point with key that was not its warm start."""
        starts = jnp.stack([best_theta[left], best_theta[right]], axis=1)  # (T, 2, d)
        values = jax.vmap(screen_point)(batch, starts)  # (T, 2)
        values = jnp.nan_to_num(values, nan=jnp.inf)
        margin = 1e-6 * (1.0 + jnp.abs(best_f))
        better = jnp.any(values < (best_f - margin)[:, None], axis=1) & (best_f < 0.5 * _INFEASIBLE)
        no_key = best_f >= 0.5 * _INFEASIBLE
        untried = ((best_f[left] < 0.5 * _INFEASIBLE) & ~left_tried) | (best_f[right] < 0.5 * _INFEASIBLE)
        return jnp.any(better | (no_key & ~jnp.all(values >= 0.5 * _INFEASIBLE, axis=1))
                       | (first & no_key & untried))

    def one_pass(carry):
        best_theta, best_f, best_h, n_eval, _, p = carry
        (best_theta, best_f, best_h, n_eval, _, _), _ = jax.lax.scan(
            step, (best_theta, best_f, best_h, n_eval, jnp.asarray(False), p), jnp.arange(m))
        worth = (p < continuation) & worth_another_pass(best_theta, best_f, p == 0) if continuation else False
        return best_theta, best_f, best_h, n_eval, jnp.asarray(worth), p + 1

    def again(carry):
        worth, p = carry[-2:]
        return (p == 0) | worth

    init = (pool[:, 0], jnp.full(total, jnp.inf), jnp.broadcast_to(jnp.eye(d), (total, d, d)),
            jnp.zeros(total, jnp.int32), jnp.asarray(True), jnp.asarray(0, jnp.int32))
    best_theta, _, _, n_eval, _, _ = jax.lax.while_loop(again, one_pass, init)

    def finish(item, theta, evals):
        t = setup(item)
        opt = space.to_protocol(theta, t["protocol"])
        rate = t["analysis"].key_rate(t["link"], opt)
        return Optimum(opt, rate, theta, rate.rate > 0.0, evals)

    out = jax.vmap(finish)(batch, best_theta, n_eval)
    return jax.tree_util.tree_map(lambda x: x[:n_points], out)
