"""Figures of the band-plan studies (:mod:`qmc.studies.wdm_plan`): key rate versus distance per band
plan (``wdm_band_plan``) and the classical power budget versus distance (``wdm_power_budget``).

One analysis is drawn (vacuum + weak decoy where the rows have it, the practical protocol; else the
first analysis): the plans and directions are the comparison, and the analyses differ little."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.labels import analysis_name
from qmc.plots.published import overlay
from qmc.plots.rows import curves, number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure
from qmc.plots.wdm import DIRECTION_NAMES, power_label

__all__ = ["key_rate_vs_distance_band_plan", "power_budget_vs_distance", "PLAN_NAMES", "drawn_analysis"]

PLAN_NAMES = {
    "o_band": "O band: quantum 1310 nm, data 1550 nm",
    "c_band": "C band: quantum 1550.12 nm, data 1549.32 nm",
    "configured": "as configured",
}
_PLAN_STYLES = ("-", "--", ":", "-.")
_PLAN_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")
_PREFERRED = ("vacuum_weak", "infinite_decoy")


def drawn_analysis(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The analysis a band-plan figure draws: vacuum + weak decoy, else infinite decoys, else the first."""
    labels = list(dict.fromkeys(str(r["analysis"]) for r in rows))
    for label in _PREFERRED:
        if label in labels:
            return label
    return labels[0] if labels else None


def _plan_name(plan: str) -> str:
    return PLAN_NAMES.get(plan, plan.replace("_", " "))


def key_rate_vs_distance_band_plan(rows: Iterable[Mapping[str, Any]], axes=None, title: str | None = None,
                                   published: Sequence[Mapping[str, Any]] | None = None):
    """Log plot of the key rate (bits per pulse) versus fiber length: one panel per direction, one
    colour per total launch power, one line style per band plan (rows of ``wdm_band_plan``).

    Args:
        rows: rows with ``band_plan``, ``direction``, ``launch_power_dbm``, ``length_km``,
            ``analysis`` and ``key_rate``; one analysis is drawn (:func:`drawn_analysis`).
        axes: a sequence of axes, one per direction (None: a new figure, 9.4 x 3.6 in).
        title: optional run title above the panels.
        published: published points (:mod:`qmc.gallery`) of ``key_rate`` to overlay.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    label = drawn_analysis(rows)
    rows = [r for r in rows if str(r["analysis"]) == label]
    series = curves(rows, lambda r: (str(r.get("direction") or ""), str(r["band_plan"]), number(r["launch_power_dbm"])))
    directions = sorted({k[0] for k in series}) or [""]
    plans = list(dict.fromkeys(str(r["band_plan"]) for r in rows))
    powers = sorted({k[2] for k in series})
    cmap = mpl.colormaps["viridis"]
    colours = {p: cmap(0.85 * i / max(len(powers) - 1, 1)) for i, p in enumerate(powers)}
    styles = {plan: _PLAN_STYLES[i % len(_PLAN_STYLES)] for i, plan in enumerate(plans)}
    with mpl.rc_context(RC_PARAMS):
        own = axes is None
        if own:
            fig, axes = new_figure(1, len(directions), size_in=(4.2 * len(directions) + 1.8, 3.6), sharey=True,
                                   squeeze=False)
            axes = list(axes[0])
        fig = axes[0].figure
        shown = []
        for ax, direction in zip(axes, directions):
            for (d, plan, power), (x, y) in sorted(series.items()):
                keep = np.isfinite(y) & (y > 0)
                if d != direction or not keep.any():
                    continue
                ax.semilogy(x[keep], y[keep], color=colours[power], ls=styles[plan], lw=1.4)
                shown.append(y[keep])
            ax.set_xlabel("Fiber length (km)")
            ax.set_title(DIRECTION_NAMES.get(direction, direction), fontsize="medium")
            all_x = [s[0] for k, s in series.items() if k[0] == direction]
            if all_x:
                lo, hi = float(np.nanmin(np.concatenate(all_x))), float(np.nanmax(np.concatenate(all_x)))
                ax.set_xlim(lo, hi if hi > lo else lo + 1.0)
        axes[0].set_ylabel(r"Secret key rate $R$ (bits per pulse)")
        if shown:
            values = np.concatenate(shown)
            axes[0].set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max())))
        if published:
            overlay(axes[0], published, "key_rate")
        handles = [Line2D([], [], ls="none", label=f"Band plan ({analysis_name(label) if label else ''})")]
        handles += [Line2D([], [], color="0.3", ls=styles[p], lw=1.4, label=_plan_name(p)) for p in plans]
        handles.append(Line2D([], [], ls="none", label="Total classical launch power"))
        handles += [Line2D([], [], color=colours[p], lw=2.0, label=power_label(p)) for p in powers]
        if series:
            legend_right(axes[-1], handles)
        draw_title(fig, title, None if own else axes[0])
    return fig


def power_budget_vs_distance(rows: Iterable[Mapping[str, Any]], axes=None, title: str | None = None):
    """The largest total classical launch power (dBm) versus fiber length (rows of
    ``wdm_power_budget``): left, that still gives a key (``max_launch_power_dbm``); right, that keeps
    10 % of the noiseless key rate (``max_launch_power_dbm_10pct``). One colour per band plan, one
    line style per direction; lengths without a key even without traffic are left off.

    Args:
        rows: rows with ``band_plan``, ``direction``, ``length_km``, ``analysis`` and the two budget
            columns; one analysis is drawn (:func:`drawn_analysis`).
        axes: two axes (None: a new figure, 9.4 x 3.6 in).
        title: optional run title above the panels.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    label = drawn_analysis(rows)
    rows = [r for r in rows if str(r["analysis"]) == label]
    plans = list(dict.fromkeys(str(r["band_plan"]) for r in rows))
    directions = sorted({str(r.get("direction") or "") for r in rows})
    colours = {p: _PLAN_COLOURS[i % len(_PLAN_COLOURS)] for i, p in enumerate(plans)}
    styles = {d: ("-", "--", ":")[i % 3] for i, d in enumerate(directions)}
    panels = (("max_launch_power_dbm", "any key"), ("max_launch_power_dbm_10pct", r"$\geq$ 10 % of the noiseless key"))
    with mpl.rc_context(RC_PARAMS):
        own = axes is None
        if own:
            fig, axes = new_figure(1, 2, size_in=(11.2, 3.6), sharey=True)
        fig = axes[0].figure
        for ax, (column, text) in zip(axes, panels):
            series = curves(rows, lambda r: (str(r["band_plan"]), str(r.get("direction") or "")), y=column)
            for (plan, direction), (x, y) in series.items():
                keep = np.isfinite(y)
                if keep.any():
                    ax.plot(x[keep], y[keep], color=colours[plan], ls=styles[direction], lw=1.4)
            ax.set_xlabel("Fiber length (km)")
            ax.set_title(f"Largest launch power with {text}", fontsize="medium")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("Total classical launch power (dBm)")
        handles = [Line2D([], [], ls="none", label=f"Band plan ({analysis_name(label) if label else ''})")]
        handles += [Line2D([], [], color=colours[p], lw=2.0, label=_plan_name(p)) for p in plans]
        handles.append(Line2D([], [], ls="none", label="Classical traffic"))
        handles += [Line2D([], [], color="0.3", ls=styles[d], lw=1.4, label=DIRECTION_NAMES.get(d, d))
                    for d in directions]
        if rows:
            legend_right(axes[-1], handles)
        draw_title(fig, title, None if own else axes[0])
    return fig
