"""Figure: the usual afterpulsing approximation against the stream simulation (rows of
:func:`qmc.studies.afterpulsing.afterpulse_comparison_rows`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.rows import number
from qmc.plots.style import (
    RC_PARAMS,
    draw_title,
    legend_below,
    legend_right,
    new_figure,
)

__all__ = ["approximation_vs_simulation", "MIN_COUNTS"]

# Detections below which a simulated point is drawn open: its batch-means standard error rests on
# a handful of streams and can be far off (zero for a single detection).
MIN_COUNTS = 100
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def approximation_vs_simulation(rows, axes=None, title: str | None = None):
    """Gain and QBER (Z basis) versus p_ap, one colour per intensity: lines the approximation
    (clicks x (1 + p_ap)), points the stream simulation with error bars of one standard error
    (batch means over the independent streams). A point from fewer than :data:`MIN_COUNTS`
    detections (``n_detected``) is drawn open; a class without a detection has no QBER, and its
    gain is drawn as its 95 % upper limit 3 / ``n_sent`` (an open triangle; the log axis cannot
    show 0). The legend says each of these.

    Args:
        rows: rows of study ``afterpulsing`` (p_afterpulse, k, mu, gain_/qber_ approx, sim,
            sim_stderr, n_sent, n_detected, model_rate); rows without the counts are drawn filled.
        axes: two matplotlib axes (None: a new 8.4 x 4.2 in figure, the legend below both
            panels; given axes get the legend to the right of the second).
        title: optional run title (wrapped, small), above the panels.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    with plt.rc_context(RC_PARAMS):
        own = axes is None
        if own:
            fig, axes = new_figure(1, 2, size_in=(8.4, 4.2))
        else:
            fig = axes[0].figure
        few = undetected = upper = False
        colour_keys = []
        for k in sorted({int(number(r["k"])) for r in rows}):
            rs = sorted((r for r in rows if int(number(r["k"])) == k), key=lambda r: number(r["p_afterpulse"]))
            color = _COLORS[k % len(_COLORS)]
            label = rf"$\mu_{{{k + 1}}} = {number(rs[0]['mu']):g}$"
            colour_keys.append(Line2D([], [], color=color, label=label))
            p = np.array([number(r["p_afterpulse"]) for r in rs])
            counts = np.array([number(r.get("n_detected")) for r in rs])
            enough = ~(counts < MIN_COUNTS)  # NaN (no count column) counts as enough
            for ax, name in zip(axes, ("gain", "qber")):
                ax.plot(p, [number(r[f"{name}_approx"]) for r in rs], "-", color=color, label=f"approximation, {label}")
                y = np.array([number(r[f"{name}_sim"]) for r in rs])
                err = np.array([number(r[f"{name}_sim_stderr"]) for r in rs])
                shown = np.isfinite(y) & (y > 0 if name == "gain" else True)
                few |= bool((shown & ~enough).any())
                if name == "gain":
                    # No detection in n gates: the gain's 95 % upper limit is 3 / n (rule of three).
                    sent = np.array([number(r.get("n_sent")) for r in rs])
                    limit = (counts == 0) & (sent > 0)
                    if limit.any():
                        ax.plot(p[limit], 3.0 / sent[limit], "v", ms=5, color=color, mfc="none", ls="none",
                                label=f"no detection, 95 % upper limit, {label}")
                        upper = True
                else:
                    undetected |= bool((~shown).any())
                for sel, mfc, text in ((shown & enough, color, "simulation"),
                                       (shown & ~enough, "none", f"simulation, fewer than {MIN_COUNTS} detections")):
                    if sel.any():
                        ax.errorbar(p[sel], y[sel], yerr=err[sel], fmt="o", ms=4, color=color, mfc=mfc, capsize=2,
                                    label=f"{text}, {label}")
        axes[0].set_yscale("log")
        axes[0].set_ylabel(r"Gain $Q_\mu$ (Z basis)")
        axes[1].set_ylabel(r"QBER $E_\mu$ (Z basis)")
        for ax in axes:
            ax.set_xlabel(r"Afterpulse probability $p_{\mathrm{ap}}$")
        handles = [Line2D([], [], color="k", ls="-", label=r"approximation, clicks $\times\,(1 + p_{\mathrm{ap}})$"),
                   Line2D([], [], color="k", marker="o", ms=4, ls="none", label="simulation (stream engine)")]
        if few:
            handles.append(Line2D([], [], color="k", marker="o", ms=4, mfc="none", ls="none",
                                  label=f"fewer than {MIN_COUNTS} detections: open markers"))
        if upper:
            handles.append(Line2D([], [], color="k", marker="v", ms=5, mfc="none", ls="none",
                                  label="no detection: 95 % upper limit of the gain"))
        handles += colour_keys
        notes = ["error bars: ±1 standard error (batch means over streams)"]
        if undetected:
            notes.append("no detection: no QBER")
        if any(r.get("model_rate") in (True, "true", "True", 1, 1.0) for r in rows):
            notes.append("model rates: afterpulsing is outside the security proofs")
        if own:
            legend_below(fig, handles, ncol=3, title="; ".join(notes), title_fontsize=8)
        else:
            legend_right(axes[1], handles, title="\n".join(notes), title_fontsize=8)
        draw_title(fig, title, None if own else axes[0])
    return fig
