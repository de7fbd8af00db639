"""Bursty classical traffic (study ``wdm_bursty_traffic``): the mean-noise answer against the pulse
engine, versus the bursts' duty cycle. Left: finite-key length per session (mean-noise line; the
simulated sessions' mean with their range as a bar). Right: key rate per pulse of every analysis,
mean-noise lines (finite-key ones at the pooled pulses) against the pulse engine's pooled counts
(markers). One colour per fiber length."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.labels import analysis_name
from qmc.plots.rows import curves, number
from qmc.plots.style import RC_PARAMS, draw_title, legend_below, new_figure

__all__ = ["bursty_traffic"]

_STYLES = ("-", "--", ":", "-.")


def _rows(rows, estimate):
    return [r for r in rows if r.get("estimate") == estimate]


def bursty_traffic(rows: Iterable[Mapping[str, Any]], title: str | None = None):
    """Two panels versus duty cycle (see the module docstring); rows of ``wdm_bursty_traffic``.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    lengths = sorted({number(r["length_km"]) for r in rows})
    analyses = list(dict.fromkeys(str(r["analysis"]) for r in rows))
    finite = [a for a in analyses if any(r["analysis"] == a for r in _rows(rows, "pulse_sessions"))]
    cmap = mpl.colormaps["viridis"]
    colours = {L: cmap(0.8 * i / max(len(lengths) - 1, 1)) for i, L in enumerate(lengths)}
    with mpl.rc_context(RC_PARAMS):
        fig, (left, right) = new_figure(1, 2, size_in=(7.2, 3.4))
        for L in lengths:
            c = colours[L]
            for j, a in enumerate(finite):
                mean = curves([r for r in _rows(rows, "mean_noise") if r["analysis"] == a and number(r["length_km"]) == L],
                              lambda r: 0, x="duty_cycle", y="key_length_bits").get(0)
                sess = [r for r in _rows(rows, "pulse_sessions") if r["analysis"] == a and number(r["length_km"]) == L]
                if mean is not None:
                    left.plot(mean[0], mean[1], color=c, ls=_STYLES[j % len(_STYLES)], lw=1.4)
                if sess:
                    sess.sort(key=lambda r: number(r["duty_cycle"]))
                    x = np.array([number(r["duty_cycle"]) for r in sess])
                    y = np.array([number(r["key_length_bits"]) for r in sess])
                    lo = y - np.array([number(r["key_length_min_bits"]) for r in sess])
                    hi = np.array([number(r["key_length_max_bits"]) for r in sess]) - y
                    left.errorbar(x, y, yerr=[lo, hi], color=c, marker="o", ms=4, ls="none", capsize=3)
            for j, a in enumerate(analyses):
                ls = _STYLES[j % len(_STYLES)]
                line = "mean_noise_pooled" if a in finite else "mean_noise"  # the pooled counts' block
                mean = curves([r for r in _rows(rows, line) if r["analysis"] == a and number(r["length_km"]) == L],
                              lambda r: 0, x="duty_cycle").get(0)
                pooled = curves([r for r in _rows(rows, "pulse_pooled") if r["analysis"] == a and number(r["length_km"]) == L],
                                lambda r: 0, x="duty_cycle").get(0)
                if mean is not None:
                    right.plot(mean[0], mean[1], color=c, ls=ls, lw=1.4)
                if pooled is not None:
                    right.plot(pooled[0], pooled[1], color=c, ls="none", marker="os^v"[j % 4], ms=4, mfc="none")
        left.set_xlabel("Duty cycle of the bursts")
        left.set_ylabel("Finite key per session (bits)")
        right.set_xlabel("Duty cycle of the bursts")
        right.set_ylabel("Key rate (bits per pulse)")
        for ax in (left, right):
            ax.set_xlim(0.0, 1.05)
            ax.set_ylim(bottom=0.0)
        handles = [Line2D([], [], color=colours[L], lw=2.0, label=f"{L:g} km") for L in lengths]
        handles += [Line2D([], [], color="0.3", ls=_STYLES[j % len(_STYLES)], label=f"{analysis_name(a)}, mean noise")
                    for j, a in enumerate(analyses)]
        handles += [Line2D([], [], color="0.3", ls="none", marker="os^v"[j % 4], mfc="none",
                           label=f"{analysis_name(a)}, pulse engine (pooled)") for j, a in enumerate(analyses)]
        if finite:
            handles.append(Line2D([], [], color="0.3", ls="none", marker="o",
                                  label="sessions: mean, smallest to largest"))
        legend_below(fig, handles, ncol=2)
        draw_title(fig, title)
    return fig
