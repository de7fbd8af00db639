"""Finite-key studies: key rate versus distance and block size with optimized protocol parameters.

Plain Python functions returning table rows (lists of dicts), for the experiments of issue #6:

* :func:`finite_key_vs_distance`: key rate (bits per emitted pulse, Lim's R = l/N) versus fiber
  length for several block sizes n_X, intensities and probabilities optimized at every point,
  plus the asymptotic curve (Lim et al., PRA 89, 022307 (2014), Fig. 1).
* :func:`one_vs_two_decoy`: ratio of the one-decoy rate (Rusca et al., APL 112, 171104 (2018)) to
  the two-decoy rate (Lim 2014) versus block size, each optimized on its own.
* :func:`max_distance_km`: the longest fiber with a positive key per block size (bisection).

Optimization. Derivative-free and vectorized: every point (length, block size) gets a batch of
random candidate parameter sets in a unit cube mapped onto the feasible set (ordered intensities,
probabilities on the simplex, 0.02 <= p_z <= 0.9999), evaluated by one ``jit(vmap(vmap(...)))``
call; the best few candidates of each point are then refined by Gaussian perturbations of
shrinking width for several rounds (the best ones are always kept, so the rate never decreases
from round to round). Points are processed in fixed-size chunks so that a study compiles once per
analysis and model. Where no candidate gives a key, the score is the (negative) unclipped l/N, so
the search still moves toward a key. Near the maximum distance the feasible set is tiny (rates of
1e-10): the defaults (2048 candidates, 8 parents, 8 rounds) find Lim's n_X = 1e4 edge to about
0.5 km of a search with 16384 candidates.

System models. ``model="exact"`` takes expected counts from :mod:`qmc.engines.exact` (physical
threshold detectors, no afterpulsing; qmc has no afterpulsing model yet). ``model="lim2014"`` is
the closed-form system model of Lim et al. Sec. IV, afterpulsing included:

    D_k = 1 - (1 - 2 p_dc) exp(-eta_sys k),   R_k = D_k (1 + p_ap),
    e_k = p_dc + e_mis [1 - exp(-eta_sys k)] + p_ap D_k / 2

with eta_sys = eta_ch eta_Bob. The paper prints eta_ch in e_k; that is a misprint (see
:mod:`qmc.analysis.finite`): with eta_ch the optical error would be e_mis / eta_Bob = 5 % of the
detections and none of the paper's numbers is reproduced. ``model="lim2014"`` with
``p_afterpulse=0`` agrees with the exact engine to first order in p_dc (the exact engine keeps
double clicks and the product (1 - p_dc)^2).

Lim's system parameters (Sec. IV): 0.2 dB/km, eta_Bob = 10 %, p_dc = 6e-7, p_ap = 4e-2,
e_mis = 5e-3, mu3 = 2e-4 (fixed), f_EC = 1.16, eps_cor = 1e-15, eps_sec = kappa l with
kappa = 1e-15; optimized over {q_x, p_mu1, p_mu2, mu1, mu2} (q_x is qmc's p_z).

Studies of the ``qmc`` command (registered in :data:`qmc.studies.STUDIES` when this module is
imported): ``finite_lim2014`` (:func:`finite_key_curves`: one chunk per fiber length, curves
continued from the previous length's optimum, maximum distance per curve by bisection;
``qmc experiment=finite_lim2014``) and ``one_vs_two_decoy`` (:func:`one_vs_two_decoy_curves`;
``qmc experiment=one_vs_two_decoy``). Their settings: ``sweep.length_km``, ``sweep.block_size``,
``analysis.variants``, ``finite`` (model, p_afterpulse, max_distance), ``optimize``
(n_candidates, n_rounds, n_parents) and ``seed``.

Monte Carlo (issue #6, item 3; study ``finite_key_mc`` in :mod:`qmc.finite_mc`). The analyses accept observed counts:
``Observations.from_counts(tally.counts, tally.sent)`` then
``analysis.key_rate_from_observations(obs, protocol, n_pulses=total_pulses)``;
:func:`session_key_lengths` does it for a batch of sessions (one ``jit(vmap)``) with an explicit
abort rule, and :func:`protocol_from_row` gives the protocol of an optimized row.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from qmc._pytree import replace_path
from qmc.analysis.finite import FINITE
from qmc.analysis.keyrate import REASONS
from qmc.analysis.observations import Observations
from qmc.channels import Fiber
from qmc.detectors import ThresholdDetectors
from qmc.engines import exact
from qmc.link import Link
from qmc.protocols import DecoyBB84
from qmc.sources import WeakCoherentSource
from qmc.studies import Chunk, Study, axis_values, register
from qmc.validation import Range, ValidationError, validate

__all__ = [
    "LIM2014", "MODELS", "lim2014_link", "lim2014_analysis", "lim2014_observations", "model_observations",
    "optimize_points", "finite_key_vs_distance", "max_distance_km", "one_vs_two_decoy",
    "parameters_row", "protocol_from_row", "session_key_lengths",
    "finite_key_curves", "one_vs_two_decoy_curves", "FINITE_COLUMNS", "RATIO_COLUMNS",
]

MODELS = ("exact", "lim2014", "lim2014_as_printed")

# Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV.
LIM2014 = dict(
    loss_db_per_km=0.2, efficiency=0.1, p_dark=6e-7, p_afterpulse=4e-2, misalignment=5e-3,
    mu3=2e-4, f_ec=1.16, kappa=1e-15, eps_cor=1e-15,
)


def lim2014_link(length_km: float = 0.0) -> Link:
    """The fiber system of Lim et al. (2014), Sec. IV (afterpulsing is a model option, not a link
    field: see :func:`lim2014_observations`)."""
    return Link(
        WeakCoherentSource(),
        Fiber(length_km=length_km, loss_db_per_km=LIM2014["loss_db_per_km"]),
        ThresholdDetectors(LIM2014["efficiency"], LIM2014["p_dark"], LIM2014["misalignment"]),
    )


def lim2014_analysis(name: str = "finite_lim2014", block_size: float = 1e9, **kwargs):
    """An analysis with Lim's security settings (f_EC = 1.16, eps_cor = 1e-15, eps_sec = 1e-15 l)."""
    cls = FINITE[name]
    if not cls.finite:
        return cls(f_ec=kwargs.get("f_ec", LIM2014["f_ec"]))
    settings = dict(f_ec=LIM2014["f_ec"], eps_cor=LIM2014["eps_cor"], kappa=LIM2014["kappa"])
    settings.update(kwargs)
    return cls(block_size=block_size, **settings)


def lim2014_observations(
    link: Link, protocol, p_afterpulse=LIM2014["p_afterpulse"], as_printed: bool = False
) -> Observations:
    """Expected gains and error gains of Lim's system model (Sec. IV), afterpulsing included.

    Gain R_k = D_k (1 + p_ap) and error gain e_k = p_dc + e_mis (1 - exp(-eta_sys k)) + p_ap D_k / 2
    with D_k = 1 - (1 - 2 p_dc) exp(-eta_sys k), eta_sys = ``link.transmittance()``; the same in
    both bases. e_k uses eta_sys, not the printed eta_ch (a misprint; see the module docstring);
    ``as_printed=True`` uses eta_ch = ``link.channel.transmittance()``, to show that it does not
    reproduce the paper's numbers.
    """
    det = link.detector
    eta = link.transmittance()
    mu = jnp.asarray(protocol.intensities, jnp.float64)
    eta_error = link.channel.transmittance() if as_printed else eta
    photon = -jnp.expm1(-eta_error * mu)
    d = 1.0 - (1.0 - 2.0 * det.p_dark) * jnp.exp(-eta * mu)
    # the usual (1 + p_ap) approximation, one definition shared with the exact engine
    gain, error_gain = exact.afterpulse_observations(d, det.p_dark + det.misalignment * photon, p_afterpulse)
    return Observations(jnp.stack([gain, gain], axis=1), jnp.stack([error_gain, error_gain], axis=1))


def model_observations(model: str, link: Link, protocol, p_afterpulse=0.0) -> Observations:
    """Expected observations of ``model``: ``"exact"`` (qmc's exact engine; ``p_afterpulse`` is
    ignored, afterpulsing is not modelled there), ``"lim2014"`` (Lim's closed-form model) or
    ``"lim2014_as_printed"`` (the same with the misprinted eta_ch in the error term)."""
    if model == "exact":
        return exact.observations(link, protocol)
    if model in ("lim2014", "lim2014_as_printed"):
        return lim2014_observations(link, protocol, p_afterpulse, as_printed=model == "lim2014_as_printed")
    raise ValueError(f"model = {model!r}: must be one of {', '.join(MODELS)}")


# ----------------------------------------------------------------------------------------------
# Parameter space: unit cube -> feasible protocol
# ----------------------------------------------------------------------------------------------

_MU1 = (0.02, 1.0)  # signal intensity range (log scale)
_LOGIT_PZ = (math.log(0.02 / 0.98), math.log(0.9999 / 1e-4))  # p_z in [0.02, 0.9999], logit scale
_P_FLOOR = 1e-4  # smallest intensity probability
_SIGMA0, _SHRINK = 0.15, 0.6  # refinement step in the unit cube: _SIGMA0 * _SHRINK**(round - 1)


def _dim(n_intensities: int) -> int:
    return 5 if n_intensities == 3 else 4


def _log_map(u, lo, hi):
    return lo * (hi / lo) ** u


def _protocol_from_unit(u, n_intensities: int, mu3):
    """Map u in [0, 1]^d onto a valid protocol (key basis Z).

    Three intensities (Lim): u = (mu1, mu2 share, p_z, p_mu1, p_mu2 share) with
    mu2 = mu3 + (mu1 - 2 mu3) s, s in [0.01, 0.99], so mu1 > mu2 + mu3 and mu2 > mu3.
    Two intensities (Rusca): u = (mu1, mu2 / mu1, p_z, p_mu1), mu2 / mu1 in [0.01, 0.99].
    """
    u = jnp.clip(u, 0.0, 1.0)
    mu1 = _log_map(u[0], *_MU1)
    share = 0.01 + 0.98 * u[1]
    # Small blocks want p_z < 1/2 (more test-basis data per key bit), large blocks p_z -> 1.
    p_z = jax.nn.sigmoid(_LOGIT_PZ[0] + (_LOGIT_PZ[1] - _LOGIT_PZ[0]) * u[2])
    if n_intensities == 3:
        mu2 = mu3 + (mu1 - 2.0 * mu3) * share
        p1 = _P_FLOOR + (1.0 - 3.0 * _P_FLOOR) * u[3]
        rest = 1.0 - p1 - 2.0 * _P_FLOOR
        p2 = _P_FLOOR + rest * u[4]
        intensities = jnp.stack([mu1, mu2, jnp.asarray(mu3, jnp.float64)])
        probabilities = jnp.stack([p1, p2, 1.0 - p1 - p2])
    else:
        mu2 = mu1 * share
        p1 = _P_FLOOR + (1.0 - 2.0 * _P_FLOOR) * u[3]
        intensities = jnp.stack([mu1, mu2])
        probabilities = jnp.stack([p1, 1.0 - p1])
    return DecoyBB84(intensities=intensities, probabilities=probabilities, p_z=p_z, key_basis="Z")


def _with_block(analysis, block_size):
    if type(analysis).finite:
        return dataclasses.replace(analysis, block_size=block_size)
    return analysis


@functools.partial(jax.jit, static_argnames=("model",))
def _evaluate(analysis, link, u, lengths_km, block_sizes, mu3, p_afterpulse, model):
    """FiniteKeyRate for candidates u (P, C, d) at points (lengths_km, block_sizes), each (P,)."""
    n_int = type(analysis).n_intensities

    def one(u_c, length_km, block_size):
        point_link = replace_path(link, "channel.length_km", length_km)
        protocol = _protocol_from_unit(u_c, n_int, mu3)
        obs = model_observations(model, point_link, protocol, p_afterpulse)
        out = _with_block(analysis, block_size).key_rate_from_observations(obs, protocol, point_link)
        return {name: getattr(out, name) for name in _FIELDS}

    per_point = jax.vmap(one, in_axes=(0, None, None))  # over candidates
    return jax.vmap(per_point, in_axes=(0, 0, 0))(u, lengths_km, block_sizes)  # (P, C) leaves


# The fields of FiniteKeyRate a study keeps (fewer outputs compile faster).
_FIELDS = ("rate", "reason", "key_length", "n_pulses", "qber", "phase_error", "eps_sec")


def _score(out):
    # Positive rates rank first; below that, the unclipped l/N (negative) still guides the search.
    n = out["n_pulses"]
    raw = jnp.where(n > 0, out["key_length"] / jnp.where(n > 0, n, 1.0), -jnp.inf)
    fallback = jnp.where(jnp.isfinite(raw), jnp.minimum(raw, 0.0) - 1e-300, -jnp.inf)
    return jnp.where(out["rate"] > 0, out["rate"], fallback)


def _round_keys(key, index, r):
    # Point i, round r draws from fold_in(fold_in(key, index[i]), r): points are independent.
    return jax.vmap(lambda i: jr.fold_in(jr.fold_in(key, i), r))(index)


@functools.partial(jax.jit, static_argnames=("n_candidates", "d"))
def _initial_candidates(key, index, warm, n_candidates: int, d: int):
    """Round 0: uniform candidates (P, C, d); ``warm`` (P, d), if given, is candidate 0."""
    cand = jax.vmap(lambda k: jr.uniform(k, (n_candidates, d)))(_round_keys(key, index, 0))
    return cand if warm is None else cand.at[:, 0].set(warm)


@functools.partial(jax.jit, static_argnames=("n_candidates",))
def _refined_candidates(key, index, r, parents, n_candidates: int):
    """Round r >= 1: Gaussian steps of width _SIGMA0 * _SHRINK^(r-1) around each of the K best
    candidates so far, ``parents`` (P, K, d). The parents themselves are the first K candidates
    (the incumbent is kept, so the best rate never decreases from round to round)."""
    n_parents, d = parents.shape[1], parents.shape[2]
    noise = jax.vmap(lambda k: jr.normal(k, (n_candidates, d)))(_round_keys(key, index, r))
    sigma = _SIGMA0 * _SHRINK ** (r - 1.0)
    owner = jnp.arange(n_candidates) % n_parents  # child j perturbs parent j mod K
    cand = jnp.clip(parents[:, owner, :] + sigma * noise, 0.0, 1.0)
    return cand.at[:, :n_parents].set(parents)


@functools.partial(jax.jit, static_argnames=("n_parents",))
def _pick(cand, out, n_parents: int):
    """The ``n_parents`` best candidates of each point by :func:`_score`, best first (P, K, d),
    and the outputs of the best one (ties: the lowest index, i.e. the incumbent)."""
    _, order = jax.lax.top_k(_score(out), n_parents)  # (P, K), stable for ties
    parents = jnp.take_along_axis(cand, order[:, :, None], axis=1)

    def best(x):
        return jnp.take_along_axis(x, order[:, :1], axis=1)[:, 0]

    return parents, jax.tree_util.tree_map(best, out)


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
    """Maximize the key rate over intensities, their probabilities and p_z at each point.

    Args:
        analysis: a finite-key or asymptotic analysis of :mod:`qmc.analysis.finite` (its
            ``block_size`` is replaced by each point's).
        link: the link; its channel must be a :class:`qmc.Fiber` (``length_km`` is set per point).
        lengths_km, block_sizes: the points, same length P (block sizes ignored by asymptotic
            analyses).
        model: one of :data:`MODELS` (see :func:`model_observations`).
        p_afterpulse: afterpulse probability of the ``"lim2014"`` model.
        mu3: the fixed vacuum-like decoy of two-decoy protocols (Lim: 2e-4).
        n_candidates: candidates per point and round (round 0 random, then refinements).
        n_rounds: refinement rounds after the random round.
        n_parents: candidates kept and refined in each round (several basins are followed).
        chunk: points per compiled call (the last chunk is padded).
        seed: seed of the candidate draws (one stream per point index: points are independent).
        initial: optional (P, d) unit-cube parameters added as a candidate (warm start).

    Returns:
        (best, u): at the best candidate of each point, the fields rate, reason, key_length,
        n_pulses, qber, phase_error, eps_sec of its :class:`FiniteKeyRate` (numpy arrays (P,),
        as attributes), and the best unit-cube parameters (P, d).
    """
    if model not in MODELS:
        raise ValueError(f"model = {model!r}: must be one of {', '.join(MODELS)}")
    if model == "exact" and p_afterpulse != 0.0:
        raise ValueError("the exact engine has no afterpulsing yet: use p_afterpulse=0 or model='lim2014'")
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.broadcast_to(np.asarray(block_sizes, np.float64), lengths.shape).copy()
    n_points = len(lengths)
    d = _dim(type(analysis).n_intensities)
    size = max(1, min(int(chunk), n_points))
    key = jr.key(seed)
    outs, us = [], []
    for start in range(0, n_points, size):
        idx = np.arange(start, min(start + size, n_points))
        pad = size - len(idx)
        idx_p = np.concatenate([idx, np.repeat(idx[-1:], pad)]) if pad else idx
        L, B = jnp.asarray(lengths[idx_p]), jnp.asarray(blocks[idx_p])
        warm = None if initial is None else jnp.asarray(np.asarray(initial, np.float64)[idx_p])
        parents = best_out = None
        for r in range(n_rounds + 1):
            if r == 0:
                cand = _initial_candidates(key, jnp.asarray(idx_p), warm, n_candidates, d)
            else:
                cand = _refined_candidates(key, jnp.asarray(idx_p), jnp.asarray(r), parents, n_candidates)
            out = _evaluate(analysis, link, cand, L, B, mu3, p_afterpulse, model)
            parents, best_out = _pick(cand, out, min(n_parents, n_candidates))
        best_u = parents[:, 0]
        keep = len(idx)
        outs.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[:keep], best_out))
        us.append(np.asarray(best_u)[:keep])
    best = {k: np.concatenate([o[k] for o in outs]) for k in _FIELDS}
    return types.SimpleNamespace(**best), np.concatenate(us)


def parameters_row(u: np.ndarray, n_intensities: int, mu3: float = LIM2014["mu3"]) -> dict[str, float]:
    """The protocol parameters of unit-cube point ``u`` as a flat dict (mu1, mu2, [mu3], p_mu*, p_z)."""
    p = _protocol_from_unit(jnp.asarray(u), n_intensities, mu3)
    row = {f"mu{i + 1}": float(v) for i, v in enumerate(np.asarray(p.intensities))}
    row.update({f"p_mu{i + 1}": float(v) for i, v in enumerate(np.asarray(p.probabilities))})
    row["p_z"] = float(p.p_z)
    return row


def protocol_from_row(row: dict[str, Any]) -> DecoyBB84:
    """The :class:`DecoyBB84` (key basis Z) of a result row (for Monte Carlo at that point)."""
    k = 3 if "mu3" in row and not (isinstance(row["mu3"], float) and math.isnan(row["mu3"])) else 2
    return DecoyBB84(
        intensities=tuple(row[f"mu{i + 1}"] for i in range(k)),
        probabilities=tuple(row[f"p_mu{i + 1}"] for i in range(k)),
        p_z=row["p_z"], key_basis="Z",
    )


def _rows(analysis, model, p_afterpulse, lengths, blocks, best, u):
    n_int = type(analysis).n_intensities
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
        row.update(parameters_row(u[i], n_int))
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
    **optimize_kwargs: Any,
) -> list[dict[str, Any]]:
    """Optimized key rate versus fiber length for each block size (Lim 2014, Fig. 1).

    Args:
        link: the link (a Fiber channel).
        lengths_km: fiber lengths.
        block_sizes: n_X values (key-basis detections over all intensities).
        analysis: the finite-key analysis (default: Lim's, with Lim's security settings).
        asymptotic: also add the rows of the matching asymptotic analysis (block_size = inf).
        model, p_afterpulse: the system model (see :func:`model_observations`).
        **optimize_kwargs: passed to :func:`optimize_points`.

    Returns:
        One dict per (block size, length): analysis, model, length_km, block_size, key_rate (bits
        per emitted pulse, R = l/N), key_length, n_pulses, reason, qber, phase_error, eps_sec and
        the optimal parameters (mu1, mu2, mu3, p_mu1, p_mu2, p_mu3, p_z).
    """
    analysis = lim2014_analysis() if analysis is None else analysis
    lengths = np.asarray(lengths_km, np.float64)
    grid_l = np.tile(lengths, len(block_sizes))
    grid_b = np.repeat(np.asarray(block_sizes, np.float64), len(lengths))
    best, u = optimize_points(analysis, link, grid_l, grid_b, model=model, p_afterpulse=p_afterpulse,
                              **optimize_kwargs)
    rows = _rows(analysis, model, p_afterpulse, grid_l, grid_b, best, u)
    if asymptotic:
        asym = FINITE["asymptotic_two_decoy" if analysis.n_intensities == 3 else "asymptotic_one_decoy"](
            f_ec=analysis.f_ec)
        best, u = optimize_points(asym, link, lengths, np.ones_like(lengths), model=model,
                                  p_afterpulse=p_afterpulse, **optimize_kwargs)
        rows += _rows(asym, model, p_afterpulse, lengths, np.ones_like(lengths), best, u)
    return rows


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
    **optimize_kwargs: Any,
) -> np.ndarray:
    """Longest fiber with a positive optimized key rate, per block size (bisection, vectorized).

    Each step optimizes all block sizes at their midpoints in one call, warm-started from the
    best parameters found at the last length with a key.

    Returns:
        (n_blocks,) lengths in km (``lo_km`` where there is no key at all; ``hi_km`` if the key
        survives there).
    """
    analysis = lim2014_analysis() if analysis is None else analysis
    blocks = np.asarray(block_sizes, np.float64)
    lo = np.full(blocks.shape, lo_km)
    hi = np.full(blocks.shape, hi_km)
    best_lo, u_lo = optimize_points(analysis, link, lo, blocks, model=model, p_afterpulse=p_afterpulse,
                                    **optimize_kwargs)
    has_key = best_lo.rate > 0
    best_hi, _ = optimize_points(analysis, link, hi, blocks, model=model, p_afterpulse=p_afterpulse,
                                 initial=u_lo, **optimize_kwargs)
    lo = np.where(best_hi.rate > 0, hi, lo)
    while np.any((hi - lo > tol_km) & has_key):
        mid = 0.5 * (lo + hi)
        best, u = optimize_points(analysis, link, mid, blocks, model=model, p_afterpulse=p_afterpulse,
                                  initial=u_lo, **optimize_kwargs)
        ok = best.rate > 0
        u_lo = np.where(ok[:, None], u, u_lo)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return np.where(has_key, lo, lo_km)


def one_vs_two_decoy(
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    two_decoy=None,
    one_decoy=None,
    **optimize_kwargs: Any,
) -> list[dict[str, Any]]:
    """Ratio of the optimized one-decoy (Rusca 2018) to two-decoy (Lim 2014) rate.

    Both use the same security settings (Lim's by default: f_EC = 1.16, eps_cor = 1e-15,
    eps_sec = 1e-15 l); the block size is the key-basis detections for both. Afterpulsing is only
    available through ``model="lim2014"`` (``p_afterpulse``): the exact engine has none yet, so
    the "with afterpulsing" curve needs the detector model of a later issue or the paper's model.

    Returns:
        One dict per (block size, length): length_km, block_size, rate_one_decoy, rate_two_decoy,
        ratio (NaN-free: 0 where the two-decoy rate is 0 and the one-decoy rate too, inf where
        only the one-decoy protocol gives a key), and both parameter sets (prefixed one_/two_).
    """
    two = lim2014_analysis("finite_lim2014") if two_decoy is None else two_decoy
    one = lim2014_analysis("finite_rusca2018") if one_decoy is None else one_decoy
    lengths = np.asarray(lengths_km, np.float64)
    grid_l = np.tile(lengths, len(block_sizes))
    grid_b = np.repeat(np.asarray(block_sizes, np.float64), len(lengths))
    kw = dict(model=model, p_afterpulse=p_afterpulse, **optimize_kwargs)
    best2, u2 = optimize_points(two, link, grid_l, grid_b, **kw)
    best1, u1 = optimize_points(one, link, grid_l, grid_b, **kw)
    rows = []
    for i in range(len(grid_l)):
        r1, r2 = float(best1.rate[i]), float(best2.rate[i])
        ratio = r1 / r2 if r2 > 0 else (math.inf if r1 > 0 else 0.0)
        row = {"length_km": float(grid_l[i]), "block_size": float(grid_b[i]), "model": model,
               "p_afterpulse": float(p_afterpulse), "rate_one_decoy": r1, "rate_two_decoy": r2,
               "ratio": ratio}
        row.update({f"one_{k}": v for k, v in parameters_row(u1[i], 2).items()})
        row.update({f"two_{k}": v for k, v in parameters_row(u2[i], 3).items()})
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# Monte Carlo sessions through the same analysis (issue #6, item 3)
# ----------------------------------------------------------------------------------------------


@jax.jit
def _sessions(analysis, protocol, counts, sent, n_pulses):
    def one(c, s, n):
        obs = Observations.from_counts(c, s)
        return analysis.key_rate_from_observations(obs, protocol, n_pulses=n)

    return jax.vmap(one)(counts, sent, n_pulses)


def session_key_lengths(
    analysis, protocol, counts, sent, n_pulses=None, phase_error_tolerance: float | None = None
) -> dict[str, np.ndarray]:
    """Finite-key outcome of each simulated (or measured) session, from its counts.

    The counts of every session go through the same analysis as the expected counts
    (``Observations.from_counts`` -> ``key_rate_from_observations``): the bounds use the observed
    detections and errors, and the block size is whatever the session collected.

    Abort rule: a session aborts when the analysis gives no positive key length (any reason other
    than "ok": single-photon bound not positive, phase-error bound undefined, finite-size terms
    larger than the key, ...) or, if ``phase_error_tolerance`` is given, when the phase-error
    bound exceeds it (Lim 2014, Sec. II, step 4: phi_X < phi_tol).

    Args:
        analysis: a finite-key analysis (its ``block_size`` is not used: counts are observed).
        protocol: the protocol the sessions ran.
        counts: (S, k, 2, 2, 2, 4) outcome counts per session (a batch of Tallies).
        sent: (S, k, 2, 2, 2) pulses sent per class and session.
        n_pulses: (S,) pulses emitted per session; default ``sent`` summed over all classes.
        phase_error_tolerance: optional phi_tol.

    Returns:
        dict of (S,) numpy arrays: ``key_length`` (bits, floored; 0 when aborted), ``abort``,
        ``reason`` (codes into REASONS), ``phase_error``, ``n_key`` (key-basis detections),
        ``n_pulses`` and ``key_rate`` (key_length / n_pulses).
    """
    counts = jnp.asarray(counts, jnp.float64)
    sent = jnp.asarray(sent, jnp.float64)
    if n_pulses is None:
        n_pulses = jnp.sum(sent.reshape(sent.shape[0], -1), axis=1)
    out = _sessions(analysis, protocol, counts, sent, jnp.asarray(n_pulses, jnp.float64))
    reason = np.asarray(out.reason)
    phi = np.asarray(out.phase_error)
    abort = reason != 0
    if phase_error_tolerance is not None:
        abort |= phi >= phase_error_tolerance
    length = np.where(abort, 0.0, np.floor(np.maximum(np.asarray(out.key_length), 0.0)))
    n = np.asarray(out.n_pulses)
    return {
        "key_length": length, "abort": abort, "reason": reason, "phase_error": phi,
        "n_key": np.asarray(out.n_key), "n_pulses": n,
        "key_rate": np.divide(length, n, out=np.zeros_like(length), where=n > 0),
    }


# ----------------------------------------------------------------------------------------------
# Studies of the `qmc` command (issue #6, item 2): finite_lim2014 and one_vs_two_decoy
# ----------------------------------------------------------------------------------------------

FINITE_COLUMNS = (
    "analysis", "block_size", "length_km", "key_rate", "key_rate_bps", "reason", "max_distance_km",
    "key_length", "n_pulses", "qber", "phase_error", "eps_sec",
    "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z", "model", "p_afterpulse",
)

RATIO_COLUMNS = (
    "length_km", "block_size", "model", "p_afterpulse", "rate_one_decoy", "rate_two_decoy", "ratio",
    "one_mu1", "one_mu2", "one_p_mu1", "one_p_mu2", "one_p_z",
    "two_mu1", "two_mu2", "two_mu3", "two_p_mu1", "two_p_mu2", "two_p_mu3", "two_p_z",
)

# Bisection bracket for the maximum distance: beyond Lim's asymptotic reach (188 km) at 0.2 dB/km.
_MAX_DISTANCE_HI_KM = 300.0


def _check_study_inputs(link, analyses, lengths, blocks, model, p_afterpulse):
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
    **optimize_kwargs: Any,
):
    """Optimized key rate versus fiber length, one curve per (analysis, block size): Lim's Fig. 1.

    Every finite-key analysis of ``analyses`` gives one curve per block size n_X, every asymptotic
    one a single curve (block_size = inf). At each length all block sizes are optimized together
    (:func:`optimize_points`, one compiled call), warm-started from the best parameters of the
    previous length that still had a key (continuation along the fiber: near the maximum distance
    the feasible set is tiny, and a cold random search can miss it). With ``max_distance``, the
    longest fiber with a key per curve is found first by bisection (:func:`max_distance_km`, to
    ``tol_km``) and written on every row of that curve.

    Args:
        link: the link (a Fiber channel; its length is replaced by each length).
        analyses: label -> analysis of :mod:`qmc.analysis.finite` (finite or asymptotic).
        lengths_km: fiber lengths (sorted ascending for the continuation).
        block_sizes: n_X values (key-basis detections in the block).
        model, p_afterpulse: the system model (:func:`model_observations`); ``"lim2014"`` is Lim's
            closed-form model with afterpulsing, ``"exact"`` qmc's exact engine (none).
        max_distance: bisect for the maximum distance of every curve first.
        tol_km: bisection tolerance.
        **optimize_kwargs: :func:`optimize_points` settings (n_candidates, n_rounds, n_parents,
            seed, mu3).

    Returns:
        An iterator of :class:`qmc.studies.Chunk`, one per length, rows with :data:`FINITE_COLUMNS`
        (key_rate in bits per emitted pulse, Lim's R = l/N).
    """
    lengths = np.sort(np.atleast_1d(np.asarray(lengths_km, np.float64)))
    blocks = np.atleast_1d(np.asarray(block_sizes, np.float64))
    _check_study_inputs(link, analyses, lengths, blocks, model, p_afterpulse)
    if not analyses:
        raise ValidationError("analysis.variants: needs at least one analysis")
    return _finite_key_chunks(link, dict(analyses), lengths, blocks, model, float(p_afterpulse), max_distance,
                              float(tol_km), optimize_kwargs)


def _finite_key_chunks(link, analyses, lengths, blocks, model, p_afterpulse, max_distance, tol_km, kw):
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    curves = {}
    for label, analysis in analyses.items():
        b = blocks if type(analysis).finite else np.ones(1)
        opts = dict(kw, model=model, p_afterpulse=p_afterpulse, chunk=len(b))
        d_max = np.full(len(b), math.nan)
        if max_distance:
            hi = max(_MAX_DISTANCE_HI_KM, 1.5 * float(lengths.max()))
            d_max = max_distance_km(link, b, analysis=analysis, hi_km=hi, tol_km=tol_km, **opts)
        curves[label] = (analysis, b, opts, d_max)
    warm: dict[str, np.ndarray | None] = {label: None for label in analyses}
    for i, length in enumerate(lengths):
        rows = []
        for label, (analysis, b, opts, d_max) in curves.items():
            best, u = optimize_points(analysis, link, np.full(len(b), length), b, initial=warm[label], **opts)
            ok = best.rate > 0
            warm[label] = u if warm[label] is None else np.where(ok[:, None], u, warm[label])
            for j, row in enumerate(_rows(analysis, model, p_afterpulse, np.full(len(b), length), b, best, u)):
                row["analysis"] = label
                row["key_rate_bps"] = row["key_rate"] * rep_rate_hz
                row["max_distance_km"] = float(d_max[j])
                rows.append(row)
        yield Chunk(rows, i, len(lengths))


def one_vs_two_decoy_curves(
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    systems: Sequence[tuple[str, float]] = (("exact", 0.0), ("lim2014", LIM2014["p_afterpulse"])),
    two_decoy=None,
    one_decoy=None,
    **optimize_kwargs: Any,
):
    """Ratio of the one-decoy (Rusca 2018) to the two-decoy (Lim 2014) rate versus block size.

    One chunk per (system, length): every block size is optimized for both protocols in one call
    each (:func:`one_vs_two_decoy`).

    Args:
        link: the link (a Fiber channel).
        lengths_km: fiber lengths.
        block_sizes: n_X (= Rusca's n_Z), key-basis detections in the block.
        systems: (model, p_afterpulse) pairs, one curve each; afterpulsing needs ``"lim2014"``
            (Lim's closed-form model: the exact engine has none yet).
        two_decoy, one_decoy: the analyses (default: Lim's security settings).
        **optimize_kwargs: :func:`optimize_points` settings.

    Returns:
        An iterator of :class:`qmc.studies.Chunk`, rows with :data:`RATIO_COLUMNS`.
    """
    two = lim2014_analysis("finite_lim2014") if two_decoy is None else two_decoy
    one = lim2014_analysis("finite_rusca2018") if one_decoy is None else one_decoy
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.atleast_1d(np.asarray(block_sizes, np.float64))
    message = Range("p_afterpulse", 0.0, 1.0, hi_open=True).error(
        types.SimpleNamespace(p_afterpulse=np.asarray([p for _, p in systems], np.float64)), "finite.")
    if message:
        raise ValidationError(message)
    for model, p_ap in systems:
        _check_study_inputs(link, {"two_decoy": two, "one_decoy": one}, lengths, blocks, model, p_ap)
    return _ratio_chunks(link, lengths, blocks, list(systems), two, one, optimize_kwargs)


def _ratio_chunks(link, lengths, blocks, systems, two, one, kw):
    total = len(systems) * len(lengths)
    for s, (model, p_ap) in enumerate(systems):
        for i, length in enumerate(lengths):
            rows = one_vs_two_decoy(link, [length], blocks, model=model, p_afterpulse=float(p_ap), two_decoy=two,
                                    one_decoy=one, **dict(kw, chunk=len(blocks)))
            yield Chunk(rows, s * len(lengths) + i, total)


# -- adapters for the registry: read the built config (plain values and qmc objects) ------------


def _settings(spec, name):
    value = spec.get(name) or {}
    return dict(value) if isinstance(value, dict) else {}


def _optimize_settings(spec) -> dict:
    """:func:`optimize_points` settings from ``optimize`` (n_candidates, n_rounds, n_parents), the
    seed, and mu3 = protocol.intensities[2] (the fixed weakest decoy of a three-intensity protocol)."""
    opt = _settings(spec, "optimize")
    out = {"seed": int(spec.get("seed", 0) or 0)}
    for key in ("n_candidates", "n_rounds", "n_parents"):
        if opt.get(key) is not None:
            value = int(opt[key])
            if value < (0 if key == "n_rounds" else 1):
                raise ValidationError(f"optimize.{key} = {value} is out of range: must be >= "
                                      f"{0 if key == 'n_rounds' else 1}")
            out[key] = value
    protocol = spec.get("protocol")
    if protocol is not None and np.size(protocol.intensities) == 3:
        mu3 = float(np.asarray(protocol.intensities)[2])
        if not 0.0 <= mu3 < 0.05:
            raise ValidationError(f"protocol.intensities[2] = {mu3:g} is out of range: the fixed weakest decoy "
                                  "mu3 must be in [0, 0.05) (Lim: 2e-4)")
        out["mu3"] = mu3
    return out


def _axis(spec, name):
    sweep = _settings(spec, "sweep")
    if sweep.get(name) is None:
        raise ValidationError(f"sweep.{name}: missing (give values, or start, stop and num or step)")
    return axis_values(sweep[name], f"sweep.{name}")


def _check_engine(spec, study):
    engine = spec.get("engine") or {}
    name = engine.get("name", "exact") if isinstance(engine, dict) else getattr(engine, "name", "exact")
    if name != "exact":
        raise ValidationError(f"engine = {name}: study {study} uses expected counts (finite.model selects "
                              "the exact engine or Lim's closed-form model)")


def _variants(spec) -> dict:
    analysis = spec.get("analysis") or {}
    variants = analysis.get("variants") if isinstance(analysis, dict) else None
    if not variants:
        raise ValidationError("analysis.variants: needs at least one analysis")
    return dict(variants)


def _run_finite_lim2014(spec):
    """Registry adapter of study ``finite_lim2014`` (see :func:`finite_key_curves`)."""
    _check_engine(spec, "finite_lim2014")
    finite = _settings(spec, "finite")
    return finite_key_curves(
        spec["link"], _variants(spec), _axis(spec, "length_km"), _axis(spec, "block_size"),
        model=str(finite.get("model", "lim2014")),
        p_afterpulse=float(finite.get("p_afterpulse", 0.0)),
        max_distance=bool(finite.get("max_distance", True)),
        tol_km=float(finite.get("max_distance_tol_km", 0.5)),
        **_optimize_settings(spec),
    )


def _run_one_vs_two_decoy(spec):
    """Registry adapter of study ``one_vs_two_decoy`` (see :func:`one_vs_two_decoy_curves`).

    ``finite.p_afterpulse`` is a list, one curve each: 0 uses ``finite.model`` (default the exact
    engine), a positive value Lim's closed-form model ``"lim2014"`` (the only one with afterpulsing
    until the detectors get a ``p_afterpulse`` field).
    """
    from qmc.analysis.finite import FiniteLim2014, FiniteRusca2018
    _check_engine(spec, "one_vs_two_decoy")
    finite = _settings(spec, "finite")
    variants = _variants(spec)
    two = [a for a in variants.values() if isinstance(a, FiniteLim2014)]
    one = [a for a in variants.values() if isinstance(a, FiniteRusca2018)]
    if len(two) != 1 or len(one) != 1:
        raise ValidationError("analysis.variants: study one_vs_two_decoy needs one FiniteLim2014 and one "
                              "FiniteRusca2018 analysis (analysis=finite_lim2014_vs_rusca2018)")
    p_aps = finite.get("p_afterpulse", [0.0, LIM2014["p_afterpulse"]])
    p_aps = [float(p) for p in (p_aps if isinstance(p_aps, (list, tuple)) else [p_aps])]
    model = str(finite.get("model", "exact"))
    systems = [(model if p == 0.0 else "lim2014", p) for p in p_aps]
    return one_vs_two_decoy_curves(
        spec["link"], _axis(spec, "length_km"), _axis(spec, "block_size"), systems=systems,
        two_decoy=two[0], one_decoy=one[0], **_optimize_settings(spec),
    )


def _finite_figure(rows, ax=None, **kwargs):
    from qmc.plots.finite import finite_key_vs_distance

    return finite_key_vs_distance(rows, ax=ax, **kwargs)


def _ratio_figure(rows, ax=None, **kwargs):
    from qmc.plots.finite import ratio_vs_block_size

    return ratio_vs_block_size(rows, ax=ax, **kwargs)


def _register() -> None:
    register(Study(name="finite_lim2014", run=_run_finite_lim2014, columns=FINITE_COLUMNS,
                   figure=_finite_figure, figure_name="finite_key_vs_distance"))
    register(Study(name="one_vs_two_decoy", run=_run_one_vs_two_decoy, columns=RATIO_COLUMNS,
                   figure=_ratio_figure, figure_name="one_vs_two_decoy"))


_register()
