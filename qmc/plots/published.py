"""Published points drawn over a figure (rows of :mod:`qmc.gallery`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from matplotlib.transforms import blended_transform_factory

__all__ = ["overlay"]


def overlay(ax, published: Iterable[Mapping[str, Any]] | None, quantity: str,
            color_of: Callable[[str], Any] = lambda series: "k") -> bool:
    """Draw the published points of ``quantity`` on ``ax``: points with an abscissa as open
    markers at (x, value); maximum distances (``max_distance_km``) as triangles on the x axis.

    Returns:
        Whether anything was drawn (so that the legend can say what the markers are).
    """
    drawn = False
    axis = blended_transform_factory(ax.transData, ax.transAxes)
    for row in published or ():
        series = str(row.get("series") or "")
        if row["quantity"] == "max_distance_km" and row.get("value") is not None:
            # unfilled, so that neighbouring triangles (142 and 140 km) both stay visible
            ax.plot([row["value"]], [0.0], marker="v", ms=7, color=color_of(series), mfc="none", mew=1.4,
                    transform=axis, clip_on=False, zorder=5, ls="none")
            drawn = True
        elif row["quantity"] == quantity and row.get("x") is not None and row.get("value") is not None:
            ax.plot([row["x"]], [row["value"]], marker="o", ms=6, color=color_of(series), mfc="white", mew=1.4,
                    ls="none", zorder=5)
            drawn = True
    if drawn:  # one legend entry for all of them
        ax.plot([], [], marker="v", ms=7, color="0.3", mfc="none", mew=1.4, ls="none", label="published")
    return drawn
