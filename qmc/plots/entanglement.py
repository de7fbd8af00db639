"""Figures of the entanglement studies: BBM92 key rate versus distance (source in the middle and at
Alice, PLOB), and the CHSH S value versus the mean pair number (with the classical limit 2)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.rows import column, curves, number
from qmc.plots.style import HELPER, RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["bbm92_distance", "chsh_vs_pair_number", "POSITION_STYLE"]

POSITION_STYLE = {"middle": dict(color="tab:blue", ls="-"), "alice": dict(color="tab:orange", ls="--")}
_POSITION_TEXT = {"middle": "source in the middle", "alice": "source at Alice"}


def bbm92_distance(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """Log plot of the BBM92 key rate (bits per pulse pair) versus total distance, one line per
    source position with its maximum distance in the legend, and the PLOB bound (grey, dashed)."""
    rows = list(rows)
    series = curves(rows, lambda r: (str(r["analysis"]), str(r.get("source_position") or "")))
    reach = {}
    for r in rows:
        if r["analysis"] == "bbm92" and r.get("max_distance_km") not in (None, ""):
            reach[str(r["source_position"])] = number(r["max_distance_km"])
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        fig, ax = new_figure(size_in=(6.8, 3.6)) if own else (ax.figure, ax)
        shown = []
        order = sorted((k for k in series if k[0] == "bbm92"), key=lambda k: (k[1] not in POSITION_STYLE, k[1]))
        for key in order:
            x, y = series[key]
            keep = np.isfinite(y) & (y > 0)
            if not keep.any():
                continue
            position = key[1]
            text = _POSITION_TEXT.get(position, f"source at {position}")
            if position in reach:
                text += f" (max {reach[position]:.1f} km)"
            ax.semilogy(x[keep], y[keep], label=text, **POSITION_STYLE.get(position, {}))
            shown.append(y[keep])
        if ("plob", "") in series:
            x, y = series[("plob", "")]
            keep = np.isfinite(y) & (y > 0)
            ax.semilogy(x[keep], y[keep], color="0.35", ls=":", lw=1.1, label="PLOB bound (whole distance)")
        ax.set_xlabel("Total distance Alice - Bob (km)")
        ax.set_ylabel(r"Secret key rate $R$ (bits per pulse)")
        xs = column(rows, "length_km")
        if xs.size:
            ax.set_xlim(float(np.nanmin(xs)), max(float(np.nanmax(xs)), float(np.nanmin(xs)) + 1.0))
        if shown:
            values = np.concatenate(shown)
            ax.set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max()) + 1))
        if shown or ("plob", "") in series:
            legend_right(ax)
        draw_title(fig, title, None if own else ax)
    return fig


def chsh_vs_pair_number(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None, published=None):
    """S from the sampled counts (points with 1 sigma bars) against the mean pair number, per link
    length, beside the model's S (line) and 2 sqrt(2) V (dotted); the classical limit 2 and the
    quantum limit 2 sqrt(2); published S values (``quantity`` ``chsh_s``) as a grey band."""
    rows = list(rows)
    lengths = sorted({number(r["length_km"]) for r in rows})
    colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.8, max(len(lengths), 1)))
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        fig, ax = new_figure(size_in=(6.8, 3.6)) if own else (ax.figure, ax)
        for color, length in zip(colors, lengths):
            sub = sorted((r for r in rows if number(r["length_km"]) == length), key=lambda r: number(r["mean_pair_number"]))
            mu = column(sub, "mean_pair_number")
            ax.errorbar(mu, column(sub, "chsh_s"), yerr=column(sub, "chsh_s_stderr"), fmt="o", ms=3.5, color=color,
                        capsize=2, lw=1.0, label=f"{length:g} km: S from counts")
            ax.plot(mu, column(sub, "chsh_s_model"), color=color, lw=1.2, label=f"{length:g} km: model S")
            ax.plot(mu, column(sub, "chsh_s_expected"), color=color, lw=1.0, ls=":",
                    label=rf"{length:g} km: $2\sqrt{{2}}\,V$")
        ax.axhline(2.0, color="k", lw=0.9, ls="--", label="classical limit 2")
        ax.axhline(2.0 * math.sqrt(2.0), color="0.5", lw=0.8, ls="-.", label=r"$2\sqrt{2}$")
        for row in published or ():
            if row.get("quantity") == "chsh_s" and row.get("value") is not None:
                value, tol = float(row["value"]), float(row.get("tolerance") or 0.0)
                ax.axhspan(value - tol, value + tol, color="0.6", alpha=0.3, lw=0, gid=HELPER)
                ax.axhline(value, color="0.3", lw=1.0, gid=HELPER)
                ax.plot([], [], color="0.3", lw=4, alpha=0.5, label=f"published S: {row.get('series') or ''}")
        ax.set_xscale("log")
        ax.set_xlabel(r"Mean pair number per pulse $\mu$")
        ax.set_ylabel("CHSH S")
        low = np.nanmin(column(rows, "chsh_s") - column(rows, "chsh_s_stderr")) if rows else 0.0
        ax.set_ylim(max(min(float(low), 1.8) - 0.1, -0.1), 3.0)
        legend_right(ax)
        draw_title(fig, title, None if own else ax)
    return fig
