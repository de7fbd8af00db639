"""Published points drawn over a figure (rows of :mod:`qmc.gallery`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from matplotlib.transforms import blended_transform_factory

from qmc.plots.style import HELPER

__all__ = ["overlay"]


def overlay(ax, published: Iterable[Mapping[str, Any]] | None, quantity: str,
            color_of: Callable[[str], Any] = lambda series: "k") -> bool:
    """Draw the published points of ``quantity`` on ``ax``: points with an abscissa as open
    markers at (x, value); maximum distances (``max_distance_km``) as triangles on the x axis.
    Each kind drawn gets one grey legend entry ("published maximum distance", "published key
    rate"); the points themselves are in their curve's colour.

    Returns:
        Whether anything was drawn.
    """
    drawn = set()
    axis = blended_transform_factory(ax.transData, ax.transAxes)
    for row in published or ():
        series = str(row.get("series") or "")
        if row["quantity"] == "max_distance_km" and row.get("value") is not None:
            # unfilled, so that neighbouring triangles (142 and 140 km) both stay visible
            ax.plot([row["value"]], [0.0], marker="v", ms=7, color=color_of(series), mfc="none", mew=1.4,
                    transform=axis, clip_on=False, zorder=5, ls="none", gid=HELPER)
            drawn.add("max_distance_km")
        elif row["quantity"] == quantity and row.get("x") is not None and row.get("value") is not None:
            ax.plot([row["x"]], [row["value"]], marker="o", ms=6, color=color_of(series), mfc="white", mew=1.4,
                    ls="none", zorder=5, gid=HELPER)
            drawn.add(quantity)
    if "max_distance_km" in drawn:
        ax.plot([], [], marker="v", ms=7, color="0.3", mfc="none", mew=1.4, ls="none", label="published maximum distance")
    if quantity in drawn:
        ax.plot([], [], marker="o", ms=6, color="0.3", mfc="white", mew=1.4, ls="none",
                label=f"published {quantity.replace('_', ' ')}")
    return bool(drawn)
