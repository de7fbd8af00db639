"""Monte Carlo engines beside the exact engine: gains and key rates with their error bars."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.rows import column, number
from qmc.plots.style import (
    RC_PARAMS,
    draw_title,
    legend_below,
    legend_right,
    new_figure,
)

__all__ = ["engines_vs_exact"]

# Engines by marker (black in the legend, the intensity's colour in the gain panel); the pulse
# engine's open circle is larger than the block engine's square, so that both show at one length.
_MARKERS = {
    "block": dict(marker="s", ms=3.5, ls="none", capsize=2),
    "pulse": dict(marker="o", ms=7, ls="none", mfc="none", capsize=3),
}
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _intensity_label(k: int, mu: float) -> str:
    return rf"$\mu_{{{k + 1}}} = {mu:g}$"


def engines_vs_exact(rows: Iterable[Mapping[str, Any]], axes=None, title: str | None = None):
    """Two panels versus fiber length: (left) the Z-basis gain of every intensity (one colour
    each), exact lines and Monte Carlo points; (right) the key rate from Monte Carlo counts beside
    the exact rate (black). Engines by marker. The error bars are the rows' intervals at their
    ``confidence``: the Wilson score interval of the gain (``gain_lo``, ``gain_hi``) and the
    delta-method interval of the key rate, clipped at 0 (``key_rate_lo``, ``key_rate_hi``); the
    legend says so.

    Args:
        rows: rows of study ``decoy_bb84_mc`` (:data:`qmc.studies.decoy_mc.MC_COLUMNS`).
        axes: two matplotlib axes (None: a new 9 x 4.4 in figure, the legend below both panels;
            given axes get the legend to the right of the second).
        title: optional run title (wrapped, small), above the panels.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    with mpl.rc_context(RC_PARAMS):
        own = axes is None
        if own:
            fig, axes = new_figure(1, 2, size_in=(9.0, 4.4))
        fig = axes[0].figure
        ax_gain, ax_rate = axes
        engines = [e for e in _MARKERS if any(r["engine"] == e for r in rows)]
        exact = [r for r in rows if r["engine"] == "exact"]
        intensity_keys = []
        for k in sorted({int(r["intensity_index"]) for r in rows}):
            color = _COLORS[k % len(_COLORS)]
            mu = number(next(r for r in rows if int(r["intensity_index"]) == k).get("intensity"))
            label = _intensity_label(k, mu)
            intensity_keys.append(Line2D([], [], color=color, label=label))
            sel = sorted((r for r in exact if int(r["intensity_index"]) == k), key=lambda r: float(r["length_km"]))
            if sel:
                ax_gain.semilogy(column(sel, "length_km"), column(sel, "gain_exact"), color=color, lw=1.0,
                                 label=f"exact, {label}")
            for engine in engines:
                mc = [r for r in rows if r["engine"] == engine and int(r["intensity_index"]) == k]
                if not mc:
                    continue
                y = column(mc, "gain")
                # Wilson interval: asymmetric, never below 0 (a log axis cannot show y - sigma < 0).
                err = np.stack([y - column(mc, "gain_lo"), column(mc, "gain_hi") - y])
                ax_gain.errorbar(column(mc, "length_km"), y, yerr=np.maximum(err, 0.0), color=color,
                                 label=f"{engine} engine, {label}", **_MARKERS[engine])
        ax_gain.set_xlabel("Fiber length (km)")
        ax_gain.set_ylabel(r"Gain $Q_\mu$ (Z basis)")
        signal = [r for r in rows if int(r["intensity_index"]) == 0]
        ex = sorted((r for r in signal if r["engine"] == "exact"), key=lambda r: float(r["length_km"]))
        if ex:
            x, y = column(ex, "length_km"), column(ex, "key_rate_exact")
            keep = y > 0
            ax_rate.semilogy(x[keep], y[keep], color="k", lw=1.0, label="exact")
        for engine in engines:
            mc = [r for r in signal if r["engine"] == engine and number(r["key_rate"]) > 0]
            if not mc:
                continue
            y = column(mc, "key_rate")
            err = np.stack([y - column(mc, "key_rate_lo"), column(mc, "key_rate_hi") - y])
            ax_rate.errorbar(column(mc, "length_km"), y, yerr=np.maximum(err, 0.0), color="k",
                             label=f"{engine} engine", **_MARKERS[engine])
        ax_rate.set_xlabel("Fiber length (km)")
        ax_rate.set_ylabel(r"Key rate $R$ (bits per pulse)")
        handles = [Line2D([], [], color="k", lw=1.0, label="exact")]
        handles += [Line2D([], [], color="k", label=f"{e} engine",
                           **{n: v for n, v in _MARKERS[e].items() if n != "capsize"}) for e in engines]
        handles += intensity_keys
        confidences = {number(r.get("confidence")) for r in rows if r["engine"] != "exact"}
        note = None
        if engines:
            level = f"{100 * confidences.pop():g} %" if len(confidences) == 1 else "confidence"
            note = (f"error bars: {level} Wilson score interval (gain), {level} interval by the "
                    "delta method, clipped at 0 (key rate)")
        if own:
            legend_below(fig, handles, ncol=len(handles), title=note, title_fontsize=8)
        else:
            legend_right(ax_rate, handles, title=note and note.replace(", ", ",\n"), title_fontsize=8)
        draw_title(fig, title, None if own else ax_gain)
    return fig
