"""Study ``one_vs_two_decoy``: the optimized one-decoy rate over the two-decoy rate versus block size.

Rusca, Boaron, Grunenfelder, Martin, Zbinden, APL 112, 171104 (2018) (one decoy,
:class:`qmc.analysis.FiniteRusca2018`) against Lim et al., PRA 89, 022307 (2014) (two decoys,
:class:`qmc.analysis.FiniteLim2014`), each optimized on its own (:mod:`qmc.studies.finite_optimize`)
with the same security settings and block size n_X = n_Z, for one or more system models (with and
without afterpulsing).
"""

from __future__ import annotations

import math
import types
from typing import Any, Sequence

import numpy as np

from qmc.analysis.finite import FiniteLim2014, FiniteRusca2018
from qmc.link import Link
from qmc.presets import LIM2014, lim2014_analysis
from qmc.studies.finite_optimize import METHODS, check_finite_inputs, check_method, optimize_at
from qmc.studies.registry import Chunk, Study, register
from qmc.studies.settings import FiniteSettings
from qmc.studies.spec import analyses, optimize_settings, require_exact_engine, seed, setting, sweep_axis
from qmc.validation import Range, ValidationError

__all__ = ["one_vs_two_decoy", "one_vs_two_decoy_curves", "RATIO_COLUMNS"]

RATIO_COLUMNS = (
    "length_km", "block_size", "model", "p_afterpulse", "rate_one_decoy", "rate_two_decoy", "ratio",
    "one_mu1", "one_mu2", "one_p_mu1", "one_p_mu2", "one_p_z",
    "two_mu1", "two_mu2", "two_mu3", "two_p_mu1", "two_p_mu2", "two_p_mu3", "two_p_z",
)


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
    kw = check_method(method, optimize_kwargs)
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
    best2, _, params2 = optimize_at(method, two, link, grid_l, grid_b, **kw)
    best1, _, params1 = optimize_at(method, one, link, grid_l, grid_b, **kw)
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
        check_finite_inputs(link, {"two_decoy": two, "one_decoy": one}, lengths, blocks, model, p_ap)
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


def _run_one_vs_two_decoy(spec):
    """Registry adapter of study ``one_vs_two_decoy`` (see :func:`one_vs_two_decoy_curves`).

    ``finite.p_afterpulse`` is a list, one curve each: 0 uses ``finite.model`` (the exact engine by
    default), a positive value Lim's closed-form model ``"lim2014"``.
    """
    require_exact_engine(spec, "one_vs_two_decoy", "uses expected counts (finite.model selects the exact engine or Lim's closed-form model)")
    finite = setting(spec, "finite", FiniteSettings)
    variants = analyses(spec)
    two = [a for a in variants.values() if isinstance(a, FiniteLim2014)]
    one = [a for a in variants.values() if isinstance(a, FiniteRusca2018)]
    if len(two) != 1 or len(one) != 1:
        raise ValidationError("analysis.variants: study one_vs_two_decoy needs one FiniteLim2014 and one "
                              "FiniteRusca2018 analysis (analysis=finite_lim2014_vs_rusca2018)")
    p_aps = [float(p) for p in np.atleast_1d(finite.p_afterpulse)]
    systems = [(finite.model if p == 0.0 else "lim2014", p) for p in p_aps]
    return one_vs_two_decoy_curves(
        spec["link"], sweep_axis(spec, "length_km"), sweep_axis(spec, "block_size"), systems=systems,
        two_decoy=two[0], one_decoy=one[0], **optimize_settings(spec).optimizer_kwargs(seed(spec), spec.get("protocol")),
    )


register(Study(name="one_vs_two_decoy", run=_run_one_vs_two_decoy, columns=RATIO_COLUMNS, figure="qmc.plots.finite:ratio_vs_block_size",
               figure_name="one_vs_two_decoy"))
