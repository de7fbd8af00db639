"""Study ``finite_lim2014``: optimized finite-key rate versus distance, one curve per block size.

Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Fig. 1: the two-decoy rate R = l / N
(secret bits per emitted pulse) versus fiber length for several block sizes n_X, the intensities,
their probabilities and p_z optimized at every point (:mod:`qmc.studies.finite_optimize`), and the
asymptotic curve; the maximum distance of every curve. The system model is ``finite.model``:
``lim2014`` (Lim's closed form with afterpulsing, :class:`qmc.engines.lim2014.Lim2014Model`) or
``exact`` (qmc's exact engine).
"""

from __future__ import annotations

import math
import types
from typing import Any, Sequence

import numpy as np

from qmc.analysis.finite import FINITE
from qmc.analysis.keyrate import REASONS
from qmc.link import Link
from qmc.presets import LIM2014, lim2014_analysis
from qmc.studies.finite_optimize import (
    FIELDS, METHODS, check_finite_inputs, check_method, max_distance_km, maximize_points, optimize_at,
    optimize_points, _edges,
)
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import FiniteSettings
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, seed, setting, sweep_axis
from qmc.validation import ValidationError

__all__ = ["finite_key_vs_distance", "finite_key_curves", "finite_rows", "FINITE_COLUMNS"]

FINITE_COLUMNS = (
    "analysis", "block_size", "length_km", "key_rate", "key_rate_bps", "reason", "max_distance_km",
    "key_length", "n_pulses", "qber", "phase_error", "eps_sec",
    "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z", "model", "p_afterpulse",
)

# Bisection bracket for the maximum distance: beyond Lim's asymptotic reach (188 km) at 0.2 dB/km.
_MAX_DISTANCE_HI_KM = 300.0


def finite_rows(analysis, model, p_afterpulse, lengths, blocks, best, params):
    rows = []
    for i in range(len(lengths)):
        row = {
            "analysis": analysis.name, "model": model, "p_afterpulse": float(p_afterpulse),
            "length_km": float(lengths[i]),
            "block_size": float(blocks[i]) if type(analysis).finite else math.inf,
            "key_rate": float(best.rate[i]), "key_length": float(best.key_length[i]),
            "n_pulses": float(best.n_pulses[i]), "reason": REASONS[int(best.reason[i])],
            "qber": float(best.qber[i]), "phase_error": float(best.phase_error[i]),
            "eps_sec": float(best.eps_sec[i]) if type(analysis).finite else 0.0,
        }
        row.update(params[i])
        rows.append(row)
    return rows


def finite_key_vs_distance(
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    analysis=None,
    asymptotic: bool = True,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    method: str = "gradient",
    **optimize_kwargs: Any,
) -> list[dict[str, Any]]:
    """Optimized key rate versus fiber length for each block size (Lim 2014, Fig. 1).

    Args:
        link: the link (a Fiber channel).
        lengths_km: fiber lengths (ascending: each block size's curve is one chain along them).
        block_sizes: n_X values (key-basis detections over all intensities).
        analysis: the finite-key analysis (default: Lim's, with Lim's security settings).
        asymptotic: also add the rows of the matching asymptotic analysis (block_size = inf).
        model, p_afterpulse: the system model (:func:`qmc.engines.lim2014.system_model`).
        method: ``"gradient"`` (:func:`maximize_points`) or ``"search"`` (:func:`optimize_points`).
        **optimize_kwargs: passed to the method's function.

    Returns:
        One dict per (block size, length): analysis, model, length_km, block_size, key_rate (bits
        per emitted pulse, R = l/N), key_length, n_pulses, reason, qber, phase_error, eps_sec and
        the optimal parameters (mu1, mu2, mu3, p_mu1, p_mu2, p_mu3, p_z).
    """
    kw = check_method(method, optimize_kwargs)
    analysis = lim2014_analysis() if analysis is None else analysis
    lengths = np.asarray(lengths_km, np.float64)
    grid_l = np.tile(lengths, len(block_sizes))
    grid_b = np.repeat(np.asarray(block_sizes, np.float64), len(lengths))
    chain = dict(chain_length=len(lengths)) if method == "gradient" else {}
    best, _, params = optimize_at(method, analysis, link, grid_l, grid_b, model=model, p_afterpulse=p_afterpulse,
                                **chain, **kw)
    rows = finite_rows(analysis, model, p_afterpulse, grid_l, grid_b, best, params)
    if asymptotic:
        asym = FINITE["asymptotic_two_decoy" if analysis.n_intensities == 3 else "asymptotic_one_decoy"](
            f_ec=analysis.f_ec)
        best, _, params = optimize_at(method, asym, link, lengths, np.ones_like(lengths), model=model,
                                    p_afterpulse=p_afterpulse, **chain, **kw)
        rows += finite_rows(asym, model, p_afterpulse, lengths, np.ones_like(lengths), best, params)
    return rows


def finite_key_curves(
    link: Link,
    analyses: dict,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    model: str = "lim2014",
    p_afterpulse: float = LIM2014["p_afterpulse"],
    max_distance: bool = True,
    tol_km: float = 0.5,
    method: str = "gradient",
    **optimize_kwargs: Any,
):
    """Optimized key rate versus fiber length, one curve per (analysis, block size): Lim's Fig. 1.

    Every finite-key analysis of ``analyses`` gives one curve per block size n_X, every asymptotic
    one a single curve (block_size = inf). ``method="gradient"`` (default): all curves of an
    analysis in one call of :func:`maximize_points`, each curve a chain along the lengths (every
    length warm-started from the previous one's optimum: near the maximum distance the feasible set
    is tiny); with ``max_distance``, the edge of every curve is then refined between its last
    length with a key and the next one (multi-section to ``tol_km``, the same compiled program).
    ``method="search"``: :func:`optimize_points` per length, warm-started from the previous
    length's optimum, and the maximum distances by bisection first (:func:`max_distance_km`).
    The maximum distance is written on every row of its curve.

    Args:
        link: the link (a Fiber channel; its length is replaced by each length).
        analyses: label -> analysis of :mod:`qmc.analysis.finite` (finite or asymptotic).
        lengths_km: fiber lengths (sorted ascending for the continuation).
        block_sizes: n_X values (key-basis detections in the block).
        model, p_afterpulse: the system model (:func:`qmc.engines.lim2014.system_model`); ``"lim2014"`` is Lim's
            closed-form model with afterpulsing, ``"exact"`` qmc's exact engine (none).
        max_distance: find the maximum distance of every curve.
        tol_km: its tolerance.
        method: ``"gradient"`` or ``"search"``.
        **optimize_kwargs: settings of :func:`maximize_points` (n_starts, continuation, seed, mu3)
            or :func:`optimize_points` (n_candidates, n_rounds, n_parents, seed, mu3).

    Returns:
        An iterator of :class:`qmc.studies.Chunk`, one per length, rows with :data:`FINITE_COLUMNS`
        (key_rate in bits per emitted pulse, Lim's R = l/N).
    """
    lengths = np.sort(np.atleast_1d(np.asarray(lengths_km, np.float64)))
    blocks = np.atleast_1d(np.asarray(block_sizes, np.float64))
    check_finite_inputs(link, analyses, lengths, blocks, model, p_afterpulse)
    if not analyses:
        raise ValidationError("analysis.variants: needs at least one analysis")
    if method not in METHODS:
        raise ValidationError(f"optimize.method = {method}: must be one of {', '.join(METHODS)}")
    chunks = _finite_key_chunks if method == "gradient" else _finite_key_chunks_search
    return chunks(link, dict(analyses), lengths, blocks, model, float(p_afterpulse), max_distance, float(tol_km),
                  optimize_kwargs)


def _curve_rows(label, analysis, model, p_afterpulse, length, b, best, params, d_max, rep_rate_hz):
    rows = []
    for j, row in enumerate(finite_rows(analysis, model, p_afterpulse, np.full(len(b), length), b, best, params)):
        row["analysis"] = label
        row["key_rate_bps"] = row["key_rate"] * rep_rate_hz
        row["max_distance_km"] = float(d_max[j])
        rows.append(row)
    return rows


def _finite_key_chunks(link, analyses, lengths, blocks, model, p_afterpulse, max_distance, tol_km, kw):
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    n_l = len(lengths)
    hi_km = max(_MAX_DISTANCE_HI_KM, 1.5 * float(lengths.max()))
    curves = {}
    for label, analysis in analyses.items():
        b = blocks if type(analysis).finite else np.ones(1)
        opts = dict(kw, model=model, p_afterpulse=p_afterpulse)
        # one chain per block size along the lengths
        best, theta = maximize_points(analysis, link, np.tile(lengths, len(b)), np.repeat(b, n_l), chain_length=n_l,
                                      **opts)
        d_max = np.full(len(b), math.nan)
        if max_distance:
            rate = best.rate.reshape(len(b), n_l)
            d_max = _edges(analysis, link, b, lengths, rate, theta.reshape(len(b), n_l, -1), hi_km, tol_km, opts)
        params = [{k: float(v[i]) for k, v in best.parameters.items()} for i in range(len(best.rate))]
        curves[label] = (analysis, b, best, params, d_max)
    for i, length in enumerate(lengths):
        rows = []
        for label, (analysis, b, best, params, d_max) in curves.items():
            index = np.arange(len(b)) * n_l + i  # the points of this length
            sub = types.SimpleNamespace(**{name: getattr(best, name)[index] for name in FIELDS})
            rows += _curve_rows(label, analysis, model, p_afterpulse, length, b, sub, [params[k] for k in index],
                                d_max, rep_rate_hz)
        yield Chunk(rows, i, n_l)


def _finite_key_chunks_search(link, analyses, lengths, blocks, model, p_afterpulse, max_distance, tol_km, kw):
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    curves = {}
    for label, analysis in analyses.items():
        b = blocks if type(analysis).finite else np.ones(1)
        opts = dict(kw, model=model, p_afterpulse=p_afterpulse, chunk=len(b))
        d_max = np.full(len(b), math.nan)
        if max_distance:
            hi = max(_MAX_DISTANCE_HI_KM, 1.5 * float(lengths.max()))
            d_max = max_distance_km(link, b, analysis=analysis, hi_km=hi, tol_km=tol_km, method="search", **opts)
        curves[label] = (analysis, b, opts, d_max)
    warm: dict[str, np.ndarray | None] = {label: None for label in analyses}
    for i, length in enumerate(lengths):
        rows = []
        for label, (analysis, b, opts, d_max) in curves.items():
            best, u = optimize_points(analysis, link, np.full(len(b), length), b, initial=warm[label], **opts)
            ok = best.rate > 0
            warm[label] = u if warm[label] is None else np.where(ok[:, None], u, warm[label])
            params = [{k: float(v[j]) for k, v in best.parameters.items()} for j in range(len(b))]
            rows += _curve_rows(label, analysis, model, p_afterpulse, length, b, best, params, d_max, rep_rate_hz)
        yield Chunk(rows, i, len(lengths))


def _run_finite_lim2014(spec):
    """Registry adapter of study ``finite_lim2014`` (see :func:`finite_key_curves`)."""
    require_exact_engine(spec, "finite_lim2014", "uses expected counts (finite.model selects the exact engine or Lim's closed-form model)")
    finite = setting(spec, "finite", FiniteSettings)
    return finite_key_curves(
        spec["link"], analyses(spec), sweep_axis(spec, "length_km"), sweep_axis(spec, "block_size"),
        model=finite.model, p_afterpulse=float(finite.p_afterpulse), max_distance=bool(finite.max_distance),
        tol_km=float(finite.max_distance_tol_km),
        **optimize_settings(spec).optimizer_kwargs(seed(spec), spec.get("protocol")),
    )


register(Study(name="finite_lim2014", run=_run_finite_lim2014, columns=FINITE_COLUMNS, figure="qmc.plots.finite:finite_key_vs_distance",
               figure_name="finite_key_vs_distance"))
