"""The qmc plot style: one set of rcParams, and saving a figure as PNG + PDF atomically."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl

from qmc.results import atomic_path

__all__ = ["RC_PARAMS", "style", "save"]

# Paper-like: inward ticks on all four sides, serif-free sans text at journal size, frameless
# legends, no grid; vector-friendly fonts in the PDF.
RC_PARAMS = {
    "figure.figsize": (5.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 200,
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
