"""Optimized finite-key rates at many points, and the longest fiber with a key: the engine of the
finite-key studies.

Optimization (``method``). ``"gradient"`` (the default): :func:`maximize_points`, which calls
:func:`qmc.optimize.maximize_sweep` (BFGS on unconstrained parameters with forward-mode
gradients, in one compiled call per analysis and system model). The objective is
:class:`qmc.analysis.ModelAnalysis`, the analysis evaluated on the expected observations of the
system model (:func:`qmc.engines.lim2014.system_model`), so ``model="lim2014"`` (afterpulsing) is
optimized exactly as it is reported. Free: all intensities but the weakest (mu3 stays fixed;
Rusca's decoy mu2 is free), the intensity probabilities and p_z (:func:`study_space`). Points
along a curve form a chain: each point starts from the previous point's optimum (continuation)
and from the best of 32 spread-out starts, then restarts from the neighbours' optima; where the
phase-error bound is undefined at the optimum (n_X >~ 1e13 with eps_sec = kappa l), the random
search is run as well and the better result kept. ``"search"``: the derivative-free random search
of :func:`qmc.optimize.random_search` on the same objective and parameter space
(:func:`optimize_points`), a cross-check and a fallback.

Maximum distance (:func:`max_distance_km`): found on a grid of lengths, then refined between the
last length with a key and the next one by a multi-section search with the same compiled program
(gradient), or by bisection (search).

Asymptotic rates have no interior optimum (they rise as p_z -> 1, the decoy probabilities -> 0 and
mu2 -> mu3), so there the optimizers report the value at their floors.
"""

from __future__ import annotations

import types
from typing import Any, Sequence

import numpy as np

from qmc import optimize
from qmc.analysis.finite import FINITE, PHASE_UNDEFINED
from qmc.analysis.model import ModelAnalysis
from qmc.channels import Fiber
from qmc.engines.lim2014 import MODELS, system_model
from qmc.link import Link
from qmc.presets import LIM2014, lim2014_analysis
from qmc.protocols import DecoyBB84, DecoySpace
from qmc.validation import Range, ValidationError, validate

__all__ = [
    "METHODS", "FIELDS", "study_space", "start_protocol", "maximize_points", "optimize_points", "max_distance_km",
    "optimize_at", "check_method", "check_finite_inputs",
]

METHODS = ("gradient", "search")  # the studies' optimizers: qmc.optimize.maximize_sweep, or the random search

# The fields of FiniteKeyRate a study keeps.
FIELDS = ("rate", "reason", "key_length", "n_pulses", "qber", "phase_error", "eps_sec")


def study_space(analysis) -> DecoySpace:
    """What the studies optimize: every intensity but the weakest (mu3 fixed; both intensities of a
    one-decoy protocol), the intensity probabilities and p_z, for finite and asymptotic analyses
    alike."""
    k = type(analysis).n_intensities
    return DecoySpace("all" if k == 2 else "decoys", probabilities=True, p_z=True)


def start_protocol(n_intensities: int, mu3: float = LIM2014["mu3"]) -> DecoyBB84:
    """The optimizers' starting protocol (key basis Z): mu = (0.5, 0.1, mu3), p = (0.7, 0.2, 0.1),
    p_z = 0.9 for two decoys; mu = (0.5, 0.1), p = (0.7, 0.3), p_z = 0.9 for one. Spread-out starts
    and continuation along a curve take it from there."""
    if n_intensities == 3:
        return DecoyBB84(intensities=(0.5, 0.1, float(mu3)), probabilities=(0.7, 0.2, 0.1), p_z=0.9, key_basis="Z")
    return DecoyBB84(intensities=(0.5, 0.1), probabilities=(0.7, 0.3), p_z=0.9, key_basis="Z")


def _problem(analysis, link, lengths_km, block_sizes, model, p_afterpulse, mu3):
    """The objective, the start, the space and the sweep points of the optimizers."""
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.broadcast_to(np.asarray(block_sizes, np.float64), lengths.shape).copy()
    target = ModelAnalysis(analysis, system_model(model, p_afterpulse))
    points = {"link.channel.length_km": lengths}
    if type(analysis).finite:
        points["analysis.analysis.block_size"] = blocks
    return target, start_protocol(type(analysis).n_intensities, mu3), study_space(analysis), points, lengths, blocks


def _best(opt) -> types.SimpleNamespace:
    """The fields a study keeps of an :class:`qmc.optimize.Optimum` (numpy arrays (P,))."""
    out = {name: np.array(getattr(opt.rate, name)) for name in FIELDS}
    params = {k: np.array(v) for k, v in opt.parameters().items()}
    return types.SimpleNamespace(**out, found=np.array(opt.found), n_eval=np.asarray(opt.n_eval), parameters=params)


def optimize_points(
    analysis,
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    mu3: float = LIM2014["mu3"],
    n_candidates: int = 2048,
    n_rounds: int = 8,
    n_parents: int = 8,
    chunk: int = 16,
    seed: int = 0,
    initial: np.ndarray | None = None,
) -> tuple[types.SimpleNamespace, np.ndarray]:
    """Maximize the key rate at each point by the derivative-free random search
    (:func:`qmc.optimize.random_search`) on the same objective, start and space as
    :func:`maximize_points`.

    Args:
        analysis: a finite-key or asymptotic analysis of :mod:`qmc.analysis.finite` (its
            ``block_size`` is replaced by each point's).
        link: the link; its channel must be a :class:`qmc.Fiber` (``length_km`` is set per point).
        lengths_km, block_sizes: the points, same length P (block sizes ignored by asymptotic
            analyses).
        model, p_afterpulse: the system model (:func:`qmc.engines.lim2014.system_model`).
        mu3: the fixed weakest intensity of two-decoy protocols (Lim: 2e-4).
        n_candidates, n_rounds, n_parents, chunk, seed: :func:`qmc.optimize.random_search`.
        initial: optional (P, d) theta added as a candidate (a warm start).

    Returns:
        (best, theta): as :func:`maximize_points`.
    """
    target, protocol, space, points, _, _ = _problem(analysis, link, lengths_km, block_sizes, model, p_afterpulse, mu3)
    opt = optimize.random_search(target, link, protocol, points, space, n_candidates=n_candidates, n_rounds=n_rounds,
                                 n_parents=n_parents, chunk=chunk, seed=seed, initial=initial)
    return _best(opt), np.array(opt.theta)


def maximize_points(
    analysis,
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    mu3: float = LIM2014["mu3"],
    chain_length: int | None = None,
    n_starts: int = 2,
    n_pool: int = 32,
    continuation: int = 4,
    explore_every: int = 1,
    seed: int = 0,
    initial: np.ndarray | None = None,
    fallback: bool = True,
    solver="bfgs",
    solver_options=None,
    loop: str = "auto",
) -> tuple[types.SimpleNamespace, np.ndarray]:
    """Maximize the key rate over intensities, their probabilities and p_z at each point, by
    gradient (:func:`qmc.optimize.maximize_sweep` on :class:`qmc.analysis.ModelAnalysis`, one compiled call).

    The points are cut into chains of ``chain_length`` consecutive points (e.g. one chain per
    block size along increasing lengths); along a chain every point is warm-started from the
    previous optimum, and (``explore_every=1``, unlike the optimizer's default of 8) every point
    also runs the best of the spread-out starts: near the edge of the key region, or where the
    block size changes by a decade from one point to the next, the warm start alone can miss the
    key (seen at n_X = 1e4), while the extra lane costs a fraction of a second per call. A
    compiled program is reused by every call with the same analysis class, ``model``, number of
    points, ``chain_length`` and optimizer settings (lengths, block sizes, ``p_afterpulse``,
    ``mu3`` and ``initial`` are traced values).

    Args:
        analysis: a finite-key or asymptotic analysis of :mod:`qmc.analysis.finite` (its
            ``block_size`` is replaced by each point's).
        link: the link; its channel must be a :class:`qmc.Fiber` (``length_km`` is set per point).
        lengths_km, block_sizes: the points, same length P (block sizes ignored by asymptotic
            analyses).
        model, p_afterpulse: the system model (:func:`qmc.engines.lim2014.system_model`).
        mu3: the fixed weakest intensity of two-decoy protocols (Lim: 2e-4).
        chain_length: points per chain (default: the optimizer's, P / 2 on a CPU).
        n_starts, n_pool, continuation, explore_every, seed: :func:`qmc.optimize.maximize_sweep`.
        initial: optional (P, d) unconstrained parameters (a previous call's ``theta``): the first
            start of every point, replacing :func:`start_protocol`.
        fallback: where the optimum's reason is "phase-error bound undefined" (Lim's eps_sec =
            kappa l at n_X >~ 1e13: the key region is a thin shell at the edge of the bound's
            domain, and the loss there gives the optimizer no direction), also run the random
            search (:func:`optimize_points`) and keep the better result. Elsewhere (no key beyond
            the maximum distance, or too small a block) nothing is added.
        solver, solver_options: the gradient optimizer's solver (:func:`qmc.optimize.solver_from`).
        loop: where the optimizer's loops run (:func:`qmc.optimize.maximize`).

    Returns:
        (best, theta): ``best`` has, per point, the fields rate, reason, key_length, n_pulses,
        qber, phase_error, eps_sec of its :class:`FiniteKeyRate`, ``found``, ``n_eval`` and
        ``parameters`` (dict of arrays mu1.., p_mu1.., p_z), numpy arrays (P,); ``theta`` (P, d).
    """
    target, protocol, space, points, lengths, blocks = _problem(analysis, link, lengths_km, block_sizes, model,
                                                                p_afterpulse, mu3)
    n_points = len(lengths)
    # The same pool as maximize_sweep's own (one lane: the start alone), so that warm-started
    # calls share its compiled program.
    lanes = max(int(n_starts), 1)
    pool = space.starting_points(protocol, max(int(n_pool), lanes) if lanes > 1 else 1, seed)
    starts = np.repeat(pool[None], n_points, axis=0)
    if initial is not None:
        initial = np.asarray(initial, np.float64)
        ok = np.all(np.isfinite(initial), axis=1)
        starts[ok, 0] = initial[ok]
    opt = optimize.maximize_sweep(
        target, link, protocol, points, space, n_starts=lanes, n_pool=n_pool, starts=starts, seed=seed,
        chain_length=chain_length, explore_every=explore_every, continuation=continuation, solver=solver,
        loop=loop, **dict(solver_options or {}))
    best, theta = _best(opt), np.array(opt.theta)
    redo = np.flatnonzero(best.reason == PHASE_UNDEFINED) if fallback else np.zeros(0, int)
    if redo.size:
        # The random search where the phase-error bound is near the edge of its domain (eps_sec =
        # kappa l -> 1e-2 at n_X >~ 1e13): there the gradient optimizer's loss gives no direction.
        alt, alt_theta = optimize_points(analysis, link, lengths[redo], blocks[redo], model=model,
                                         p_afterpulse=p_afterpulse, mu3=mu3, seed=seed, chunk=len(redo))
        for j, i in enumerate(redo):
            if alt.rate[j] > best.rate[i]:
                for name in FIELDS:
                    getattr(best, name)[i] = getattr(alt, name)[j]
                for k in best.parameters:
                    best.parameters[k][i] = alt.parameters[k][j]
                theta[i] = alt_theta[j]
                best.found[i] = True
    return best, theta


def _edges(analysis, link, blocks, lengths, rate, theta, hi_km, tol_km, kw):
    """Longest fiber with a key per block: multi-section between the last length of the grid with
    a key and the next one, m candidates per block and step (m = the grid's lengths per block, so
    every step reuses the grid's compiled program), warm-started from the last optimum with a key.

    ``rate`` (B, m) and ``theta`` (B, m, d) are the grid's optima at ``lengths`` (m,), ascending.
    A block without any key on the grid is searched on [0, lengths[0]] (none there if the grid
    starts at 0). Returns (B,) lengths in km (0 where no key was found).
    """
    n_blocks, m = rate.shape
    has = rate > 0
    lo, hi = np.zeros(n_blocks), np.full(n_blocks, float(hi_km))
    warm = theta[:, 0].copy()
    keyed = has.any(axis=1)
    for b in range(n_blocks):
        if keyed[b]:
            i = int(np.flatnonzero(has[b])[-1])
            lo[b], warm[b] = lengths[i], theta[b, i]
            if i + 1 < m:
                hi[b] = lengths[i + 1]
        else:
            hi[b] = lengths[0]
    frac = np.arange(1, m + 1) / (m + 1.0)
    while np.any(hi - lo > tol_km):
        cand = lo[:, None] + (hi - lo)[:, None] * frac  # (B, m)
        best, th = maximize_points(analysis, link, cand.ravel(), np.repeat(blocks, m), chain_length=m,
                                   initial=np.repeat(warm, m, axis=0), **kw)
        ok = best.rate.reshape(n_blocks, m) > 0
        th = th.reshape(n_blocks, m, -1)
        for b in range(n_blocks):
            if hi[b] - lo[b] <= tol_km:
                continue
            if ok[b].any():
                j = int(np.flatnonzero(ok[b])[-1])
                lo[b], warm[b], keyed[b] = cand[b, j], th[b, j], True
                if j + 1 < m:
                    hi[b] = cand[b, j + 1]
            else:
                hi[b] = cand[b, 0]
    return np.where(keyed, lo, 0.0)


def check_finite_inputs(link, analyses, lengths, blocks, model, p_afterpulse):
    """Raise :class:`qmc.ValidationError` for bad inputs of a finite-key study, before compiling:
    lengths, block sizes, the system model and its afterpulse probability, the link (a fiber) and
    the analyses (finite-key ones, valid)."""
    for message in (
        Range("length_km", 0.0).error(types.SimpleNamespace(length_km=lengths), "sweep."),
        Range("block_size", 0.0, lo_open=True).error(types.SimpleNamespace(block_size=blocks), "sweep."),
        Range("p_afterpulse", 0.0, 1.0, hi_open=True).error(
            types.SimpleNamespace(p_afterpulse=np.atleast_1d(p_afterpulse)), "finite."),
    ):
        if message:
            raise ValidationError(message)
    if model not in MODELS:
        raise ValidationError(f"finite.model = {model}: must be one of {', '.join(MODELS)}")
    if model == "exact" and np.any(np.asarray(p_afterpulse) != 0.0):
        raise ValidationError(
            f"finite.p_afterpulse = {p_afterpulse}: only Lim et al.'s closed-form model reads it "
            "(finite.model=lim2014); with finite.model=exact set it to 0")
    if not isinstance(link.channel, Fiber):
        raise ValidationError("channel: the finite-key studies sweep a Fiber's length_km")
    validate(link)
    for label, analysis in analyses.items():
        if not isinstance(analysis, tuple(FINITE.values())):
            raise ValidationError(
                f"analysis.variants.{label}: {type(analysis).__name__} is not a finite-key analysis "
                f"(one of {', '.join(FINITE)})")
        validate(analysis, f"analysis.variants.{label}.")


def check_method(method: str, kw: dict) -> dict:
    """``kw`` as a new dict, after checking that ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: must be one of {', '.join(METHODS)}")
    return dict(kw)


def optimize_at(method, analysis, link, lengths, blocks, *, chain_length=None, initial=None, **kw):
    """(best, theta, parameter rows) of either method (:data:`METHODS`) at the points."""
    check_method(method, kw)
    if method == "gradient":
        best, theta = maximize_points(analysis, link, lengths, blocks, chain_length=chain_length, initial=initial, **kw)
    else:
        best, theta = optimize_points(analysis, link, lengths, blocks, initial=initial, **kw)
    params = [{k: float(v[i]) for k, v in best.parameters.items()} for i in range(len(best.rate))]
    return best, theta, params


def max_distance_km(
    link: Link,
    block_sizes: Sequence[float],
    *,
    analysis=None,
    lo_km: float = 0.0,
    hi_km: float = 300.0,
    tol_km: float = 0.5,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    method: str = "gradient",
    n_grid: int = 16,
    **optimize_kwargs: Any,
) -> np.ndarray:
    """Longest fiber with a positive optimized key rate, per block size.

    ``"gradient"``: every block size is optimized along a grid of ``n_grid`` lengths in
    [lo_km, hi_km] (one chain each, one compiled call), then the edge is refined between the last
    length with a key and the next by multi-section (``n_grid`` candidates per step, the same
    compiled program, warm-started from the last optimum with a key) to ``tol_km``.
    ``"search"``: bisection with :func:`optimize_points`, each step warm-started from the best
    parameters at the last length with a key.

    Returns:
        (n_blocks,) lengths in km (``lo_km`` where there is no key at all; ``hi_km`` if the key
        survives there).
    """
    kw = check_method(method, optimize_kwargs)
    analysis = lim2014_analysis() if analysis is None else analysis
    blocks = np.asarray(block_sizes, np.float64)
    if method == "gradient":
        grid = np.linspace(lo_km, hi_km, max(int(n_grid), 2))
        m = len(grid)
        best, theta = maximize_points(analysis, link, np.tile(grid, len(blocks)), np.repeat(blocks, m),
                                      model=model, p_afterpulse=p_afterpulse, chain_length=m, **kw)
        rate = best.rate.reshape(len(blocks), m)
        d = _edges(analysis, link, blocks, grid, rate, theta.reshape(len(blocks), m, -1), hi_km, tol_km,
                   dict(kw, model=model, p_afterpulse=p_afterpulse))
        return np.where(np.any(rate > 0, axis=1), d, lo_km)
    lo = np.full(blocks.shape, lo_km)
    hi = np.full(blocks.shape, hi_km)
    best_lo, u_lo = optimize_points(analysis, link, lo, blocks, model=model, p_afterpulse=p_afterpulse, **kw)
    has_key = best_lo.rate > 0
    best_hi, _ = optimize_points(analysis, link, hi, blocks, model=model, p_afterpulse=p_afterpulse,
                                 initial=u_lo, **kw)
    lo = np.where(best_hi.rate > 0, hi, lo)
    while np.any((hi - lo > tol_km) & has_key):
        mid = 0.5 * (lo + hi)
        best, u = optimize_points(analysis, link, mid, blocks, model=model, p_afterpulse=p_afterpulse,
                                  initial=u_lo, **kw)
        ok = best.rate > 0
        u_lo = np.where(ok[:, None], u, u_lo)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return np.where(has_key, lo, lo_km)
