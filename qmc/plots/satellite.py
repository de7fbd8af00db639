"""Satellite passes (studies ``satellite_pass`` and ``pass_key_vs_elevation``).

``satellite_pass``: six panels, five versus time over the pass (elevation, mean channel loss,
QBER, sifted rate, asymptotic secret key rate per slot; slots below the chosen elevation cut-off
greyed) and the loss versus slant range with any published loss points; the key per pass of each
analysis and estimate is written in the key-rate panel. ``pass_key_vs_elevation``: key per pass
versus culmination elevation, one curve per analysis."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.labels import analysis_name
from qmc.plots.published import overlay
from qmc.plots.rows import column, number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["satellite_pass", "pass_key_vs_elevation"]

_ESTIMATE_NAMES = {"pooled": "pooled", "mean_loss": "mean loss", "monte_carlo_median": "MC median"}


def _true(value) -> bool:
    return value is True or str(value).lower() == "true"


def satellite_pass(rows: Iterable[Mapping[str, Any]], published=None, title: str | None = None):
    """The pass over time (module docstring); rows of ``satellite_pass``."""
    rows = list(rows)
    slots = sorted((r for r in rows if r.get("kind") == "slot"), key=lambda r: number(r["time_s"]))
    summary = [r for r in rows if r.get("kind") == "summary"]
    t = column(slots, "time_s")
    kept = np.array([_true(r.get("in_cutoff")) for r in slots], dtype=bool)
    panels = (("elevation_deg", "Elevation (deg)", False), ("loss_db", "Mean channel loss (dB)", False),
              ("qber", "QBER", False), ("sifted_rate_bps", "Sifted rate (bit/s)", True),
              ("key_rate_bps", "Asymptotic key rate (bit/s)", True))
    with mpl.rc_context(RC_PARAMS):
        fig, axes = new_figure(3, 2, size_in=(7.2, 7.6))
        axes = axes.ravel()
        for ax, (name, label, log) in zip(axes, panels):
            y = column(slots, name)
            ax.plot(t, y, color="C0", lw=1.4)
            ax.plot(t[~kept], y[~kept], color="0.6", ls="none", marker=".", ms=4)
            ax.set_xlabel("Time from culmination (s)")
            ax.set_ylabel(label)
            if log and np.any(y > 0):
                ax.set_yscale("log")
        lines = [f"{analysis_name(str(r['analysis']))}, {_ESTIMATE_NAMES.get(str(r['estimate']), r['estimate'])}: "
                 f"{number(r['key_per_pass_bits']):.3g} bit" for r in summary]
        ax = axes[5]
        ranges = column(slots, "range_km")
        if np.any(np.isfinite(ranges)):
            order = np.argsort(ranges)
            ax.plot(ranges[order], column(slots, "loss_db")[order], color="C0", lw=1.4, label="qmc (link budget)")
            ax.set_xlabel("Slant range (km)")
        else:
            ax.plot(column(slots, "elevation_deg"), column(slots, "loss_db"), color="C0", ls="none", marker=".")
            ax.set_xlabel("Elevation (deg)")
        ax.set_ylabel("Mean channel loss (dB)")
        if overlay(ax, published, "loss_db"):
            ax.legend(fontsize=6, loc="lower right")
        if lines:  # the curve rises to the right: the upper left is free
            ax.text(0.03, 0.97, "key per pass\n" + "\n".join(lines), transform=ax.transAxes, fontsize=5.5,
                    va="top", ha="left")
        draw_title(fig, title)
    return fig


def pass_key_vs_elevation(rows: Iterable[Mapping[str, Any]], title: str | None = None):
    """Key per pass versus culmination elevation, one curve per analysis."""
    rows = list(rows)
    labels = list(dict.fromkeys(str(r["analysis"]) for r in rows))
    with mpl.rc_context(RC_PARAMS):
        fig, ax = new_figure(1, 1, size_in=(5.6, 3.4))
        for j, label in enumerate(labels):
            mine = sorted((r for r in rows if str(r["analysis"]) == label), key=lambda r: number(r["culmination_deg"]))
            x, y = column(mine, "culmination_deg"), column(mine, "key_per_pass_bits")
            ax.plot(x, np.where(y > 0, y, np.nan), marker="o", ms=3, ls=("-", "--", ":", "-.")[j % 4],
                    label=analysis_name(label))
        ax.set_yscale("log")
        ax.set_xlabel("Culmination elevation (deg)")
        ax.set_ylabel("Secret key per pass (bits)")
        legend_right(ax)
        draw_title(fig, title)
    return fig
