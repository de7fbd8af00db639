"""The figure of ``bbm92_distance``: :func:`qmc.plots.entanglement.bbm92_distance` (the asymptotic
rate per source position, PLOB), with the finite-key rows of the run (every ``analysis`` label other
than ``bbm92`` and ``plob``: Tomamichel et al.'s key per pulse pair, :class:`qmc.analysis.BBM92Finite`)
drawn over it in the colour of their source position, one line style per label."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots import entanglement
from qmc.plots.rows import curves
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["bbm92_distance"]

_FINITE_STYLES = ({"ls": "-.", "marker": "o"}, {"ls": ":", "marker": "s"}, {"ls": (0, (5, 1)), "marker": "^"})
_ASYMPTOTIC = ("bbm92", "plob")


def bbm92_distance(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """The asymptotic figure; finite-key rows, if any, over it (module docstring)."""
    rows = list(rows)
    finite = [r for r in rows if str(r["analysis"]) not in _ASYMPTOTIC]
    if not finite:
        return entanglement.bbm92_distance(rows, ax=ax, title=title)
    reach = {(str(r["analysis"]), str(r["source_position"])): float(r["max_distance_km"]) for r in finite
             if r.get("max_distance_km") not in (None, "")}
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        fig, ax = new_figure(size_in=(7.6, 3.8)) if own else (ax.figure, ax)
        entanglement.bbm92_distance(rows, ax=ax)
        series = curves(finite, lambda r: (str(r["analysis"]), str(r.get("source_position") or "")))
        labels = list(dict.fromkeys(k[0] for k in series))
        shown = [y for line in ax.get_lines() for y in [np.asarray(line.get_ydata(), float)]
                 if line.get_label() and not line.get_label().startswith("PLOB")]
        for key in sorted(series, key=lambda k: (labels.index(k[0]), k[1])):
            x, y = series[key]
            keep = np.isfinite(y) & (y > 0)
            if not keep.any():
                continue
            style = dict(_FINITE_STYLES[labels.index(key[0]) % len(_FINITE_STYLES)])
            color = entanglement.POSITION_STYLE.get(key[1], {}).get("color", "0.2")
            text = f"{key[0]}, {key[1]}"
            if key in reach:
                text += f" (max {reach[key]:.1f} km)"
            ax.semilogy(x[keep], y[keep], color=color, lw=1.0, ms=2.5, markevery=max(int(keep.sum()) // 12, 1),
                        label=text, **style)
            shown.append(y[keep])
        values = np.concatenate(shown) if shown else np.zeros(0)
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            ax.set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max()) + 1))
        legend_right(ax)
        draw_title(fig, title, None if own else ax)
    return fig
