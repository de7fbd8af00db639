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
import numpy as np

from qmc._compile import jit
from qmc._devices import padded_size, shardings
from qmc.optimize import chains
from qmc.optimize.bfgs import BFGSState, warm_start
from qmc.optimize.minimize import minimize
from qmc.optimize.objective import objective, point_problem
from qmc.optimize.result import Optimum
from qmc.sweep import padded_index

__all__ = ["solve", "bucket"]


def bucket(n: int) -> int:
    """The number of chains a program is compiled for: the next power of two (one program for
    5 to 8 chains; at most twice the work of the chains asked for)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def solve(tree, batch, pool, paths, space, solver, driver, lanes, chain_length, continuation, explore_every=1,
          sequential_lanes=False, devices=None):
    """Optima of P problems: chains of ``chain_length`` consecutive points, vmapped over chains.

    The chains are padded to :func:`bucket` chains with copies of the last point (their results
    dropped), so that batches and sweeps of nearby sizes share one compiled program. A copy is the
    last point's own problem: through the continuation passes it can only improve that point.

    With several ``devices`` (a tuple, :func:`qmc._devices.resolve`) the chains are split over
    them: the chain count padded to a multiple of theirs, the points, starts and every
    per-chain array sharded along the chain axis (a 1-D mesh ``batch``), the tree replicated.
    Each chain's arithmetic is the same program, so the optima are the one device's bit for bit.

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
    n_points = int(pool.shape[0])
    n_chains = bucket(-(-n_points // chain_length))
    if devices is not None:
        n_chains = padded_size(n_chains, len(devices))
    rows = padded_index(0, n_points, n_chains * chain_length)
    batch = jax.tree_util.tree_map(lambda x: np.asarray(x)[rows], batch)  # on the host: nothing to compile
    pool = np.asarray(pool)[rows]
    if devices is not None:
        split, replicated = shardings(devices)
        batch, pool = jax.device_put((batch, pool), split)
        tree = jax.tree_util.tree_map(lambda x: jax.device_put(x, replicated) if isinstance(x, jax.Array) else x, tree)
    out = _solve(tree, batch, pool, paths, space, solver, driver, lanes, chain_length, continuation,
                 explore_every, sequential_lanes, devices)
    return jax.tree_util.tree_map(lambda x: jax.device_put(np.asarray(x)[:n_points]), out)


@functools.partial(jit, static_argnames=("paths", "space", "solver", "driver", "lanes", "chain_length",
                                             "continuation", "explore_every", "sequential_lanes", "devices"))
def _solve(tree, batch, pool, paths, space, solver, driver, lanes, chain_length, continuation, explore_every,
           sequential_lanes, devices=None):
    """:func:`solve` on chains that fill the batch (its length a multiple of ``chain_length``)."""
    driver = dict(driver)
    if devices is None:
        def split(x):
            return x
    else:  # every per-chain (or per-point) array split along its first axis, as the batch is
        split_sharding = shardings(devices)[0]

        def split(x):
            return jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, split_sharding), x)
    n_points, n_pool, d = pool.shape
    m = chain_length
    n_chains = n_points // m
    geo = chains.Geometry(n_chains, m, lanes, explore_every)

    def setup(item):
        return point_problem(tree, item, paths)

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
        bests, p = carry
        at = chains.at_step(geo, j, p, jnp)
        items = split(jax.tree_util.tree_map(lambda x: x[at.idx], batch))
        rows = split(pool[at.idx])  # (C, S, d)
        explore = chains.exploring(geo, bests, at, jnp)  # (C, L)
        # Screening the pool by loss (values only): a real branch, skipped in steps where no lane
        # explores and after the first pass.
        if lanes > 1:
            scores = jax.lax.cond(at.first_pass & jnp.any(explore[:, 1:]), lambda: jax.vmap(screen_point)(items, rows),
                                  lambda: jnp.zeros((n_chains, n_pool)))
        else:
            scores = None
        lane_starts, h0, fresh0, cutoff = split(chains.lane_problems(geo, bests, at, rows, scores, explore, jnp))
        theta, f, _, evals, h = split(solve_lanes(items, lane_starts, cutoff, h0, fresh0))  # (C, L, ...)
        return (chains.keep_best(bests, at, theta, f, evals, h, jnp), p), None

    def one_pass(carry):
        bests, _, p = carry
        (bests, _), _ = jax.lax.scan(step, (bests, p), jnp.arange(m))
        worth = False
        if continuation:
            values = jax.vmap(screen_point)(batch, split(chains.neighbour_starts(geo, bests, jnp)))  # (T, 2)
            worth = (p < continuation) & chains.worth_another_pass(geo, bests, values, p == 0, jnp)
        return bests, jnp.asarray(worth), p + 1

    def again(carry):
        _, worth, p = carry
        return (p == 0) | worth

    init = (chains.initial(pool[:, 0], d, jnp), jnp.asarray(True), jnp.asarray(0, jnp.int32))
    bests, _, _ = jax.lax.while_loop(again, one_pass, init)
    best_theta, n_eval = bests.theta, bests.n_eval

    def finish(item, theta, evals):
        t = setup(item)
        opt = space.to_protocol(theta, t["protocol"])
        rate = t["analysis"].key_rate(t["link"], opt)
        return Optimum(opt, rate, theta, rate.rate > 0.0, evals)

    return split(jax.vmap(finish)(batch, split(best_theta), split(n_eval)))
