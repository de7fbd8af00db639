"""Turbulence fading (study ``turbulence_fading``): one column per fading law. Top: the histogram
of the Monte Carlo draws of X = T / <T> per Rytov variance (steps) against the law's density
(lines): log-normal and Gamma-Gamma (Al-Habash, Andrews, Phillips, Opt. Eng. 40, 1554 (2001))
exact; beam wander the log-negative Weibull approximation of Vasylyev, Semenov, Vogel, PRL 108,
220501 (2012) (dashed), with the exact probability of each bin (dots, from the exact aperture
transmittance). Bottom: key rate per pulse versus mean channel loss: the fixed loss (black), the
fading link's pooled counts (exact engine, solid: on top of the fixed line wherever the fading's
only effect is linear) and the mean of the rates of slots analysed one by one (dotted)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.labels import analysis_name
from qmc.plots.rows import number
from qmc.plots.style import RC_PARAMS, draw_title, legend_below, new_figure

__all__ = ["turbulence_fading", "LAW_NAMES"]

LAW_NAMES = {"lognormal": "log-normal", "gamma_gamma": "Gamma-Gamma", "beam_wander": "beam wander"}


def _key(row) -> float:
    """The curve a row belongs to: its Rytov variance (beam wander: NaN, one curve)."""
    return number(row.get("rytov_variance"))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _colours(values):
    cmap = mpl.colormaps["viridis"]
    return {v: cmap(0.85 * i / max(len(values) - 1, 1)) for i, v in enumerate(values)}


def turbulence_fading(rows: Iterable[Mapping[str, Any]], title: str | None = None):
    """Histograms of X against the densities, and key rate versus mean loss, per law (see the
    module docstring); rows of ``turbulence_fading``.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    laws = list(dict.fromkeys(str(r["law"]) for r in rows if r.get("kind") == "fading"))
    rytov = sorted({_key(r) for r in rows if r.get("kind") == "fading" and not math.isnan(_key(r))})
    colours = _colours(rytov)
    wander_colour = "tab:red"
    key_rows = [r for r in rows if r.get("kind") == "key_rate"]
    label = next(iter(dict.fromkeys(str(r["analysis"]) for r in key_rows)), None)
    with mpl.rc_context(RC_PARAMS):
        fig, axes = new_figure(2, max(len(laws), 1), size_in=(3.0 * max(len(laws), 1) + 0.6, 6.2), squeeze=False)
        for j, law in enumerate(laws):
            top, bottom = axes[0, j], axes[1, j]
            fixed = []
            for value in (rytov if law != "beam_wander" else [math.nan]):
                colour = wander_colour if law == "beam_wander" else colours[value]
                hist = sorted((r for r in rows if r.get("kind") == "histogram" and r["law"] == law
                               and _same(_key(r), value)), key=lambda r: number(r["bin_lo"]))
                if hist:
                    edges = [number(hist[0]["bin_lo"])] + [number(r["bin_hi"]) for r in hist]
                    top.stairs([number(r["density"]) for r in hist], edges, color=colour, alpha=0.5, fill=True,
                               lw=0.0)
                    centres = [0.5 * (number(r["bin_lo"]) + number(r["bin_hi"])) for r in hist]
                    top.plot(centres, [number(r["pdf"]) for r in hist], color=colour, lw=1.4,
                             ls="--" if law == "beam_wander" else "-")
                    if law == "beam_wander":
                        top.plot(centres, [number(r["density_exact"]) for r in hist], color="k", ls="none",
                                 marker=".", ms=3)
                curve = sorted((r for r in key_rows if r["law"] == law and _same(_key(r), value)
                                and r["analysis"] == label), key=lambda r: number(r["loss_db"]))
                if curve:
                    loss = np.array([number(r["loss_db"]) for r in curve])
                    bottom.plot(loss, [number(r["key_rate"]) for r in curve], color=colour, lw=1.6)
                    bottom.plot(loss, [number(r["key_rate_slots"]) for r in curve], color=colour, lw=1.4, ls=":")
                    fixed = curve  # the same fixed-loss curve under every Rytov variance
            if fixed:
                bottom.plot([number(r["loss_db"]) for r in fixed], [number(r["key_rate_fixed"]) for r in fixed],
                            color="k", lw=1.0, ls="--", zorder=3)
            top.set_title(LAW_NAMES.get(law, law))
            top.set_xlabel("Fading factor X = T / <T>")
            top.set_xlim(left=0.0)
            top.set_ylim(bottom=0.0)
            bottom.set_yscale("log")
            bottom.set_xlabel("Mean channel loss (dB)")
            if j == 0:
                top.set_ylabel("Probability density")
                name = f", {analysis_name(label)}" if label is not None else ""
                bottom.set_ylabel(f"Key rate{name} (bits per pulse)")
        positive = [number(r[c]) for r in key_rows for c in ("key_rate", "key_rate_fixed", "key_rate_slots")
                    if number(r[c]) > 0]
        if positive:
            for ax in axes[1]:
                ax.set_ylim(max(min(positive), 1e-7 * max(positive)), 2.0 * max(positive))
        handles = [Line2D([], [], color=colours[v], lw=2.0, label=f"sigma_R^2 = {v:g}") for v in rytov]
        if "beam_wander" in laws:
            handles.append(Line2D([], [], color=wander_colour, lw=2.0, label="beam wander"))
        handles += [
            Line2D([], [], color="0.4", lw=6.0, alpha=0.5, label="Monte Carlo histogram of X"),
            Line2D([], [], color="0.3", lw=1.4, label="density (log-normal, Gamma-Gamma: exact)"),
            Line2D([], [], color="0.3", lw=1.4, ls="--", label="beam wander: Vasylyev et al. 2012 approximation"),
            Line2D([], [], color="k", ls="none", marker=".", label="beam wander: exact bin probability / width"),
            Line2D([], [], color="k", lw=1.0, ls="--", label="key rate, fixed mean loss"),
            Line2D([], [], color="0.3", lw=1.6, label="key rate with fading (pooled counts, exact engine)"),
            Line2D([], [], color="0.3", lw=1.4, ls=":", label="mean key rate of slots analysed one by one"),
        ]
        legend_below(fig, handles, ncol=3)
        draw_title(fig, title)
    return fig
