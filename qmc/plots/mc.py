"""Monte Carlo engines beside the exact engine: gains and key rates with their error bars."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.rows import column
from qmc.plots.style import RC_PARAMS

__all__ = ["engines_vs_exact"]

_STYLE = {
    "block": dict(marker="s", ms=4, ls="none", color="tab:orange", capsize=2),
    "pulse": dict(marker="o", ms=4, ls="none", color="tab:green", mfc="none", capsize=2),
}


def engines_vs_exact(rows: Iterable[Mapping[str, Any]], axes=None):
    """Two panels versus fiber length: (left) the Z-basis gain of every intensity, exact lines and
    Monte Carlo points with Wilson intervals; (right) the key rate from Monte Carlo
    counts with its delta-method interval beside the exact rate.

    Args:
        rows: rows of study ``decoy_bb84_mc`` (:data:`qmc.studies.decoy_mc.MC_COLUMNS`).
        axes: two matplotlib axes (None: a new figure).

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    with mpl.rc_context(RC_PARAMS):
        if axes is None:
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
        fig = axes[0].figure
        ax_gain, ax_rate = axes
        exact = [r for r in rows if r["engine"] == "exact"]
        for k in sorted({int(r["intensity_index"]) for r in rows}):
            sel = sorted((r for r in exact if int(r["intensity_index"]) == k), key=lambda r: float(r["length_km"]))
            if sel:
                ax_gain.semilogy(column(sel, "length_km"), column(sel, "gain_exact"), color="0.3", lw=1.0,
                                 label="exact" if k == 0 else None)
            for engine, style in _STYLE.items():
                mc = [r for r in rows if r["engine"] == engine and int(r["intensity_index"]) == k]
                if not mc:
                    continue
                y = column(mc, "gain")
                # Wilson interval: asymmetric, never below 0 (a log axis cannot show y - sigma < 0).
                err = np.stack([y - column(mc, "gain_lo"), column(mc, "gain_hi") - y])
                ax_gain.errorbar(column(mc, "length_km"), y, yerr=np.maximum(err, 0.0),
                                 label=f"{engine} engine" if k == 0 else None, **style)
        ax_gain.set_xlabel("Fiber length (km)")
        ax_gain.set_ylabel("Gain (Z basis)")
        ax_gain.legend()
        signal = [r for r in rows if int(r["intensity_index"]) == 0]
        ex = sorted((r for r in signal if r["engine"] == "exact"), key=lambda r: float(r["length_km"]))
        if ex:
            x, y = column(ex, "length_km"), column(ex, "key_rate_exact")
            keep = y > 0
            ax_rate.semilogy(x[keep], y[keep], color="0.3", lw=1.0, label="exact")
        for engine, style in _STYLE.items():
            mc = [r for r in signal if r["engine"] == engine and float(r["key_rate"]) > 0]
            if not mc:
                continue
            y = column(mc, "key_rate")
            err = np.stack([y - column(mc, "key_rate_lo"), column(mc, "key_rate_hi") - y])
            ax_rate.errorbar(column(mc, "length_km"), y, yerr=np.maximum(err, 0.0), label=f"{engine} engine", **style)
        ax_rate.set_xlabel("Fiber length (km)")
        ax_rate.set_ylabel("Key rate (bits per pulse)")
        ax_rate.legend()
        fig.tight_layout()
    return fig
