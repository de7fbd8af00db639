"""Maximize a key rate over the protocol's free parameters: one link, a batch of links, a sweep."""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from qmc._devices import resolve
from qmc._pytree import get_path
from qmc.optimize import continuation as _compiled
from qmc.optimize import host as _host
from qmc.optimize.minimize import solver_from
from qmc.optimize.result import Optimum
from qmc.validation import ValidationError

__all__ = ["maximize", "maximize_sweep", "default_space", "SOLVERS", "LOOPS", "check_problem"]


def default_space(analysis, protocol):
    """The parameters the protocol frees for ``analysis`` (:meth:`parameter_space` of the protocol)."""
    return protocol.parameter_space(analysis)


SOLVERS = ("bfgs", "lbfgs", "optax")  # the names documented; any optax transformation's name works too
LOOPS = ("auto", "host", "device")


def _solve(loop: str, transformation):
    """The driver that runs the loops: ``"host"`` (:func:`qmc.optimize.host.solve`) or
    ``"device"`` (:func:`qmc.optimize.continuation.solve`); ``"auto"``: host on a CPU (the least
    to compile), device on an accelerator (chains and lanes side by side in one program). A solver
    whose update takes the loss itself (optax's line searches) always runs on the device."""
    if loop not in LOOPS:
        raise ValueError(f"loop = {loop!r}: one of {', '.join(LOOPS)}")
    if loop == "auto":
        loop = "host" if jax.default_backend() == "cpu" else "device"
    return _host.solve if loop == "host" and _host.supports(transformation) else _compiled.solve


@functools.lru_cache(maxsize=64)
def _solver(solver: Any, options: tuple) -> tuple:
    """(transformation, driver options as a tuple): one object per (solver, options), so that a
    repeated call reuses the compiled program (the transformation is a static argument)."""
    transformation, driver = solver_from(solver, dict(options))
    return transformation, tuple(sorted(driver.items()))


def _solver_and_driver(solver: Any, options: Mapping[str, Any]) -> tuple:
    try:
        return _solver(solver, tuple(sorted(options.items())))
    except TypeError:  # an unhashable option value: no caching
        transformation, driver = solver_from(solver, dict(options))
        return transformation, tuple(sorted(driver.items()))


def check_problem(analysis, protocol, space):
    from qmc.validation import validate

    validate(analysis)
    validate(protocol)
    rules = analysis.protocol_checks(protocol) if hasattr(analysis, "protocol_checks") else []
    for rule in rules:  # the reparameterization keeps every rule that holds at the start
        message = rule.error(protocol, "protocol.")
        if message is not None:
            raise ValidationError(message)
    k = int(np.shape(protocol.intensities)[0])
    if space.size(k) == 0:
        raise ValueError("nothing to optimize: the space frees no parameter")


def _pool(protocol, space, n_pool, starts, seed, n_points):
    starts = space.starting_points(protocol, n_pool, seed) if starts is None else starts
    starts = np.asarray(starts, np.float64)
    if starts.ndim == 2:
        starts = np.broadcast_to(starts, (n_points,) + starts.shape)
    k = int(np.shape(protocol.intensities)[0])
    if starts.ndim != 3 or starts.shape[0] != n_points or starts.shape[2] != space.size(k):
        raise ValueError(f"starts: shape {starts.shape} does not match (S, {space.size(k)}) or "
                         f"({n_points}, S, {space.size(k)})")
    return starts


def maximize(
    analysis,
    link,
    protocol,
    space=None,
    *,
    n_starts: int = 4,
    n_pool: int = 32,
    starts: np.ndarray | None = None,
    seed: int = 0,
    batched: bool = False,
    validate: bool = True,
    solver: Any = "bfgs",
    loop: str = "auto",
    devices: int | None = None,
    **options: Any,
) -> Optimum:
    """Maximize ``analysis.key_rate(link, protocol).rate`` over the free protocol parameters.

    Args:
        analysis: any qmc analysis with ``key_rate(link, protocol)`` (asymptotic or finite-key).
        link: a :class:`qmc.Link`; with ``batched=True`` a Link whose every leaf has a leading
            batch axis P (e.g. built with ``jax.vmap``): one optimum per link, in one compiled call.
        protocol: the starting protocol; fixed parameters keep its values. It must satisfy the
            analysis' rules (e.g. key basis Z and mu_3 for Lim), which then hold at every iterate.
        space: what is free (default: the protocol's own, :func:`default_space`).
        n_starts: BFGS runs per link, side by side: from the given protocol and from the
            ``n_starts - 1`` best of ``n_pool`` spread-out starts (the space's ``starting_points``) by
            loss value, unless ``starts`` ((S, d) or (P, S, d)) is given.
        n_pool: starts screened (values only) for the lanes after the first.
        seed: seed of the spread-out starts.
        validate: check the analysis and the protocol first (concrete values only).
        solver: an optax transformation, or its name: ``"bfgs"`` (default: qmc's dense BFGS with
            a backtracking line search, :func:`qmc.optimize.bfgs.bfgs`), ``"lbfgs"`` (``optax.lbfgs``
            with its zoom line search), or any transformation of optax by name (``"adam"`` with
            ``learning_rate=...``); the same loss, reparameterization and starts for all.
        loop: where the loops run: ``"host"`` (Python around one compiled loss and gradient:
            the least to compile, a first answer in seconds; the CPU's default), ``"device"``
            (lanes and points side by side in one compiled program: the accelerators' default),
            or ``"auto"``. The same starts and rules either way.
        devices: local devices the device loop splits the links (its chains) over: ``None`` for
            all of them, or a count (the first ones); the optima are the same bit for bit. The
            host loop runs one point at a time on one device.
        **options: the solver's options (:func:`qmc.optimize.minimize.solver_from`: for
            ``"bfgs"`` ``max_iter``, ``gtol``, ``ftol``, ``dtol``, ``patience``, ...; for a named
            optax transformation its arguments) and the driver's (``max_eval``, ``gtol``).

    Returns:
        :class:`Optimum` (leaves with a leading axis P when ``batched``).

    Examples:
        >>> opt = maximize(qmc.analysis.FiniteLim2014(block_size=1e9), link, protocol)
        >>> float(opt.rate.rate), opt.parameters()
    """
    used = resolve(devices)  # a bad count fails here, before anything compiles
    space = protocol.parameter_space(analysis) if space is None else space
    transformation, driver = _solver_and_driver(solver, options)
    if validate:
        check_problem(analysis, protocol, space)
    links = link if batched else jax.tree_util.tree_map(lambda x: np.asarray(x)[None], link)
    n_points = int(jax.tree_util.tree_leaves(links)[0].shape[0])
    pool = _pool(protocol, space, max(int(n_pool), int(n_starts)) if n_starts > 1 else 1, starts, seed, n_points)
    tree = {"link": None, "analysis": analysis, "protocol": protocol}
    lanes = max(int(n_starts), 1)
    if pool.shape[1] < lanes:
        raise ValueError(f"starts: {pool.shape[1]} given, n_starts = {lanes} needs at least as many")
    out = _solve(loop, transformation)(tree, links, pool, None, space, transformation, driver, lanes, 1, 0,
                                       devices=used)
    if batched:
        return out
    # the one point, on the device as it is (nothing to compile)
    return jax.tree_util.tree_map(lambda x: jax.device_put(np.asarray(x)[0]), out)


def maximize_sweep(
    analysis,
    link,
    protocol,
    points: Mapping[str, Sequence[float]],
    space=None,
    *,
    n_starts: int = 2,
    n_pool: int = 32,
    starts: np.ndarray | None = None,
    seed: int = 0,
    chain_length: int | None = None,
    explore_every: int = 8,
    continuation: int = 4,
    validate: bool = True,
    solver: Any = "bfgs",
    loop: str = "auto",
    devices: int | None = None,
    **options: Any,
) -> Optimum:
    """Optimal protocol parameters at every point of a sweep, in one compiled call.

    Continuation: the points are cut into chains of ``chain_length`` consecutive points; along a
    chain every point starts one BFGS run (lane 0) from the previous point's optimum and
    ``n_starts - 1`` more from spread-out starts that rotate through a pool of ``n_pool``; the
    chains run side by side (vmap). Then up to ``continuation`` passes, alternately backward and
    forward, restart each point from its neighbours' optima wherever that beats its own.

    Args:
        analysis, link, protocol, space, seed, validate: as :func:`maximize`.
        points: ``{path: values}`` with paths into ``{"link": link, "analysis": analysis,
            "protocol": protocol}`` (``"link.channel.length_km"``, ``"analysis.block_size"``, or
            a fixed parameter such as ``"protocol.intensities.2"``) and values of one common
            length P: the sweep is the path through these points in the given order (zipped, not
            a product: use ``qmc.sweep.grid(...).points()`` columns for a product).
        n_starts: BFGS runs per point, side by side (the warm start and ``n_starts - 1`` others).
        n_pool: starts screened by loss value for the exploring lanes (the first is the user's
            protocol, the space's ``starting_points``), unless
            ``starts`` ((S, d), or (P, S, d) e.g. the optima of an earlier sweep) is given.
        chain_length: points per chain. None: P / 2 on a CPU (two warm-started chains side by
            side: few evaluations, and a CPU pays for every lane it computes, but two chains cost
            about what one does), 1 on an accelerator (every point at once: one vmapped step costs
            about what one point costs). Lanes run one after the other along chains, side by side
            when chain_length is 1.
        explore_every: along a chain, the spread-out starts run at every ``explore_every``-th
            point only (and at the chain's first): the warm start carries the optimum, the others
            look for a better basin, and the continuation passes spread what they find.
        continuation: at most this many passes of restarts from the neighbours' optima (0: none;
            a single point has none).
        solver, loop, devices, **options: as :func:`maximize` (with a solver other than qmc's BFGS a
            warm start carries the optimum only, no curvature); the device loop splits the chains
            over the devices.

    Returns:
        :class:`Optimum` with leading axis P.

    Examples:
        >>> opt = maximize_sweep(qmc.analysis.FiniteLim2014(block_size=1e9), link, protocol,
        ...                      {"link.channel.length_km": np.linspace(0, 200, 100)})
        >>> opt.rate.rate.shape
        (100,)
    """
    used = resolve(devices)  # a bad count fails here, before anything compiles
    space = protocol.parameter_space(analysis) if space is None else space
    transformation, driver = _solver_and_driver(solver, options)
    if validate:
        check_problem(analysis, protocol, space)
    tree = {"link": link, "analysis": analysis, "protocol": protocol}
    paths = tuple(points)
    for path in paths:
        get_path(tree, path)  # a typo in a path fails here, before compiling
    columns = [np.atleast_1d(np.asarray(points[p], np.float64)) for p in paths]
    if not columns or len({c.shape for c in columns}) != 1 or columns[0].ndim != 1:
        raise ValueError("points: give one 1-d array of values per path, all of the same length")
    grid = np.stack(columns, axis=1)
    n_points = len(grid)
    lanes = max(int(n_starts), 1)
    # one lane never screens the pool: only the user's start is used
    pool = _pool(protocol, space, max(int(n_pool), lanes) if lanes > 1 else 1, starts, seed, n_points)
    if pool.shape[1] < lanes:
        raise ValueError(f"starts: {pool.shape[1]} given, n_starts = {lanes} needs at least as many")
    if chain_length is None:  # CPU: two chains (half the sequential steps, no lockstep cost yet)
        chain_length = -(-n_points // 2) if jax.default_backend() == "cpu" else 1
    m = max(1, min(int(chain_length), n_points))
    continuation = int(continuation) if n_points > 1 else 0  # one point: no neighbours (less to compile)
    return _solve(loop, transformation)(tree, np.asarray(grid), pool, paths, space, transformation, driver, lanes, m, continuation,
                 max(int(explore_every), 1), m > 1 and lanes > 1, devices=used)
