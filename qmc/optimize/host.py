"""The optimizer's host driver: chains and passes in Python around one compiled loss.

:func:`solve` finds the same optima as the compiled driver (:func:`qmc.optimize.continuation.solve`:
the same lanes, starts, screening, warm starts and continuation passes, :mod:`qmc.optimize.chains`),
but only the loss is compiled: one program returns the loss, its gradient and the analysis'
output at one point (:func:`qmc.optimize.objective.value_grad_aux`), and two small ones start and
advance a solver run (:func:`qmc.optimize.minimize.start`, :func:`qmc.optimize.minimize.advance`).
Python loops over chains, steps, lanes and the solver's iterations, one point at a time.

Why: XLA compiles a program in a time that grows with its size, and the compiled driver's
program holds the loss several times over (the solver's loop, the screening, the continuation
check, the final rate) inside vmaps and loops. On a CPU a first answer then waits mostly for the
compiler, while the loss runs in a fraction of a millisecond; a run that is over costs nothing
here (no lockstep). The point's numbers (link, analysis, protocol) are arguments of the compiled
programs: another link, length or block size reuses them.

Solvers whose update takes the loss itself (optax's line searches, ``value_fn``) need the loss in
their update's program; the drivers give those to the compiled driver.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from qmc._compile import jit
from qmc.optimize import chains
from qmc.optimize.bfgs import BFGSState, warm_start
from qmc.optimize.minimize import advance, result, start, uses_value_fn
from qmc.optimize.objective import loss, objective, point_problem, value_grad_aux
from qmc.optimize.result import Optimum
from qmc.sweep import padded_chunks, padded_index

__all__ = ["solve", "supports"]


def supports(solver) -> bool:
    """Whether the host driver runs ``solver`` (its update needs no ``value_fn``)."""
    return not uses_value_fn(jax.eval_shape(solver.init, jax.ShapeDtypeStruct((1,), jnp.float64)))


def _value_grad_aux(tree, item, theta, paths, space):
    """(loss, gradient, (protocol, analysis output)) at ``theta`` for the point ``item``."""
    t = point_problem(tree, item, paths)

    def fun(x):
        protocol = space.to_protocol(x, t["protocol"])
        out = t["analysis"].key_rate(t["link"], protocol)
        return loss(out), (protocol, out)

    return value_grad_aux(fun, theta.shape[0])(theta)


@functools.partial(jit, static_argnames=("solver",))
def _start(x0, h0, fresh0, solver):
    return start(solver, x0, warm_start(solver.init(x0), h0, fresh0))


@functools.partial(jit, static_argnames=("paths", "space", "solver", "max_eval", "gtol"))
def _step(tree, item, run, cutoff, paths, space, solver, max_eval, gtol):
    """Evaluate at ``run.x`` and advance the run: (the run, the loss at ``run.x``, (protocol,
    analysis output) there). The one program with the loss in it: the screening and the final
    outputs call it too."""
    f, g, aux = _value_grad_aux(tree, item, run.x, paths, space)
    return advance(solver, run, f, g, max_eval=max_eval, gtol=gtol, cutoff=cutoff), f, aux


@functools.partial(jit, static_argnames=("paths", "space"))
def _losses(tree, items, thetas, paths, space):
    """The loss at each of a chunk of (point, theta) pairs, values only (screening)."""
    def one(item, theta):
        t = point_problem(tree, item, paths)
        return objective(theta, t["link"], t["protocol"], t["analysis"], space)

    return jax.vmap(one)(items, thetas)


SCREEN_CHUNK = 32    # (point, start) pairs per call of the screening program
SCREEN_SWITCH = 512  # screening values taken from the step program before that one is compiled
_screened: dict = {}  # screening values taken so far in this process, per problem structure


class _Problem:
    """The points' compiled loss and solver step, called from Python.

    Screening values (the loss alone at many starts) come from the step program at first; once
    ``SCREEN_SWITCH`` of them have been taken in this process for problems of one structure (large
    sweeps, or many calls), a values-only program vmapped over ``SCREEN_CHUNK`` pairs is compiled
    and takes over. Its compilation costs about what the step program spends on that many values
    (a rent-or-buy choice: never more than about twice the better one in hindsight).
    """

    def __init__(self, tree, batch, paths, space, solver, driver):
        self.tree = jax.device_put(tree)  # on the device once: no transfer per call
        self.paths, self.space, self.solver, self.driver = paths, space, solver, driver
        self.batch = jax.tree_util.tree_map(np.asarray, batch)
        n = len(jax.tree_util.tree_leaves(self.batch)[0])
        self.items = [jax.device_put(jax.tree_util.tree_map(lambda x: x[i], self.batch)) for i in range(n)]
        self.key = (paths, space, jax.tree_util.tree_structure((tree, self.items[0])))

    def start(self, x0, h0=None, fresh0=True):
        x0 = np.asarray(x0, np.float64)
        if h0 is None:
            h0 = np.eye(x0.shape[0])
        return _start(x0, np.asarray(h0, np.float64), np.asarray(fresh0), self.solver)

    def step(self, i, run, cutoff=np.inf):
        return _step(self.tree, self.items[i], run, np.asarray(cutoff, np.float64), self.paths, self.space,
                     self.solver, **self.driver)

    def at(self, i, theta):
        """(loss, (protocol, analysis output)) at ``theta``."""
        _, f, aux = self.step(i, self.start(theta))
        return f, aux

    def losses(self, points, thetas) -> np.ndarray:
        """The loss at every (``points[k]``, ``thetas[k]``)."""
        points, thetas = np.asarray(points), np.asarray(thetas, np.float64)
        if _screened.get(self.key, 0) < SCREEN_SWITCH:
            _screened[self.key] = _screened.get(self.key, 0) + len(points)
            return np.array([float(self.at(i, t)[0]) for i, t in zip(points, thetas)])
        out = np.empty(len(points))
        for index, rows in padded_chunks(len(points), SCREEN_CHUNK):
            items = jax.tree_util.tree_map(lambda x: x[points[rows]], self.batch)
            values = _losses(self.tree, items, thetas[rows], self.paths, self.space)
            out[index] = np.asarray(values)[: index.stop - index.start]
        return out


def _run(problem, i, x0, h0, fresh0, cutoff):
    """One solver run at point ``i``: (x, f, n_eval, h)."""
    run = problem.start(x0, h0, fresh0)
    while True:
        run, _, _ = problem.step(i, run, cutoff)
        if bool(run.stop):
            break
    if isinstance(run.state, BFGSState):  # its accepted point (read here: no operation to compile)
        s = run.state
        return np.asarray(s.x), float(s.f), int(run.n_eval), np.asarray(s.h)
    out = result(run)
    return np.asarray(out.x), float(out.f), int(out.n_eval), np.asarray(h0)  # no curvature kept


def _lanes(problem, idx, starts, h0, fresh0, cutoff, sequential_lanes):
    """Every (chain, lane) run of one step: (theta, f, n_eval, h) with leading axes (C, L)."""
    theta, h = np.array(starts, copy=True), np.array(h0, copy=True)
    n_chains, lanes = cutoff.shape
    f = np.full((n_chains, lanes), np.inf)
    n_eval = np.zeros((n_chains, lanes), np.int32)
    for lane in range(lanes):
        # As the compiled driver's lanes one after the other: a lane that no chain runs is skipped.
        if sequential_lanes and not np.any(cutoff[:, lane] > -np.inf):
            continue
        for c in range(n_chains):
            theta[c, lane], f[c, lane], n_eval[c, lane], h[c, lane] = _run(
                problem, idx[c], starts[c, lane], h0[c, lane], fresh0[c, lane], cutoff[c, lane])
    return theta, f, n_eval, h


def solve(tree, batch, pool, paths, space, solver, driver, lanes, chain_length, continuation, explore_every=1,
          sequential_lanes=False, devices=None):
    """Optima of P problems, with the arguments and the result of
    :func:`qmc.optimize.continuation.solve` (see there), the loops run from Python, on one
    device (``devices`` is not used: one point is evaluated at a time)."""
    del devices
    driver = {"max_eval": 160, "gtol": 1e-7, **dict(driver)}
    pool = np.asarray(pool, np.float64)
    n_points, n_pool, d = pool.shape
    m = chain_length
    n_chains = -(-n_points // m)
    rows = padded_index(0, n_points, n_chains * m)  # the last point repeated to fill the last chain
    batch = jax.tree_util.tree_map(lambda x: np.asarray(x)[rows], batch)
    pool = pool[rows]
    geo = chains.Geometry(n_chains, m, lanes, explore_every)
    problem = _Problem(tree, batch, paths, space, solver, driver)

    bests = chains.initial(pool[:, 0], d)
    p = 0
    while True:
        for j in range(m):
            at = chains.at_step(geo, j, p)
            starts = pool[at.idx]  # (C, S, d)
            explore = chains.exploring(geo, bests, at)
            scores = None
            if lanes > 1:
                scores = np.zeros((n_chains, n_pool))
                if at.first_pass and np.any(explore[:, 1:]):
                    points = np.repeat(at.idx, n_pool)
                    scores = problem.losses(points, starts.reshape(-1, d)).reshape(n_chains, n_pool)
            lane_starts, h0, fresh0, cutoff = chains.lane_problems(geo, bests, at, starts, scores, explore)
            theta, f, n_eval, h = _lanes(problem, at.idx, lane_starts, h0, fresh0, cutoff, sequential_lanes)
            bests = chains.keep_best(bests, at, theta, f, n_eval, h)
        worth = False
        if continuation and p < continuation:
            neighbours = chains.neighbour_starts(geo, bests)  # (T, 2, d)
            points = np.repeat(np.arange(geo.total), 2)
            values = problem.losses(points, neighbours.reshape(-1, d)).reshape(geo.total, 2)
            worth = bool(chains.worth_another_pass(geo, bests, values, p == 0))
        p += 1
        if not worth:
            break

    # stacked on the host, then placed on the device as they are (no operation to compile)
    outputs = [problem.at(i, bests.theta[i])[1] for i in range(n_points)]
    # (device arrays before the dataclasses see them: they would turn numpy leaves into float64)
    protocol, rate = jax.tree_util.tree_map(lambda *x: jax.device_put(np.stack([np.asarray(v) for v in x])),
                                            *outputs)
    found = np.asarray(rate.rate) > 0.0
    return Optimum(protocol, rate, *jax.device_put((bests.theta[:n_points], found, bests.n_eval[:n_points])))
