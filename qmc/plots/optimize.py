"""Optimal protocol parameters versus distance (study ``optimize_link``)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from qmc.plots.labels import analysis_name
from qmc.plots.rows import number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["optimal_parameters_vs_distance"]

_STYLES = ("-", "--", ":", "-.")
_INTENSITIES = (("mu1", "tab:blue"), ("mu2", "tab:orange"), ("mu3", "tab:green"))
_PROBABILITIES = (("p_mu1", "tab:blue"), ("p_mu2", "tab:orange"), ("p_mu3", "tab:green"), ("p_z", "tab:red"))
_TEX = {"mu1": r"$\mu_1$", "mu2": r"$\mu_2$", "mu3": r"$\mu_3$", "p_mu1": r"$p_{\mu_1}$",
        "p_mu2": r"$p_{\mu_2}$", "p_mu3": r"$p_{\mu_3}$", "p_z": r"$p_Z$"}


def _by_analysis(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(str(row["analysis"]), []).append(row)
    for label in out:
        out[label].sort(key=lambda r: number(r["length_km"]))
    return out


def optimal_parameters_vs_distance(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """Key rate, optimal intensities and optimal probabilities versus fiber length.

    Up to three panels sharing the length axis: the optimized key rate (bits per pulse, log
    scale), the intensities, and the probabilities p_mu_k and p_Z; one line style per analysis,
    one colour per parameter, each key in a legend to the right of its panel. Only points with a
    key are drawn (markers as well as lines, so a single-length run shows its point), and only
    free parameters (fixed ones are the user's, not optima); a panel with nothing to draw is left
    out, and analyses without a key at any length are named in the rate panel's legend title.

    Args:
        rows: rows of study ``optimize_link`` (``analysis``, ``length_km``, ``key_rate``, ``mu*``,
            ``p_mu*``, ``p_z``, ``free``), e.g. from :func:`qmc.results.read_results`.
        ax: None (a new figure, 7.2 in wide, 2.1 in per panel) or a sequence of three axes (rate,
            intensities, probabilities; one with nothing to draw is hidden).
        title: optional run title (wrapped, small), above the first panel.

    Returns:
        The matplotlib Figure.
    """
    groups = _by_analysis(rows)
    rates: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    params: dict[int, list[tuple[str, str, str, np.ndarray, np.ndarray]]] = {1: [], 2: []}
    no_key = []
    for label, group in groups.items():
        x = np.asarray([number(r["length_km"]) for r in group])
        rate = np.asarray([number(r["key_rate"]) for r in group])
        keep = np.isfinite(rate) & (rate > 0)
        if not keep.any():
            no_key.append(label)
            continue
        rates[label] = (x[keep], rate[keep])
        free = set(str(group[0].get("free") or "").split())
        for panel, names in ((1, _INTENSITIES), (2, _PROBABILITIES)):
            for name, color in names:
                if name not in free:  # fixed by the user: not an optimum
                    continue
                y = np.asarray([number(r.get(name)) for r in group])
                ok = keep & np.isfinite(y) & (y > 0)
                if ok.any():
                    params[panel].append((label, name, color, x[ok], y[ok]))
    panels = [0] + [p for p in (1, 2) if params[p]]
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        if own:
            fig, axes = new_figure(len(panels), 1, sharex=True, size_in=(7.2, 1.0 + 2.1 * len(panels)), squeeze=False)
            axes = dict(zip(panels, axes[:, 0]))
        else:
            given = list(ax)
            fig = given[0].figure
            for p, a in enumerate(given):
                a.set_visible(p in panels)
            axes = {p: given[p] for p in panels}
        style = {label: _STYLES[n % len(_STYLES)] for n, label in enumerate(rates)}
        for label, (x, rate) in rates.items():
            axes[0].semilogy(x, rate, ls=style[label], marker=".", color="k", label=analysis_name(label))
        colour_keys: dict[int, dict[str, Line2D]] = {}
        for p in (1, 2):
            for label, name, color, x, y in params[p]:
                axes[p].plot(x, y, ls=style[label], marker=".", color=color, label=f"{analysis_name(label)}: {_TEX[name]}")
                colour_keys.setdefault(p, {})[name] = Line2D([], [], color=color, marker=".", label=_TEX[name])
        axes[0].set_ylabel(r"Key rate $R$ (bits per pulse)")
        if 1 in axes:
            axes[1].set_ylabel("Optimal intensity")
            axes[1].set_ylim(bottom=0.0)
        if 2 in axes:
            axes[2].set_ylabel("Optimal probability")
            axes[2].set_ylim(0.0, 1.02)
        axes[panels[-1]].set_xlabel("Fiber length (km)")
        note = f"no key: {', '.join(analysis_name(a) for a in no_key)}" if no_key else None
        if rates or note:
            handles = [Line2D([], [], color="k", ls=style[a], marker=".", label=analysis_name(a)) for a in rates]
            legend_right(axes[0], handles, title=note, title_fontsize=8)
        for p, keys in colour_keys.items():
            legend_right(axes[p], [keys[name] for name in _TEX if name in keys])
        axes[0].yaxis.set_minor_formatter(NullFormatter())  # minor log labels crowd the panel
        if rates:  # whole decades, so that a single point still gets labelled ticks
            values = np.concatenate([r for _, r in rates.values()])
            axes[0].set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max())))
        draw_title(fig, title, None if own else axes[0])
        fig.align_ylabels(list(axes.values()))
    return fig
