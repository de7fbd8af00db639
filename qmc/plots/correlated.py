"""Figure: the usual afterpulsing approximation against the stream simulation (rows of
:func:`qmc.studies.afterpulsing.afterpulse_comparison_rows`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from qmc.plots.style import RC_PARAMS

__all__ = ["approximation_vs_simulation"]


def approximation_vs_simulation(rows, axes=None):
    """Gain and QBER (Z basis) versus p_ap per intensity: lines the (1 + p_ap) approximation,
    points the simulation with 1-sigma error bars. Returns the Figure."""
    with plt.rc_context(RC_PARAMS):
        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2))
        else:
            fig = axes[0].figure
        for k in sorted({r["k"] for r in rows}):
            rs = sorted((r for r in rows if r["k"] == k), key=lambda r: r["p_afterpulse"])
            p = np.array([r["p_afterpulse"] for r in rs])
            label = f"mu = {rs[0]['mu']:g}"
            for ax, name in zip(axes, ("gain", "qber")):
                line, = ax.plot(p, [r[f"{name}_approx"] for r in rs], "-", label=f"{label} (1 + p_ap)")
                ax.errorbar(p, [r[f"{name}_sim"] for r in rs], yerr=[r[f"{name}_sim_stderr"] for r in rs],
                            fmt="o", ms=3, color=line.get_color(), label=f"{label} simulated")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("gain Q (Z basis)")
        axes[1].set_ylabel("QBER (Z basis)")
        for ax in axes:
            ax.set_xlabel("afterpulse probability p_ap")
        axes[1].legend(fontsize="x-small")
        fig.suptitle("model rates: afterpulsing is outside the security proofs", fontsize="small")
        fig.tight_layout()
    return fig
