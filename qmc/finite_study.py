"""Finite-key studies: key rate versus distance and block size with optimized protocol parameters.

Plain Python functions returning table rows (lists of dicts), for the experiments of issue #6:

* :func:`finite_key_vs_distance`: key rate (bits per emitted pulse, Lim's R = l/N) versus fiber
  length for several block sizes n_X, intensities and probabilities optimized at every point,
  plus the asymptotic curve (Lim et al., PRA 89, 022307 (2014), Fig. 1).
* :func:`one_vs_two_decoy`: ratio of the one-decoy rate (Rusca et al., APL 112, 171104 (2018)) to
  the two-decoy rate (Lim 2014) versus block size, each optimized on its own.
* :func:`max_distance_km`: the longest fiber with a positive key per block size.

Optimization (``method``). ``"gradient"`` (the default): :func:`maximize_points`, which calls
:func:`qmc.optimize.maximize_sweep` (BFGS on unconstrained parameters with forward-mode
gradients, in one compiled call per analysis and system model). The objective is
:class:`ModelAnalysis`, the analysis evaluated on the expected observations of the system model,
so ``model="lim2014"`` (afterpulsing) is optimized exactly as it is reported. Free: all
intensities but the weakest (mu3 stays fixed; Rusca's decoy mu2 is free), the intensity
probabilities and p_z (:func:`study_space`). Points along a curve form a chain: each point starts
from the previous point's optimum (continuation) and from the best of 32 spread-out starts, then
restarts from the neighbours' optima; where the phase-error bound is undefined at the optimum
(n_X >~ 1e13 with eps_sec = kappa l), the random search below is run as well and the better
result kept. The maximum distance of a curve is found on the curve's own grid, then refined
between the last length with a key and the next one by a multi-section search with the same
compiled program (:func:`max_distance_km`). ``"search"``: the earlier
derivative-free random search with refinement (:func:`optimize_points`), kept as a cross-check and
a fallback: every point gets a batch of random candidates in a unit cube mapped onto the feasible
set (ordered intensities, probabilities on the simplex, 0.02 <= p_z <= 0.9999, p_k >= 1e-4), the
best few are refined by Gaussian steps of shrinking width, all in one ``jit(vmap(vmap(...)))``
per chunk of points; maximum distances by bisection. The gradient optimizer's feasible set
contains the search's (floors 1e-6 for the probabilities, p_z up to 1 - 1e-6), so its optima are
at least as good wherever both converge; asymptotic rates have no interior optimum (they rise as
p_z -> 1, the decoy probabilities -> 0 and mu2 -> mu3), so there the gradient optimizer reports the
value at its floors, slightly above the search's (+0.6 % on Lim's system).

System models. ``model="exact"`` takes expected counts from :mod:`qmc.engines.exact` (physical
threshold detectors; the link's detector may carry its own afterpulsing, which the studies leave
at 0). ``model="lim2014"`` is the closed-form system model of Lim et al. Sec. IV, afterpulsing
included:

    D_k = 1 - (1 - 2 p_dc) exp(-eta_sys k),   R_k = D_k (1 + p_ap),
    e_k = p_dc + e_mis [1 - exp(-eta_sys k)] + p_ap D_k / 2

with eta_sys = eta_ch eta_Bob. The paper prints eta_ch in e_k; that is a misprint (see
:mod:`qmc.analysis.finite`): with eta_ch the optical error would be e_mis / eta_Bob = 5 % of the
detections and none of the paper's numbers is reproduced. ``model="lim2014"`` with
``p_afterpulse=0`` agrees with the exact engine to first order in p_dc (the exact engine keeps
double clicks and the product (1 - p_dc)^2). Both apply afterpulsing through one function,
:func:`qmc.engines.exact.afterpulse_observations` (gain (1 + p_ap), error gain + p_ap Q / 2): on
Lim's system the exact engine with ``detector.p_afterpulse = 0.04`` (no dead time) differs from
``lim2014`` by < 1e-6 relative in the gains and < 3e-5 in the error gains (the base models
differ; the afterpulse term is the same code).

Lim's system parameters (Sec. IV): 0.2 dB/km, eta_Bob = 10 %, p_dc = 6e-7, p_ap = 4e-2,
e_mis = 5e-3, mu3 = 2e-4 (fixed), f_EC = 1.16, eps_cor = 1e-15, eps_sec = kappa l with
kappa = 1e-15; optimized over {q_x, p_mu1, p_mu2, mu1, mu2} (q_x is qmc's p_z).

Studies of the ``qmc`` command (registered in :data:`qmc.studies.STUDIES` when this module is
imported): ``finite_lim2014`` (:func:`finite_key_curves`: one chunk per fiber length, curves
continued along the fiber, maximum distance per curve; ``qmc experiment=finite_lim2014``) and
``one_vs_two_decoy`` (:func:`one_vs_two_decoy_curves`; ``qmc experiment=one_vs_two_decoy``).
Their settings: ``sweep.length_km``, ``sweep.block_size``, ``analysis.variants``, ``finite``
(model, p_afterpulse, max_distance), ``optimize`` (method; n_starts, continuation for
``gradient``; n_candidates, n_rounds, n_parents for ``search``) and ``seed``.

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

from qmc import optimize
from qmc._pytree import pytree_dataclass, replace_path, static
from qmc.analysis.finite import FINITE, PHASE_UNDEFINED
from qmc.analysis.keyrate import REASONS
from qmc.engines.observations import Observations
from qmc.channels import Fiber
from qmc.detectors import ThresholdDetectors
from qmc.engines import exact
from qmc.link import Link
from qmc.protocols import DecoyBB84
from qmc.sources import WeakCoherentSource
from qmc.studies import Chunk, Study, axis_values, register
from qmc.validation import Range, Rule, ValidationError, validate

__all__ = [
    "LIM2014", "MODELS", "METHODS", "lim2014_link", "lim2014_analysis", "lim2014_observations", "model_observations",
    "ModelAnalysis", "study_space", "start_protocol", "maximize_points", "optimize_points",
    "finite_key_vs_distance", "max_distance_km", "one_vs_two_decoy",
    "parameters_row", "protocol_from_row", "session_key_lengths",
    "finite_key_curves", "one_vs_two_decoy_curves", "FINITE_COLUMNS", "RATIO_COLUMNS",
]

MODELS = ("exact", "lim2014", "lim2014_as_printed")
METHODS = ("gradient", "search")  # optimizers of the studies: qmc.optimize, or the random search

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


@pytree_dataclass
class ModelAnalysis:
    """A finite-key (or asymptotic) analysis evaluated on the expected observations of a system
    model: the objective that the gradient optimizer maximizes (``key_rate(link, protocol)``).

    ``ModelAnalysis(analysis, p_afterpulse, model).key_rate(link, protocol)`` is
    ``analysis.key_rate_from_observations(model_observations(model, link, protocol, p_afterpulse),
    protocol, link)``: with ``model="exact"`` the same as ``analysis.key_rate(link, protocol)``,
    with ``model="lim2014"`` Lim's closed-form model with afterpulsing. A pytree: ``analysis`` and
    ``p_afterpulse`` are leaves (``"analysis.analysis.block_size"`` is a sweep path), ``model`` is
    static.
    """

    analysis: Any
    p_afterpulse: float = 0.0
    model: str = static("exact")

    @property
    def name(self) -> str:
        return self.analysis.name

    @property
    def finite(self) -> bool:
        return bool(type(self.analysis).finite)

    def checks(self):
        return [
            Range("p_afterpulse", 0.0, 1.0, hi_open=True),
            Rule("model", lambda m, xp: xp.asarray(m.model in MODELS), f"must be one of {', '.join(MODELS)}"),
        ]

    def protocol_checks(self, protocol):
        return self.analysis.protocol_checks(protocol)

    def observations(self, link, protocol) -> Observations:
        return model_observations(self.model, link, protocol, self.p_afterpulse)

    def key_rate(self, link, protocol):
        return self.analysis.key_rate_from_observations(self.observations(link, protocol), protocol, link)


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


# ----------------------------------------------------------------------------------------------
# Gradient optimization (qmc.optimize): the studies' default
# ----------------------------------------------------------------------------------------------


def study_space(analysis) -> optimize.Space:
    """What the studies optimize: every intensity but the weakest (mu3 fixed; both intensities of a
    one-decoy protocol), the intensity probabilities and p_z, for finite and asymptotic analyses
    alike (as the derivative-free search does)."""
    k = type(analysis).n_intensities
    return optimize.Space("all" if k == 2 else "decoys", probabilities=True, p_z=True)


def start_protocol(n_intensities: int, mu3: float = LIM2014["mu3"]) -> DecoyBB84:
    """The gradient optimizer's starting protocol (key basis Z): mu = (0.5, 0.1, mu3),
    p = (0.7, 0.2, 0.1), p_z = 0.9 for two decoys; mu = (0.5, 0.1), p = (0.7, 0.3), p_z = 0.9 for
    one. Spread-out starts and continuation along a curve take it from there."""
    if n_intensities == 3:
        return DecoyBB84(intensities=(0.5, 0.1, float(mu3)), probabilities=(0.7, 0.2, 0.1), p_z=0.9, key_basis="Z")
    return DecoyBB84(intensities=(0.5, 0.1), probabilities=(0.7, 0.3), p_z=0.9, key_basis="Z")


def _check_model(model, p_afterpulse):
    if model not in MODELS:
        raise ValueError(f"model = {model!r}: must be one of {', '.join(MODELS)}")
    if model == "exact" and np.any(np.asarray(p_afterpulse) != 0.0):
        raise ValueError("model 'exact' reads no p_afterpulse (give the link's detector its own afterpulsing, or "
                         "use model='lim2014')")


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
) -> tuple[types.SimpleNamespace, np.ndarray]:
    """Maximize the key rate over intensities, their probabilities and p_z at each point, by
    gradient (:func:`qmc.optimize.maximize_sweep` on :class:`ModelAnalysis`, one compiled call).

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
        model, p_afterpulse: the system model (:func:`model_observations`).
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

    Returns:
        (best, theta): ``best`` has, per point, the fields rate, reason, key_length, n_pulses,
        qber, phase_error, eps_sec of its :class:`FiniteKeyRate`, ``found``, ``n_eval`` and
        ``parameters`` (dict of arrays mu1.., p_mu1.., p_z), numpy arrays (P,); ``theta`` (P, d).
    """
    _check_model(model, p_afterpulse)
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.broadcast_to(np.asarray(block_sizes, np.float64), lengths.shape).copy()
    n_points = len(lengths)
    target = ModelAnalysis(analysis, p_afterpulse, model)
    protocol = start_protocol(type(analysis).n_intensities, mu3)
    space = study_space(analysis)
    points = {"link.channel.length_km": lengths}
    if type(analysis).finite:
        points["analysis.analysis.block_size"] = blocks
    # The same pool as maximize_sweep's own (one lane: the start alone), so that warm-started
    # calls share its compiled program.
    lanes = max(int(n_starts), 1)
    pool = optimize.starting_points(protocol, space, max(int(n_pool), lanes) if lanes > 1 else 1, seed)
    starts = np.repeat(pool[None], n_points, axis=0)
    if initial is not None:
        initial = np.asarray(initial, np.float64)
        ok = np.all(np.isfinite(initial), axis=1)
        starts[ok, 0] = initial[ok]
    opt = optimize.maximize_sweep(
        target, link, protocol, points, space, n_starts=lanes, n_pool=n_pool, starts=starts, seed=seed,
        chain_length=chain_length, explore_every=explore_every, continuation=continuation)
    out = {name: np.array(getattr(opt.rate, name)) for name in _FIELDS}
    params = {k: np.array(v) for k, v in opt.parameters().items()}
    theta = np.array(opt.theta)
    found = np.array(opt.found)
    redo = np.flatnonzero(out["reason"] == PHASE_UNDEFINED) if fallback else np.zeros(0, int)
    if redo.size:
        # The random search where the phase-error bound is near the edge of its domain (eps_sec =
        # kappa l -> 1e-2 at n_X >~ 1e13): there the gradient optimizer's loss gives no direction.
        alt, u = optimize_points(analysis, link, lengths[redo], blocks[redo], model=model, p_afterpulse=p_afterpulse,
                                 mu3=mu3, seed=seed, chunk=len(redo))
        for j, i in enumerate(redo):
            if alt.rate[j] > out["rate"][i]:
                for name in _FIELDS:
                    out[name][i] = getattr(alt, name)[j]
                row = parameters_row(u[j], type(analysis).n_intensities, mu3)
                for k in params:
                    params[k][i] = row[k]
                theta[i] = optimize.from_protocol(protocol_from_row(row), space, np)
                found[i] = True
    best = types.SimpleNamespace(**out, found=found, n_eval=np.asarray(opt.n_eval), parameters=params)
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


def _check_method(method: str, kw: dict) -> dict:
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: must be one of {', '.join(METHODS)}")
    return dict(kw)


def _optimize(method, analysis, link, lengths, blocks, *, chain_length=None, initial=None, **kw):
    """(best, state, parameter rows) of either method at the points (lengths, blocks)."""
    mu3 = kw.get("mu3", LIM2014["mu3"])
    if method == "gradient":
        best, theta = maximize_points(analysis, link, lengths, blocks, chain_length=chain_length,
                                      initial=initial, **kw)
        params = [{k: float(v[i]) for k, v in best.parameters.items()} for i in range(len(best.rate))]
        return best, theta, params
    best, u = optimize_points(analysis, link, lengths, blocks, initial=initial, **kw)
    return best, u, [parameters_row(u[i], type(analysis).n_intensities, mu3) for i in range(len(u))]


def _rows(analysis, model, p_afterpulse, lengths, blocks, best, params):
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
        model, p_afterpulse: the system model (see :func:`model_observations`).
        method: ``"gradient"`` (:func:`maximize_points`) or ``"search"`` (:func:`optimize_points`).
        **optimize_kwargs: passed to the method's function.

    Returns:
        One dict per (block size, length): analysis, model, length_km, block_size, key_rate (bits
        per emitted pulse, R = l/N), key_length, n_pulses, reason, qber, phase_error, eps_sec and
        the optimal parameters (mu1, mu2, mu3, p_mu1, p_mu2, p_mu3, p_z).
    """
    kw = _check_method(method, optimize_kwargs)
    analysis = lim2014_analysis() if analysis is None else analysis
    lengths = np.asarray(lengths_km, np.float64)
    grid_l = np.tile(lengths, len(block_sizes))
    grid_b = np.repeat(np.asarray(block_sizes, np.float64), len(lengths))
    chain = dict(chain_length=len(lengths)) if method == "gradient" else {}
    best, _, params = _optimize(method, analysis, link, grid_l, grid_b, model=model, p_afterpulse=p_afterpulse,
                                **chain, **kw)
    rows = _rows(analysis, model, p_afterpulse, grid_l, grid_b, best, params)
    if asymptotic:
        asym = FINITE["asymptotic_two_decoy" if analysis.n_intensities == 3 else "asymptotic_one_decoy"](
            f_ec=analysis.f_ec)
        best, _, params = _optimize(method, asym, link, lengths, np.ones_like(lengths), model=model,
                                    p_afterpulse=p_afterpulse, **chain, **kw)
        rows += _rows(asym, model, p_afterpulse, lengths, np.ones_like(lengths), best, params)
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
    kw = _check_method(method, optimize_kwargs)
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


def one_vs_two_decoy(
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    model: str = "exact",
    p_afterpulse: float = 0.0,
    two_decoy=None,
    one_decoy=None,
    method: str = "gradient",
    **optimize_kwargs: Any,
) -> list[dict[str, Any]]:
    """Ratio of the optimized one-decoy (Rusca 2018) to two-decoy (Lim 2014) rate.

    Both use the same security settings (Lim's by default: f_EC = 1.16, eps_cor = 1e-15,
    eps_sec = 1e-15 l); the block size is the key-basis detections for both. Afterpulsing comes
    from ``model="lim2014"`` (``p_afterpulse``). With ``method="gradient"`` each length is one
    chain along the block sizes, from the largest down; ``"search"`` optimizes every point on its
    own.

    Returns:
        One dict per (block size, length): length_km, block_size, rate_one_decoy, rate_two_decoy,
        ratio (NaN-free: 0 where the two-decoy rate is 0 and the one-decoy rate too, inf where
        only the one-decoy protocol gives a key), and both parameter sets (prefixed one_/two_).
    """
    kw = _check_method(method, optimize_kwargs)
    two = lim2014_analysis("finite_lim2014") if two_decoy is None else two_decoy
    one = lim2014_analysis("finite_rusca2018") if one_decoy is None else one_decoy
    lengths = np.atleast_1d(np.asarray(lengths_km, np.float64))
    blocks = np.atleast_1d(np.asarray(block_sizes, np.float64))
    n_l, n_b = len(lengths), len(blocks)
    # Length-major: each length's block sizes are consecutive, one chain for the gradient method,
    # from the largest block down (the optimum moves smoothly from p_z near 1 toward the small
    # blocks' p_z ~ 0.5; started at n_X = 1e4, BFGS can stop in a poorer local optimum there).
    order = np.argsort(-blocks, kind="stable")
    position = np.argsort(order)  # position[j]: where block j sits in the chain
    grid_l, grid_b = np.repeat(lengths, n_b), np.tile(blocks[order], n_l)
    chain = dict(chain_length=n_b) if method == "gradient" else {}
    kw = dict(kw, model=model, p_afterpulse=p_afterpulse, **chain)
    best2, _, params2 = _optimize(method, two, link, grid_l, grid_b, **kw)
    best1, _, params1 = _optimize(method, one, link, grid_l, grid_b, **kw)
    rows = []
    for j in range(n_b):  # rows block-major, in the given order of the block sizes
        for i in range(n_l):
            k = i * n_b + position[j]
            r1, r2 = float(best1.rate[k]), float(best2.rate[k])
            ratio = r1 / r2 if r2 > 0 else (math.inf if r1 > 0 else 0.0)
            row = {"length_km": float(grid_l[k]), "block_size": float(grid_b[k]), "model": model,
                   "p_afterpulse": float(p_afterpulse), "rate_one_decoy": r1, "rate_two_decoy": r2,
                   "ratio": ratio}
            row.update({f"one_{key}": v for key, v in params1[k].items()})
            row.update({f"two_{key}": v for key, v in params2[k].items()})
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
        model, p_afterpulse: the system model (:func:`model_observations`); ``"lim2014"`` is Lim's
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
    _check_study_inputs(link, analyses, lengths, blocks, model, p_afterpulse)
    if not analyses:
        raise ValidationError("analysis.variants: needs at least one analysis")
    if method not in METHODS:
        raise ValidationError(f"optimize.method = {method}: must be one of {', '.join(METHODS)}")
    chunks = _finite_key_chunks if method == "gradient" else _finite_key_chunks_search
    return chunks(link, dict(analyses), lengths, blocks, model, float(p_afterpulse), max_distance, float(tol_km),
                  optimize_kwargs)


def _curve_rows(label, analysis, model, p_afterpulse, length, b, best, params, d_max, rep_rate_hz):
    rows = []
    for j, row in enumerate(_rows(analysis, model, p_afterpulse, np.full(len(b), length), b, best, params)):
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
            sub = types.SimpleNamespace(**{name: getattr(best, name)[index] for name in _FIELDS})
            rows += _curve_rows(label, analysis, model, p_afterpulse, length, b, sub, [params[k] for k in index],
                                d_max, rep_rate_hz)
        yield Chunk(rows, i, n_l)


def _finite_key_chunks_search(link, analyses, lengths, blocks, model, p_afterpulse, max_distance, tol_km, kw):
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    mu3 = kw.get("mu3", LIM2014["mu3"])
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
            params = [parameters_row(u[j], type(analysis).n_intensities, mu3) for j in range(len(b))]
            rows += _curve_rows(label, analysis, model, p_afterpulse, length, b, best, params, d_max, rep_rate_hz)
        yield Chunk(rows, i, len(lengths))


def one_vs_two_decoy_curves(
    link: Link,
    lengths_km: Sequence[float],
    block_sizes: Sequence[float],
    *,
    systems: Sequence[tuple[str, float]] = (("exact", 0.0), ("lim2014", LIM2014["p_afterpulse"])),
    two_decoy=None,
    one_decoy=None,
    method: str = "gradient",
    **optimize_kwargs: Any,
):
    """Ratio of the one-decoy (Rusca 2018) to the two-decoy (Lim 2014) rate versus block size.

    One chunk per (system, length). ``method="gradient"``: per system, every (length, block size)
    of both protocols in one call each (:func:`one_vs_two_decoy`; each length a chain along the
    block sizes); ``"search"``: one call per (system, length).

    Args:
        link: the link (a Fiber channel).
        lengths_km: fiber lengths.
        block_sizes: n_X (= Rusca's n_Z), key-basis detections in the block.
        systems: (model, p_afterpulse) pairs, one curve each; afterpulsing needs ``"lim2014"``
            (Lim's closed-form model).
        two_decoy, one_decoy: the analyses (default: Lim's security settings).
        method: ``"gradient"`` or ``"search"``.
        **optimize_kwargs: settings of the method (see :func:`finite_key_curves`).

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
    if method not in METHODS:
        raise ValidationError(f"optimize.method = {method}: must be one of {', '.join(METHODS)}")
    return _ratio_chunks(link, lengths, blocks, list(systems), two, one, method, optimize_kwargs)


def _ratio_chunks(link, lengths, blocks, systems, two, one, method, kw):
    total = len(systems) * len(lengths)
    for s, (model, p_ap) in enumerate(systems):
        common = dict(model=model, p_afterpulse=float(p_ap), two_decoy=two, one_decoy=one, method=method)
        if method == "gradient":
            rows = one_vs_two_decoy(link, lengths, blocks, **common, **kw)
            for i, length in enumerate(lengths):
                yield Chunk([r for r in rows if r["length_km"] == float(length)], s * len(lengths) + i, total)
        else:
            for i, length in enumerate(lengths):
                rows = one_vs_two_decoy(link, [length], blocks, **common, **dict(kw, chunk=len(blocks)))
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


def _study_optimize_settings(spec) -> dict:
    """``method`` and its settings from ``optimize``: ``gradient`` (default; n_starts >= 1,
    continuation >= 0) or ``search`` (:func:`_optimize_settings`); the seed and mu3 for both. The
    other method's settings are validated too."""
    opt = _settings(spec, "optimize")
    method = str(opt.get("method") or "gradient")
    if method not in METHODS:
        raise ValidationError(f"optimize.method = {method}: must be one of {', '.join(METHODS)}")
    search = _optimize_settings(spec)
    gradient = {k: search[k] for k in ("seed", "mu3") if k in search}
    for key, low in (("n_starts", 1), ("continuation", 0)):
        if opt.get(key) is not None:
            value = int(opt[key])
            if value < low:
                raise ValidationError(f"optimize.{key} = {value} is out of range: must be >= {low}")
            gradient[key] = value
    return dict(search if method == "search" else gradient, method=method)


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
        **_study_optimize_settings(spec),
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
        two_decoy=two[0], one_decoy=one[0], **_study_optimize_settings(spec),
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
