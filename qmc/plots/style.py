"""The qmc plot style: one set of rcParams, the layout every figure shares (a small wrapped title
on top, legends outside the data), and saving a figure as PNG + PDF atomically."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib as mpl

from qmc.results import atomic_path

__all__ = ["RC_PARAMS", "HELPER", "TITLE_FONTSIZE", "style", "save", "new_figure", "draw_title", "wrap_title",
           "legend_right", "legend_below"]

# gid of a line that no legend entry lists because the figure explains it another way (published
# points share one grey "published ..." entry per kind); a line without it is meant to be in a legend.
HELPER = "qmc-helper"

# The run title (system, model, analysis settings) is set smaller than the axis labels: it tells
# two runs apart and should not compete with the data.
TITLE_FONTSIZE = 8.5

# Paper-like: inward ticks on all four sides, serif-free sans text at journal size, frameless
# legends, no grid; vector-friendly fonts in the PDF.
RC_PARAMS = {
    "figure.figsize": (5.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.labelsize": 10,
    "axes.titlesize": 10,
    "axes.linewidth": 0.8,
    "axes.grid": False,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "xtick.minor.visible": True,
    "ytick.minor.visible": True,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}


def style() -> None:
    """Apply the qmc style to matplotlib's global rcParams (figure functions apply it locally)."""
    mpl.rcParams.update(RC_PARAMS)


def save(fig, stem: str | os.PathLike, dpi: int = 300) -> tuple[Path, Path]:
    """Save ``fig`` as ``<stem>.png`` (at ``dpi``) and ``<stem>.pdf``, each written atomically.

    Returns:
        (png path, pdf path).
    """
    stem = Path(stem)
    paths = []
    for suffix in (".png", ".pdf"):
        path = stem.with_name(stem.name + suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=dpi)
        paths.append(path)
    return paths[0], paths[1]


def new_figure(nrows: int = 1, ncols: int = 1, *, size_in: tuple[float, float], **kwargs: Any):
    """A figure of ``nrows`` x ``ncols`` panels (``plt.subplots``) under constrained layout, which
    keeps the title and the legends outside the axes inside the canvas when the figure is saved.

    Returns:
        (figure, axes) as ``plt.subplots`` returns them.
    """
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=size_in, layout="constrained", **kwargs)


def wrap_title(title: str, width_in: float, fontsize: float = TITLE_FONTSIZE) -> str:
    """``title`` broken into lines that fit ``width_in`` inches at ``fontsize`` points, at its
    " · " separators where possible, else at spaces; a word longer than a line is split."""
    # 0.6 em per character: wider than DejaVu Sans' average, so that a line never spills over.
    width = max(int(width_in * 72.0 / (0.6 * fontsize)), 20)
    lines: list[str] = []
    for part in title.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
            continue
        if lines:  # the separator stays at the end of the line it closes
            lines[-1] += " ·"
        lines.extend(textwrap.wrap(part, width, break_on_hyphens=False) or [""])
    return "\n".join(lines)


def draw_title(fig, title: str | None, ax=None) -> None:
    """Draw the run title, wrapped to fit: as the suptitle of a figure the plot function made
    (constrained layout puts it above the panels), or, on a caller's figure (``ax`` given), as
    the first line(s) of ``ax``'s title, so that it cannot land on another artist."""
    if not title:
        return
    if ax is None:
        fig.suptitle(wrap_title(title, fig.get_figwidth()), fontsize=TITLE_FONTSIZE)
        return
    width_in = ax.get_position().width * fig.get_figwidth()
    panel = ax.get_title()
    text = wrap_title(title, width_in)
    ax.set_title(text + ("\n" + panel if panel else ""), fontsize=TITLE_FONTSIZE)


def legend_right(ax, handles: Sequence[Any] | None = None, **kwargs: Any):
    """A legend to the right of ``ax``, outside its data area (constrained layout makes room)."""
    if handles is not None:
        kwargs["handles"] = list(handles)
    return ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), borderaxespad=0.0, **kwargs)


def legend_below(fig, handles: Sequence[Any], ncol: int, **kwargs: Any):
    """One legend for the whole figure, below its panels (needs constrained layout)."""
    return fig.legend(handles=list(handles), loc="outside lower center", ncol=ncol, **kwargs)
