"""The reproduction gallery: published points of the reproduced papers, read from ``experiments/``.

Every reproduced paper has a folder ``experiments/<name>/`` with a README, the figure and
``published.csv``: one row per published number, with the columns of :data:`COLUMNS`

* ``quantity``: what is compared (a column of the study's table, such as ``key_rate``, or a
  derived number such as ``max_distance_km``);
* ``series``: the curve it belongs to (an analysis label, or ``<analysis> n_X=<block size>``);
* ``x``: the abscissa where the number is a point of a curve (fiber length in km), else empty;
* ``value``, ``tolerance``: the published number and how far qmc may lie from it (absolute, in
  the unit of ``value``; the README says why);
* ``source``, ``location``: the paper, and where in it (``text``, ``table``, or ``figure`` for a
  value read off a plot).

An experiment config names its folder (``published: <name>``); the run's figure then overlays
these points, and the reproduction tests read their references from the same file.
"""

from __future__ import annotations

import csv
from pathlib import Path

from qmc._paths import gallery_dir

__all__ = ["COLUMNS", "PUBLISHED", "published_points", "published_path"]

PUBLISHED = "published.csv"
COLUMNS = ("quantity", "series", "x", "value", "tolerance", "source", "location")


def published_path(name: str) -> Path | None:
    """``experiments/<name>/published.csv`` of the checkout, or None (no checkout, no such file)."""
    root = gallery_dir()
    path = None if root is None else root / name / PUBLISHED
    return path if path is not None and path.is_file() else None


def published_points(name: str | None) -> list[dict] | None:
    """The rows of a gallery folder's ``published.csv``: numbers as floats, empty cells as None;
    None when ``name`` is None or the file is not there (an installed wheel has no gallery)."""
    path = None if not name else published_path(name)
    if path is None:
        return None
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            missing = set(COLUMNS) - set(row)
            if missing:
                raise ValueError(f"{path}: missing columns {sorted(missing)}")
            for key in ("x", "value", "tolerance"):
                row[key] = None if row[key] in ("", None) else float(row[key])
            out.append(row)
    return out
