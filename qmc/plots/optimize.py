"""Optimal protocol parameters versus distance (study ``optimize_link``)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.rows import number
from qmc.plots.style import RC_PARAMS

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

    Three panels sharing the length axis: the optimized key rate (bits per pulse, log scale), the
    intensities and the probabilities p_mu_k and p_Z; one line style per analysis,
    one colour per parameter. Only points with a key are drawn (markers as well as lines, so a
    single-length run shows its point). Only free parameters are drawn (fixed ones are the
    user's, not optima).

    Args:
        rows: rows of study ``optimize_link`` (``analysis``, ``length_km``, ``key_rate``, ``mu*``,
            ``p_mu*``, ``p_z``, ``free``), e.g. from :func:`qmc.results.read_results`.
        ax: None (a new figure) or a sequence of three axes.
        title: optional title above the first panel.

    Returns:
        The matplotlib Figure.
    """
    groups = _by_analysis(rows)
    with mpl.rc_context(RC_PARAMS):
        if ax is None:
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(3, 1, sharex=True, figsize=(5.0, 7.0))
        else:
            axes = list(ax)
            fig = axes[0].figure
        from matplotlib.lines import Line2D

        style_handles, colour_handles, rates = [], {}, []
        for n, (label, group) in enumerate(groups.items()):
            ls = _STYLES[n % len(_STYLES)]
            x = np.asarray([number(r["length_km"]) for r in group])
            rate = np.asarray([number(r["key_rate"]) for r in group])
            keep = np.isfinite(rate) & (rate > 0)
            if not keep.any():
                continue
            free = set(str(group[0].get("free") or "").split())
            axes[0].semilogy(x[keep], rate[keep], ls=ls, marker=".", color="k")
            rates.append(rate[keep])
            style_handles.append(Line2D([], [], color="k", ls=ls, marker=".", label=label))
            for panel, params in ((axes[1], _INTENSITIES), (axes[2], _PROBABILITIES)):
                for name, color in params:
                    if name not in free:  # fixed by the user: not an optimum
                        continue
                    y = np.asarray([number(r.get(name)) for r in group])
                    ok = keep & np.isfinite(y) & (y > 0)
                    if not ok.any():
                        continue
                    panel.plot(x[ok], y[ok], ls=ls, marker=".", color=color)
                    colour_handles.setdefault(panel, {})[name] = Line2D([], [], color=color, label=_TEX[name])
        axes[0].set_ylabel("Key rate (bits/pulse)")
        axes[1].set_ylabel("Optimal intensity")
        axes[2].set_ylabel("Optimal probability")
        axes[2].set_ylim(0.0, 1.02)
        axes[2].set_xlabel("Fiber length (km)")
        if style_handles:
            axes[0].legend(handles=style_handles, loc="best")
        for panel, handles in colour_handles.items():
            panel.legend(handles=list(handles.values()), loc="best", ncol=2)
        from matplotlib.ticker import NullFormatter

        axes[0].yaxis.set_minor_formatter(NullFormatter())  # minor log labels crowd the panel
        if rates:  # whole decades, so that a single point still gets labelled ticks
            values = np.concatenate(rates)
            axes[0].set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max())))
        axes[1].set_ylim(bottom=0.0)
        if title:
            axes[0].set_title(title)
        fig.align_ylabels(axes)
    return fig
