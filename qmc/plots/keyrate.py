"""Key rate versus distance: the figure of Lo, Ma, Chen, PRL 94, 230504 (2005), Fig. 1."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.labels import analysis_name
from qmc.plots.published import overlay
from qmc.plots.rows import curves
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["key_rate_vs_distance", "LABELS"]

# Legend text and line style per analysis label; unknown labels are drawn with their readable name
# (:func:`qmc.plots.labels.analysis_name`) in the next default colour.
LABELS = {
    "plob": (analysis_name("plob"), dict(color="0.35", ls="--", lw=1.1)),
    "tgw": (analysis_name("tgw"), dict(color="0.6", ls=":", lw=1.1)),
    "single_photon": (analysis_name("single_photon"), dict(color="tab:purple", ls="-.")),
    "infinite_decoy": (analysis_name("infinite_decoy"), dict(color="tab:blue", ls="-")),
    "vacuum_weak": (analysis_name("vacuum_weak"), dict(color="tab:orange", ls="--")),
    "no_decoy": (analysis_name("no_decoy"), dict(color="tab:green", ls=":", lw=1.8)),
}


def _series(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return curves(rows, lambda row: str(row["analysis"]))


def key_rate_vs_distance(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None, published=None):
    """Log plot of secret key rate (bits per pulse) versus fiber length, one line per analysis.

    Points where the rate is 0 or infinite (PLOB at 0 km) are left off: a log axis cannot show
    them, and the curves end where the key does. The legend stands to the right of the axes, where
    it covers no curve.

    Args:
        rows: rows with ``length_km``, ``analysis`` and ``key_rate`` (e.g. :func:`qmc.results.read_results`).
        ax: axes to draw on (None: a new figure, 6.8 x 3.6 in, the legend beside the axes).
        title: optional run title (wrapped, small), above the axes.
        published: published points to overlay (:func:`qmc.gallery.published_points`): maximum
            distances as triangles on the axis, key rates as open circles, in the analysis' color.

    Returns:
        The matplotlib Figure.
    """
    series = _series(rows)
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        if own:
            fig, ax = new_figure(size_in=(6.8, 3.6))
        else:
            fig = ax.figure
        order = [k for k in LABELS if k in series] + sorted(k for k in series if k not in LABELS)
        shown = []
        for label in order:
            x, y = series[label]
            keep = np.isfinite(y) & (y > 0)
            if not keep.any():
                continue
            text, kwargs = LABELS.get(label, (analysis_name(label), {}))
            ax.semilogy(x[keep], y[keep], label=text, **kwargs)
            if label not in ("plob", "tgw"):  # the bounds do not set the axis
                shown.append(y[keep])
        ax.set_xlabel("Fiber length (km)")
        ax.set_ylabel(r"Secret key rate $R$ (bits per pulse)")
        all_x = np.concatenate([s[0] for s in series.values()]) if series else np.zeros(1)
        ax.set_xlim(float(all_x.min()), float(all_x.max()) if all_x.max() > all_x.min() else float(all_x.min()) + 1)
        if shown:
            values = np.concatenate(shown)
            low = 10.0 ** math.floor(math.log10(values.min()))
            high = 10.0 ** math.ceil(math.log10(values.max()) + 1)  # a decade of room for the bounds
            ax.set_ylim(low, high)
        overlay(ax, published, "key_rate", lambda label: LABELS.get(label, ("", {}))[1].get("color", "k"))
        if shown or "plob" in series or "tgw" in series:
            legend_right(ax)
        draw_title(fig, title, None if own else ax)
    return fig
