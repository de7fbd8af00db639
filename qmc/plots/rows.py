"""Reading result rows for a figure: cells as numbers, columns as arrays."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["number", "column"]


def number(value: Any) -> float:
    """A cell as a float: an empty cell (None or ``""``) is NaN."""
    return math.nan if value is None or value == "" else float(value)


def column(rows: Iterable[Mapping[str, Any]], name: str) -> np.ndarray:
    """Column ``name`` of ``rows`` as a float array (empty cells NaN)."""
    return np.asarray([number(r[name]) for r in rows], dtype=float)
