"""Reading result rows for a figure: cells as numbers, columns as arrays."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

__all__ = ["number", "column", "curves"]


def number(value: Any) -> float:
    """A cell as a float: an empty cell (None or ``""``) is NaN."""
    return math.nan if value is None or value == "" else float(value)


def column(rows: Iterable[Mapping[str, Any]], name: str) -> np.ndarray:
    """Column ``name`` of ``rows`` as a float array (empty cells NaN)."""
    return np.asarray([number(r[name]) for r in rows], dtype=float)


def curves(rows: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any],
           x: str = "length_km", y: str = "key_rate") -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    """``{key(row): (x values, y values)}``: the rows of each curve, sorted by x (empty cells NaN)."""
    points: dict[Any, list[tuple[float, float]]] = {}
    for row in rows:
        points.setdefault(key(row), []).append((number(row[x]), number(row.get(y))))
    out = {}
    for k, values in points.items():
        values.sort()
        out[k] = tuple(np.asarray(v, dtype=float) for v in zip(*values))
    return out
