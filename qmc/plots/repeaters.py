"""Repeater chains (studies ``repeater_chain`` and ``memory_requirements``, :mod:`qmc.studies.repeaters`).

``repeater_chain``: left, the BBM92 key rate versus total distance (log scale), one colour per
number of links, with the PLOB bound of the whole distance dashed in the same colour (on each
chain's clock: one channel use per attempt round of its elementary links) and a marker where the
chain's key rate crosses above it; right, the delivered pairs' fidelity.

``memory_requirements``: the key rate over the PLOB bound versus the memories' coherence time (log
scales), one colour per number of links and one line style per distance, the line 1 (the direct
link's bound) dashed, and the required coherence time of each chain marked on it.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D

from qmc.plots.rows import number
from qmc.plots.style import RC_PARAMS, draw_title, legend_below, new_figure

__all__ = ["repeater_chain", "memory_requirements", "plob_crossings"]

_STYLES = ("-", "--", ":", "-.")


def _colours(values):
    cmap = mpl.colormaps["viridis"]
    return {v: cmap(0.85 * i / max(len(values) - 1, 1)) for i, v in enumerate(values)}


def plob_crossings(x, rate, plob) -> list[float]:
    """Where ``rate`` crosses above ``plob`` along ``x`` (sorted): log-linear interpolation of the
    ratio between the two grid points, or the first point beating it where the rate before is 0."""
    x, rate, plob = (np.asarray(v, float) for v in (x, rate, plob))
    beats = rate > plob
    out = []
    for i in range(1, x.size):
        if beats[i] and not beats[i - 1]:
            if rate[i - 1] > 0 and plob[i - 1] > 0 and plob[i] > 0:
                a, b = np.log(rate[i - 1] / plob[i - 1]), np.log(rate[i] / plob[i])
                out.append(float(x[i - 1] + (x[i] - x[i - 1]) * a / (a - b)))
            else:
                out.append(float(x[i]))
    return out


def _sorted(rows, key, x):
    rows = sorted(rows, key=lambda r: number(r[x]))
    return np.array([number(r[x]) for r in rows]), rows


def repeater_chain(rows: Iterable[Mapping[str, Any]], title: str | None = None):
    """Key rate (and PLOB) and fidelity versus distance; rows of ``repeater_chain``.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    links = sorted({int(number(r["n_links"])) for r in rows})
    colours = _colours(links)
    with mpl.rc_context(RC_PARAMS):
        fig, (left, right) = new_figure(1, 2, size_in=(7.4, 3.5))
        handles = []
        for k, n in enumerate(links):
            c = colours[n]
            x, sel = _sorted([r for r in rows if int(number(r["n_links"])) == n], None, "length_km")
            key = np.array([number(r["key_rate_bps"]) for r in sel])
            plob = np.array([number(r["plob_bps"]) for r in sel])
            fid = np.array([number(r["fidelity"]) for r in sel])
            left.plot(x, np.where(key > 0, key, np.nan), color=c, lw=1.5, marker="o", ms=2.5)
            left.plot(x, plob, color=c, ls="--", lw=1.0)
            for xc in plob_crossings(x, key, plob):
                yc = np.exp(np.interp(xc, x, np.log(np.where(plob > 0, plob, np.nan))))
                left.plot([xc], [yc], marker="*", ms=10, color=c, mec="k", mew=0.6, ls="none", zorder=5)
                left.annotate(f"{xc:.0f} km", (xc, yc), textcoords="offset points", xytext=(5, 4 + 9 * k), fontsize=7,
                              color=c)
            right.plot(x, fid, color=c, marker="o", ms=2.5)
            handles.append(Line2D([], [], color=c, marker="o", ms=3, label=f"{n} link{'s' if n > 1 else ''}"))
        handles.append(Line2D([], [], color="0.3", ls="--", label="PLOB (whole distance)"))
        handles.append(Line2D([], [], color="0.3", marker="*", ms=9, mec="k", ls="none", label="crosses PLOB"))
        left.set_yscale("log")
        left.set_xlabel("total distance (km)")
        left.set_ylabel("secret key rate (bit/s)")
        right.set_xlabel("total distance (km)")
        right.set_ylabel("fidelity of delivered pairs")
        right.set_ylim(0.45, 1.0)
        legend_below(fig, handles, ncol=min(len(handles), 6), fontsize=7)
        draw_title(fig, title)
    return fig


def memory_requirements(rows: Iterable[Mapping[str, Any]], title: str | None = None):
    """Key rate / PLOB versus coherence time; rows of ``memory_requirements``.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    links = sorted({int(number(r["n_links"])) for r in rows})
    lengths = sorted({number(r["length_km"]) for r in rows})
    parameter = str(rows[0].get("memory_parameter", "t_dephasing_s")) if rows else "t_dephasing_s"
    colours = _colours(links)
    with mpl.rc_context(RC_PARAMS):
        fig, ax = new_figure(1, 1, size_in=(5.6, 3.8))
        for n in links:
            for j, L in enumerate(lengths):
                group = [r for r in rows if int(number(r["n_links"])) == n and number(r["length_km"]) == L]
                x, sel = _sorted(group, None, "coherence_time_s")
                ratio = np.array([number(r["key_rate_bps"]) / number(r["plob_bps"]) for r in sel])
                ax.plot(x, np.where(ratio > 0, ratio, np.nan), color=colours[n], ls=_STYLES[j % len(_STYLES)],
                        marker="o", ms=2.5)
                need = number(sel[0].get("required_coherence_s")) if sel else float("nan")
                if np.isfinite(need):
                    ax.plot([need], [1.0], marker="v", ms=8, color=colours[n], mec="k", mew=0.6, ls="none", zorder=5)
        ax.axhline(1.0, color="0.3", ls="--", lw=1.0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"memory {'T2 (dephasing)' if parameter == 't_dephasing_s' else 'depolarizing time'} (s)")
        ax.set_ylabel("key rate / PLOB bound")
        handles = [Line2D([], [], color=colours[n], marker="o", ms=3, label=f"{n} links") for n in links]
        handles += [Line2D([], [], color="0.3", ls=_STYLES[j % len(_STYLES)], label=f"{L:g} km")
                    for j, L in enumerate(lengths)]
        handles.append(Line2D([], [], color="0.3", marker="v", ms=7, mec="k", ls="none", label="required time"))
        legend_below(fig, handles, ncol=min(len(handles), 4), fontsize=7)
        draw_title(fig, title)
    return fig
