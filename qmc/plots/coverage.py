"""Coverage figure: how often the finite-key bounds fail in simulated sessions, against the
failure probability each bound promises (study ``finite_key_coverage``)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.rows import number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["failure_rates", "BOUND_LABELS"]

# Key basis Z, test basis X (qmc's convention; Lim calls the key basis X).
BOUND_LABELS = {
    "s1": r"$s_{Z,1}$ (lower)",
    "s1_test": r"$s_{X,1}$ (lower)",
    "v1_test": r"$v_{X,1}$ (upper)",
    "phase_error": r"$\phi_Z$ (upper)",
}
_ANALYSIS_TITLES = {
    "finite_lim2014": "Lim et al. 2014 (two decoys)",
    "finite_rusca2018": "Rusca et al. 2018 (one decoy)",
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _power_label(n: float, symbol: str = "n_X") -> str:
    exponent = math.log10(n) if n > 0 else float("nan")
    if math.isfinite(exponent) and abs(exponent - round(exponent)) < 1e-9:
        return rf"${symbol} = 10^{{{int(round(exponent))}}}$"
    return rf"${symbol} = {n:.3g}$"


def failure_rates(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """Failure rate of each bound relative to the probability it promises, versus block size, one
    panel per analysis.

    Each point is one (bound, eps, length) at a block size: a hollow marker at the one-sided upper
    confidence bound of the failure rate divided by the promised probability
    (``failure_rate_hi / promised``), a line down to the lower bound where it is above 0, and a
    filled dot at the observed rate where there were failures. The points of one block size are
    spread sideways (bound, then eps, then length) so that none hides another; color is the bound,
    the marker eps. Below the dashed line at 1 a promise is verified at the rows' confidence;
    above it with the lower bound too, a bound fails more often than promised.

    Args:
        rows: rows of study ``finite_key_coverage`` (analysis, bound, eps, block_size, length_km,
            promised, failure_rate, failure_rate_lo, failure_rate_hi, confidence).
        ax: axes to draw on (every analysis on it); None: a new figure, one panel per analysis.
        title: optional run title (wrapped, small), above the panels.

    Returns:
        The matplotlib Figure.
    """
    rows = [r for r in rows if number(r.get("promised")) > 0 and math.isfinite(number(r.get("failure_rate_hi")))]
    names = sorted({str(r["analysis"]) for r in rows}) or [""]
    lengths = sorted({number(r["length_km"]) for r in rows})
    epss = sorted({number(r["eps"]) for r in rows}, reverse=True)
    bounds = [b for b in BOUND_LABELS if any(r["bound"] == b for r in rows)]
    colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(bounds), 1)))
    color_of = dict(zip(bounds, colors))
    marker_of = {e: _MARKERS[i % len(_MARKERS)] for i, e in enumerate(epss)}
    n_slots = max(len(bounds) * len(epss) * len(lengths), 1)
    step_dex = min(0.6 / n_slots, 0.05)  # the cluster of a block size spans at most 0.6 decade
    confidence = next((number(r.get("confidence")) for r in rows), 0.95)
    with mpl.rc_context(RC_PARAMS):
        if ax is None:
            fig, axes = new_figure(1, len(names), size_in=(3.3 * len(names) + 1.9, 3.6), squeeze=False, sharey=True)
            axes = list(axes[0])
        else:
            fig, axes = ax.figure, [ax] * len(names)
        ratios = []
        for panel, name in zip(axes, names):
            for r in (r for r in rows if str(r["analysis"]) == name):
                promised = number(r["promised"])
                bound, eps = r["bound"], number(r["eps"])
                slot = (bounds.index(bound) * len(epss) + epss.index(eps)) * len(lengths) + lengths.index(
                    number(r["length_km"]))
                x = number(r["block_size"]) * 10.0 ** (step_dex * (slot - (n_slots - 1) / 2.0))
                lo, hi = number(r["failure_rate_lo"]) / promised, number(r["failure_rate_hi"]) / promised
                color = color_of.get(bound, "k")
                panel.plot([x], [hi], marker=marker_of[eps], ms=4.0, ls="none", mfc="none", mec=color, mew=0.9)
                if lo > 0:
                    panel.plot([x, x], [lo, hi], color=color, lw=0.8)
                    ratios.append(lo)
                rate = number(r.get("failure_rate"))
                if math.isfinite(rate) and rate > 0:
                    panel.plot([x], [rate / promised], marker="o", ms=2.8, ls="none", color=color)
                    ratios.append(rate / promised)
                ratios.append(hi)
            if ax is None or panel is axes[0]:
                panel.set_xscale("log")
                panel.set_yscale("log")
            if ax is None:
                panel.set_title(_ANALYSIS_TITLES.get(name, name))
            panel.set_xlabel(r"block size $n_X$ (key-basis detections)")
        for panel in dict.fromkeys(axes):
            panel.axhline(1.0, color="0.4", ls="--", lw=0.9)
        if ratios:
            panel_lo, panel_hi = min(min(ratios), 1.0) / 3.0, max(max(ratios), 1.0) * 3.0
            axes[0].set_ylim(panel_lo, panel_hi)
        axes[0].set_ylabel(rf"failure rate / promised $\epsilon$ (one-sided {100 * confidence:g} %)")
        handles = [Line2D([], [], color=color_of[b], lw=1.2, label=BOUND_LABELS[b]) for b in bounds]
        handles += [Line2D([], [], marker=marker_of[e], mfc="none", mec="0.2", ls="none",
                           label=_power_label(e, r"\epsilon")) for e in epss]
        handles += [Line2D([], [], marker="o", ms=2.8, color="0.2", ls="none", label="observed rate (> 0)"),
                    Line2D([], [], color="0.4", ls="--", lw=0.9, label="rate = promised")]
        legend_right(axes[-1], handles)
        draw_title(fig, title, None if ax is None else ax)
    return fig
