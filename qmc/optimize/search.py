"""A derivative-free random search over a protocol's parameter space, batched over points.

Every point gets a batch of candidates drawn by the space over the region where physical optima
lie (``space.sample``), as vectors theta that the same map as the gradient optimizer's takes onto
feasible protocols (``space.to_protocol``); the best few are refined by Gaussian steps of
shrinking width in theta (scaled by ``space.box``), all in one ``jit(vmap(vmap(...)))`` per chunk
of points. It is slower
than :func:`qmc.optimize.maximize_sweep` and less precise, and serves as its cross-check and as a
fallback where the loss gives the gradient optimizer no direction (a key region that is a thin
shell at the edge of a bound's domain).
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from qmc._compile import jit
from qmc._pytree import get_path, replace_path
from qmc.analysis.keyrate import score
from qmc.optimize.result import Optimum
from qmc.sweep import padded_chunks

__all__ = ["random_search"]

_SIGMA0, _SHRINK = 0.1, 0.6  # refinement step, in units of the box: _SIGMA0 * _SHRINK**(round - 1)


def _setup(tree, paths, values):
    for i, path in enumerate(paths):
        tree = replace_path(tree, path, values[i])
    return tree


@functools.partial(jit, static_argnames=("paths", "space"))
def _evaluate(tree, paths, space, points, theta):
    """The analysis' output for candidates theta (P, C, d) at points (P, n_paths): leaves (P, C)."""

    def at_point(values, candidates):
        t = _setup(tree, paths, values)
        return jax.vmap(lambda th: t["analysis"].key_rate(t["link"], space.to_protocol(th, t["protocol"])))(candidates)

    return jax.vmap(at_point)(points, theta)


def _round_keys(key, index, r):
    # Point i, round r draws from fold_in(fold_in(key, index[i]), r): points are independent.
    return jax.vmap(lambda i: jr.fold_in(jr.fold_in(key, i), r))(index)


@functools.partial(jax.jit, static_argnames=("space", "n_candidates"))
def _initial(key, index, space, protocol, warm, n_candidates: int):
    """Round 0: candidates drawn by the space (``space.sample``) (P, C, d); ``warm`` (P, d), if
    given, is candidate 0."""
    cand = jax.vmap(lambda k: space.sample(k, protocol, n_candidates))(_round_keys(key, index, 0))
    return cand if warm is None else cand.at[:, 0].set(warm)


@functools.partial(jax.jit, static_argnames=("n_candidates",))
def _refined(key, index, r, lo, hi, parents, n_candidates: int):
    """Round r >= 1: Gaussian steps of width _SIGMA0 * _SHRINK^(r-1) (in units of the box) around
    each of the K best candidates so far, ``parents`` (P, K, d), kept inside the box. The parents
    themselves are the first K candidates (the best rate never decreases from round to round)."""
    n_parents, d = parents.shape[1], parents.shape[2]
    noise = jax.vmap(lambda k: jr.normal(k, (n_candidates, d)))(_round_keys(key, index, r))
    sigma = _SIGMA0 * _SHRINK ** (r - 1.0)
    owner = jnp.arange(n_candidates) % n_parents  # child j perturbs parent j mod K
    width = (hi - lo)[None, None, :]
    cand = jnp.clip(parents[:, owner, :] + sigma * width * noise, lo[None, None, :], hi[None, None, :])
    return cand.at[:, :n_parents].set(parents)


@functools.partial(jax.jit, static_argnames=("n_parents",))
def _pick(cand, out, n_parents: int):
    """The ``n_parents`` best candidates of each point by :func:`qmc.analysis.keyrate.score`,
    best first (P, K, d), and the output of the best (ties: the lowest index, the incumbent)."""
    _, order = jax.lax.top_k(score(out), n_parents)  # (P, K), stable for ties
    parents = jnp.take_along_axis(cand, order[:, :, None], axis=1)
    best = jax.tree_util.tree_map(lambda x: jnp.take_along_axis(x, order[:, :1], axis=1)[:, 0], out)
    return parents, best


@functools.partial(jit, static_argnames=("paths", "space"))
def _finish(tree, paths, space, points, theta, rate):
    protocols = jax.vmap(lambda v, th: space.to_protocol(th, _setup(tree, paths, v)["protocol"]))(points, theta)
    return Optimum(protocols, rate, theta, rate.rate > 0.0, jnp.zeros(theta.shape[0], jnp.int32))


def random_search(
    analysis,
    link,
    protocol,
    points: Mapping[str, Sequence[float]],
    space=None,
    *,
    n_candidates: int = 2048,
    n_rounds: int = 8,
    n_parents: int = 8,
    chunk: int = 16,
    seed: int = 0,
    initial: np.ndarray | None = None,
) -> Optimum:
    """Maximize the key rate at every point by random search over the protocol's free parameters.

    Args:
        analysis, link, protocol: as :func:`qmc.optimize.maximize_sweep` (fixed parameters keep
            the protocol's values).
        points: ``{path: values}`` into ``{"link", "analysis", "protocol"}``, zipped, common length P.
        space: what is free (default: the protocol's :meth:`parameter_space` for the analysis).
        n_candidates: candidates per point and round (round 0 uniform in the box, then refinements).
        n_rounds: refinement rounds after the uniform round.
        n_parents: candidates kept and refined in each round (several basins are followed).
        chunk: points per compiled call (the last chunk is padded).
        seed: seed of the candidate draws (one stream per point index: points are independent).
        initial: optional (P, d) theta added as a candidate at every point (a warm start).

    Returns:
        :class:`qmc.optimize.Optimum` with leading axis P (``n_eval`` 0: not counted).
    """
    space = protocol.parameter_space(analysis) if space is None else space
    tree = {"link": link, "analysis": analysis, "protocol": protocol}
    paths = tuple(points)
    for path in paths:
        get_path(tree, path)  # a typo in a path fails here, before compiling
    grid = np.stack([np.atleast_1d(np.asarray(points[p], np.float64)) for p in paths], axis=1)
    n_points = len(grid)
    lo, hi = (jnp.asarray(b) for b in space.box(int(np.shape(protocol.intensities)[0])))
    key = jr.key(seed)
    warm_all = None if initial is None else np.asarray(initial, np.float64)
    n_keep = min(int(n_parents), int(n_candidates))
    parts = []
    for index, padded in padded_chunks(n_points, max(1, min(int(chunk), n_points))):
        idx = jnp.asarray(padded)
        values = jnp.asarray(grid[padded])
        warm = None if warm_all is None else jnp.asarray(warm_all[padded])
        parents = best = None
        for r in range(int(n_rounds) + 1):
            if r == 0:
                cand = _initial(key, idx, space, protocol, warm, int(n_candidates))
            else:
                cand = _refined(key, idx, jnp.asarray(r), lo, hi, parents, int(n_candidates))
            parents, best = _pick(cand, _evaluate(tree, paths, space, values, cand), n_keep)
        out = _finish(tree, paths, space, values, parents[:, 0], best)
        parts.append(jax.tree_util.tree_map(lambda x, n=index.stop - index.start: np.asarray(x)[:n], out))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)
