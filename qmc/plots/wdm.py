"""Key rate versus distance beside classical traffic (study ``wdm_coexistence``): one colour per
total classical launch power, one line style per analysis (asymptotic and finite-key: the legend
gives a finite-key analysis' block size n_X)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.finite import block_label
from qmc.plots.keyrate import LABELS
from qmc.plots.labels import analysis_name
from qmc.plots.rows import curves, number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["key_rate_vs_distance_wdm", "power_label", "analysis_label", "DIRECTION_NAMES"]

DIRECTION_NAMES = {"co": "co-propagating", "counter": "counter-propagating", "co+counter": "both directions"}
_STYLES = ("-", "--", ":", "-.")


def power_label(power_dbm: float) -> str:
    """Legend text of one total launch power: ``$P = -20$ dBm``; -inf dBm is "no traffic"."""
    if math.isinf(power_dbm) and power_dbm < 0:
        return "no classical traffic"
    return rf"$P = {power_dbm:g}$ dBm"


def _series(rows: Iterable[Mapping[str, Any]]) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    return curves(rows, lambda row: (number(row["launch_power_dbm"]), str(row.get("direction") or ""),
                                     str(row["analysis"])))


def _block_sizes(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """analysis -> its finite block size n_X, for the analyses whose rows give one."""
    out = {}
    for row in rows:
        block = number(row.get("block_size"))
        if math.isfinite(block):
            out[str(row["analysis"])] = block
    return out


def analysis_label(analysis: str, block_sizes: Mapping[str, float]) -> str:
    """Legend text of an analysis: its name, and its block size when it is a finite-key one."""
    block = block_sizes.get(analysis)
    return analysis_name(analysis) + ("" if block is None else f", {block_label(block)}")


def key_rate_vs_distance_wdm(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """Log plot of the secret key rate (bits per pulse) versus fiber length, one curve per total
    classical launch power (colour) and analysis (line style).

    Points where the rate is 0 are left off (a log axis cannot show them): each curve ends at the
    maximum distance of its launch power. The legend stands to the right of the axes: the launch
    powers (with the traffic's direction), then the analyses. Rows of several directions get one
    line style per (direction, analysis). Finite-key analyses (rows with a ``block_size``) have
    their block size in the legend.

    Args:
        rows: rows of ``wdm_coexistence`` (``length_km``, ``launch_power_dbm``, ``direction``,
            ``analysis``, ``key_rate``), e.g. :func:`qmc.results.read_results`.
        ax: axes to draw on (None: a new figure, 6.8 x 3.6 in, the legend beside the axes).
        title: optional run title (wrapped, small), above the axes.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    series = _series(rows)
    blocks = _block_sizes(rows)
    powers = sorted({k[0] for k in series})
    directions = sorted({k[1] for k in series})
    analyses = [k for k in LABELS if any(s[2] == k for s in series)]
    analyses += sorted({k[2] for k in series} - set(analyses))
    styles = [(d, a) for d in directions for a in analyses]
    cmap = mpl.colormaps["viridis"]
    colours = {p: cmap(0.85 * i / max(len(powers) - 1, 1)) for i, p in enumerate(powers)}
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        if own:
            fig, ax = new_figure(size_in=(6.8, 3.6))
        else:
            fig = ax.figure
        shown = []
        for (power, direction, analysis), (x, y) in sorted(series.items()):
            keep = np.isfinite(y) & (y > 0)
            if not keep.any():
                continue
            ls = _STYLES[styles.index((direction, analysis)) % len(_STYLES)]
            ax.semilogy(x[keep], y[keep], color=colours[power], ls=ls, lw=1.4)
            shown.append(y[keep])
        ax.set_xlabel("Fiber length (km)")
        ax.set_ylabel(r"Secret key rate $R$ (bits per pulse)")
        all_x = np.concatenate([s[0] for s in series.values()]) if series else np.zeros(1)
        lo, hi = float(np.nanmin(all_x)), float(np.nanmax(all_x))
        ax.set_xlim(lo, hi if hi > lo else lo + 1.0)
        if shown:
            values = np.concatenate(shown)
            ax.set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max())))
        handles = []
        if series:
            heading = " and ".join(DIRECTION_NAMES.get(d, d) for d in directions if d)
            handles.append(Line2D([], [], ls="none", label="Classical launch power" + (f" ({heading})" if heading
                                                                                       else "")))
            handles += [Line2D([], [], color=colours[p], lw=2.0, label=power_label(p)) for p in powers]
            handles.append(Line2D([], [], ls="none", label="Analysis"))
            for direction, analysis in styles:
                text = analysis_label(analysis, blocks) + (f" ({DIRECTION_NAMES.get(direction, direction)})"
                                                  if len(directions) > 1 else "")
                ls = _STYLES[styles.index((direction, analysis)) % len(_STYLES)]
                handles.append(Line2D([], [], color="0.3", ls=ls, lw=1.4, label=text))
            legend_right(ax, handles)
        draw_title(fig, title, None if own else ax)
    return fig
