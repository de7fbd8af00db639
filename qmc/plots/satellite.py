"""Satellite passes (studies ``satellite_pass`` and ``pass_key_vs_elevation``).

``satellite_pass``: six panels, five versus time over the pass (elevation, mean channel loss,
QBER, sifted rate, asymptotic secret key rate per slot; slots below the chosen elevation cut-off
greyed) and the loss versus slant range with any published loss points; the key per pass of each
analysis and estimate is written in the key-rate panel. ``pass_key_vs_elevation``: key per pass
versus culmination elevation, one curve per analysis. ``key_per_day``: the key of each pass of the
day as bars at its culmination elevation, one colour per analysis, with the day's totals."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.labels import analysis_name
from qmc.plots.published import overlay
from qmc.plots.rows import column, number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["satellite_pass", "pass_key_vs_elevation", "key_per_day"]

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


def key_per_day(rows: Iterable[Mapping[str, Any]], title: str | None = None):
    """Bars of the key of each pass (rows ``kind = pass`` of ``key_per_day``) at its culmination
    elevation, one colour per analysis, each bar marked with its culmination time (UTC); the
    legend gives each analysis' key per day (its ``summary`` row)."""
    rows = list(rows)
    passes = [r for r in rows if r.get("kind") == "pass"]
    totals = {str(r["analysis"]): r for r in rows if r.get("kind") == "summary"}
    labels = list(dict.fromkeys(str(r["analysis"]) for r in passes))
    width = 2.4 / max(1, len(labels))
    with mpl.rc_context(RC_PARAMS):
        fig, ax = new_figure(1, 1, size_in=(5.6, 3.4))
        for j, label in enumerate(labels):
            mine = [r for r in passes if str(r["analysis"]) == label]
            x = column(mine, "culmination_deg") + (j - 0.5 * (len(labels) - 1)) * width
            total = totals.get(label, {}).get("key_per_day_bits")
            name = analysis_name(label) + ("" if total is None else f": {number(total):.3g} bit per day")
            ax.bar(x, column(mine, "key_per_pass_bits"), width=width, color=f"C{j}", label=name)
        first = [r for r in passes if str(r["analysis"]) == labels[0]] if labels else []
        for r in first:  # the culmination time above the pass's tallest bar
            height = max(number(q["key_per_pass_bits"]) for q in passes if q["pass_index"] == r["pass_index"])
            ax.annotate(str(r.get("culmination_utc") or "")[11:16], (number(r["culmination_deg"]), height),
                        xytext=(0, 2), textcoords="offset points", fontsize=6, ha="center", va="bottom",
                        color="0.3")
        ax.set_xlim(0.0, 90.0)
        tallest = float(np.nanmax(column(passes, "key_per_pass_bits"))) if passes else 0.0
        ax.set_ylim(0.0, 1.12 * tallest if tallest > 0 else 1.0)
        ax.set_xlabel("Culmination elevation (deg)")
        ax.set_ylabel("Secret key per pass (bits)")
        n = len(first)
        ax.set_title(f"{n} pass{'es' if n != 1 else ''} (culmination times UTC above the bars)", fontsize=7)
        ax.legend(fontsize=6, loc="upper left", frameon=False)
        draw_title(fig, title)
    return fig
