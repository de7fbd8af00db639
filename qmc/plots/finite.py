"""Finite-key figures: key rate versus distance per block size (Lim et al. 2014, Fig. 1), the
one-decoy / two-decoy rate ratio versus block size (Rusca et al. 2018), and Monte Carlo key-length
histograms beside the expected-count bound."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import matplotlib as mpl
import numpy as np

from qmc.plots.labels import analysis_name
from qmc.plots.published import overlay
from qmc.plots.rows import number
from qmc.plots.style import RC_PARAMS, draw_title, legend_right, new_figure

__all__ = ["finite_key_vs_distance", "ratio_vs_block_size", "key_length_histograms", "block_label"]


def _new_axes(ax, size_in: tuple[float, float]):
    """(figure, axes, own): a new constrained-layout figure of ``size_in`` when ``ax`` is None."""
    if ax is None:
        fig, ax = new_figure(size_in=size_in)
        return fig, ax, True
    return ax.figure, ax, False


def block_label(n: float) -> str:
    """``n_X = 10^4`` style label of a block size (``asymptotic`` for inf)."""
    if not math.isfinite(n):
        return "asymptotic"
    exponent = math.log10(n)
    if abs(exponent - round(exponent)) < 1e-9:
        return rf"$n_X = 10^{{{int(round(exponent))}}}$"
    return rf"$n_X = {n:.3g}$"


def finite_key_vs_distance(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None, published=None):
    """Log plot of key rate (bits per emitted pulse, R = l/N) versus fiber length, one solid curve
    per (finite analysis, block size) and a dashed one per asymptotic analysis (Lim's Fig. 1).

    Zero rates are left off (a log axis cannot show them); the legend, to the right of the axes,
    gives each curve's maximum distance when the rows carry ``max_distance_km``.

    Args:
        rows: rows of study ``finite_lim2014`` (analysis, block_size, length_km, key_rate, and
            optionally max_distance_km).
        ax: axes to draw on (None: a new figure, 6.8 x 3.6 in).
        title: optional run title (wrapped, small), above the axes.
        published: published points to overlay (:func:`qmc.gallery.published_points`; series
            ``<analysis> n_X=<block size>``): maximum distances as triangles on the axis, key rates
            as open circles, in the curve's color.

    Returns:
        The matplotlib Figure.
    """
    curves: dict[tuple[str, float], list[tuple[float, float, float]]] = {}
    for row in rows:
        block = number(row.get("block_size"))
        key = (str(row["analysis"]), math.inf if math.isnan(block) else block)
        curves.setdefault(key, []).append(
            (number(row["length_km"]), number(row.get("key_rate")), number(row.get("max_distance_km"))))
    with mpl.rc_context(RC_PARAMS):
        fig, ax, own = _new_axes(ax, (6.8, 3.6))
        finite_keys = sorted(k for k in curves if math.isfinite(k[1]))
        colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(finite_keys), 1)))
        color_of = {k: colors[i] for i, k in enumerate(finite_keys)}
        several = len({k[0] for k in curves}) > 2
        shown = []
        for key in sorted(curves, key=lambda k: (not math.isfinite(k[1]), k[1], k[0])):
            points = sorted(curves[key])
            x, y, d = (np.asarray(v, float) for v in zip(*points))
            keep = np.isfinite(y) & (y > 0)
            if not keep.any():
                continue
            label = block_label(key[1])
            if several:
                label = f"{analysis_name(key[0])}, {label}"
            if np.isfinite(d).any():
                label += f" ({np.nanmax(d):.0f} km)"
            style = dict(color=color_of[key]) if key in color_of else dict(color="k", ls="--", lw=1.1)
            ax.semilogy(x[keep], y[keep], label=label, **style)
            shown.append(y[keep])
        ax.set_xlabel("Fiber length (km)")
        ax.set_ylabel(r"Secret key rate $R = \ell / N$ (bits per pulse)")
        overlay(ax, published, "key_rate", lambda series: _series_color(series, color_of))
        all_x = np.concatenate([[p[0] for p in c] for c in curves.values()]) if curves else np.zeros(1)
        ax.set_xlim(float(all_x.min()), max(float(all_x.max()), float(all_x.min()) + 1.0))
        if shown:
            values = np.concatenate(shown)
            ax.set_ylim(10.0 ** math.floor(math.log10(values.min())), 10.0 ** math.ceil(math.log10(values.max())))
            legend_right(ax, title="block size\n(max. distance)")
        draw_title(fig, title, None if own else ax)
    return fig


def _series_color(series: str, color_of: dict) -> Any:
    """The color of the curve a published series names (``<analysis> n_X=<block size>``)."""
    analysis, _, block = series.partition(" n_X=")
    try:
        key = (analysis, float(block) if block else math.inf)
    except ValueError:
        return "k"
    return color_of.get(key, "k")


def _system_label(model: str, p_ap: float) -> str:
    if p_ap > 0:
        return rf"$p_{{\mathrm{{ap}}}} = {100 * p_ap:g}\,\%$ (Lim's model)"
    return "no afterpulsing" + (" (exact engine)" if model == "exact" else f" ({model})")


def ratio_vs_block_size(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """Ratio of the one-decoy to the two-decoy finite-key rate versus block size (log x), one line
    per (fiber length, system); solid without afterpulsing, dashed with. Points where either rate
    is 0 are left off; the dotted line at 1 separates "one decoy wins" (above) from "two win".
    The legend stands to the right of the axes.

    Args:
        rows: rows of study ``one_vs_two_decoy`` (length_km, block_size, model, p_afterpulse, ratio).
        ax: axes to draw on (None: a new figure, 7.2 x 3.6 in).
        title: optional run title (wrapped, small), above the axes.

    Returns:
        The matplotlib Figure.
    """
    curves: dict[tuple[float, str, float], list[tuple[float, float]]] = {}
    for row in rows:
        key = (number(row["length_km"]), str(row.get("model") or ""), number(row.get("p_afterpulse")) or 0.0)
        r1, r2 = number(row.get("rate_one_decoy")), number(row.get("rate_two_decoy"))
        ratio = r1 / r2 if r1 > 0 and r2 > 0 else math.nan
        curves.setdefault(key, []).append((number(row["block_size"]), ratio))
    with mpl.rc_context(RC_PARAMS):
        fig, ax, own = _new_axes(ax, (7.2, 3.6))
        lengths = sorted({k[0] for k in curves})
        colors = mpl.colormaps["plasma"](np.linspace(0.0, 0.75, max(len(lengths), 1)))
        for key in sorted(curves):
            x, y = (np.asarray(v, float) for v in zip(*sorted(curves[key])))
            keep = np.isfinite(y)
            if not keep.any():
                continue
            length, model, p_ap = key
            ax.semilogx(x[keep], y[keep], marker="o", ms=2.5, color=colors[lengths.index(length)],
                        ls="--" if p_ap > 0 else "-", label=f"{length:g} km, {_system_label(model, p_ap)}")
        ax.axhline(1.0, color="0.5", lw=0.8, ls=":", label="equal rates")
        ax.set_xlabel(r"Block size $n_X$ (key-basis detections)")
        ax.set_ylabel(r"Rate ratio $R_{\mathrm{1\,decoy}} / R_{\mathrm{2\,decoys}}$")
        if curves:
            legend_right(ax)
        draw_title(fig, title, None if own else ax)
    return fig


def key_length_histograms(rows: Iterable[Mapping[str, Any]], ax=None, title: str | None = None):
    """Distribution of the final key length of Monte Carlo sessions at each point (one panel per
    (length, block size)), one step histogram per session rule, with the expected-count key length
    (solid black line) and each rule's median (dashed, rule's color). Aborted sessions are not in
    the histograms; their fraction is written in the legend, which stands below each panel (to
    the right of a caller's axes).

    Args:
        rows: rows of study ``finite_key_mc``: ``kind == "summary"`` rows (length_km, block_size,
            rule, key_length_expected, key_length_median, abort_probability) and ``kind ==
            "histogram"`` rows (bin_lo, bin_hi, count).
        ax: an axes (only with a single point) or None (a new figure, one panel per point, 4.2 x
            3.9 in each in two columns; 4.8 x 3.9 in for one point).
        title: optional run title (wrapped, small), above the panels.

    Returns:
        The matplotlib Figure.
    """
    rows = list(rows)
    points = sorted({(number(r["length_km"]), number(r["block_size"])) for r in rows})
    rules = sorted({str(r["rule"]) for r in rows})
    colors = dict(zip(rules, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    with mpl.rc_context(RC_PARAMS):
        own = ax is None
        if not own:
            if len(points) > 1:
                raise ValueError("an axes holds one point: pass ax=None for several")
            fig, panels = ax.figure, [(ax.figure, ax)]
        else:
            import matplotlib.pyplot as plt

            # One subfigure per point, so that each panel's legend sits below it (its abort
            # fractions are the panel's own) and constrained layout keeps them apart.
            ncol = min(len(points), 2) or 1
            nrow = max(1, -(-len(points) // ncol))
            # A single panel is set wider: 4.8 in is 1440 px at 300 dpi.
            fig = plt.figure(figsize=(4.2 * ncol if ncol > 1 else 4.8, 3.9 * nrow), layout="constrained")
            subfigs = list(fig.subfigures(nrow, ncol, squeeze=False).ravel())[:len(points)]
            panels = [(sub, sub.subplots()) for sub in subfigs]
        for (holder, pax), (length, block) in zip(panels, points):
            here = [r for r in rows if (number(r["length_km"]), number(r["block_size"])) == (length, block)]
            expected = None
            for rule in rules:
                summary = [r for r in here if r.get("kind") == "summary" and r["rule"] == rule]
                bins = sorted((number(r["bin_lo"]), number(r["bin_hi"]), number(r["count"]))
                              for r in here if r.get("kind") == "histogram" and r["rule"] == rule)
                if not summary:
                    continue
                s = summary[0]
                expected = number(s.get("key_length_expected"))
                name = rule.replace("_", " ")
                if bins:
                    lo, hi, count = (np.asarray(v, float) for v in zip(*bins))
                    edges = np.append(lo, hi[-1])
                    pax.stairs(count, edges, color=colors[rule],
                               label=f"{name}: abort {100 * number(s.get('abort_probability')):.1f} %")
                median = number(s.get("key_length_median"))
                if math.isfinite(median):
                    pax.axvline(median, color=colors[rule], ls="--", lw=1.0, label=f"{name}: median")
            if expected is not None and math.isfinite(expected):
                pax.axvline(expected, color="k", lw=1.2, label="expected counts")
            pax.set_title(f"{length:g} km, {block_label(block)}")
            pax.set_xlabel(r"Final key length $\ell$ (bits)")
            pax.set_ylabel("Sessions")
            pax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
            # Column-major legend: one column per rule (histogram, then median), the expected
            # counts under the first rule's entries.
            handles, labels = pax.get_legend_handles_labels()
            if "expected counts" in labels and len(labels) > 2:
                i = labels.index("expected counts")
                handles.insert(2, handles.pop(i))
                labels.insert(2, labels.pop(i))
            if own:
                holder.legend(handles, labels, loc="outside lower center", ncol=max(len(rules), 1), fontsize=7.5)
            else:
                legend_right(pax, handles, labels=labels, fontsize=7.5)
        draw_title(fig, title, None if own else ax)
    return fig
