"""A pass given as a table: time, elevation and total channel loss per time slot.

The form in which link budgets from other tools and measured passes are exchanged
(``satellite.loss_table=<path>``): a CSV file with a header naming at least the columns
``time_s``, ``elevation_deg`` and ``loss_db`` (others are ignored), one row per time slot.

* Rows may come in any order; they are sorted by ``time_s``. Two rows at the same time are an
  error.
* ``loss_db`` is the positive total channel loss of the slot in dB (transmitter to the receiver
  aperture's output, detector efficiency apart); it replaces the geometry and the link budget.
* A slot lasts the spacing of ``time_s`` to the next row (not ``satellite.time_step_s``), the last
  slot the previous spacing; so a slot holds rep rate x spacing pulses, and a table needs at least
  two rows.
* ``elevation_deg`` must lie in [0, 90].

Every problem is one :class:`qmc.validation.ValidationError` line that starts with
``satellite.loss_table`` and names the file, and the column or line at fault.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from qmc.freespace.geometry import Pass
from qmc.validation import ValidationError

__all__ = ["COLUMNS", "KEY", "load_pass_table", "slot_durations_s"]

COLUMNS = ("time_s", "elevation_deg", "loss_db")
KEY = "satellite.loss_table"


def slot_durations_s(time_s) -> np.ndarray:
    """How long each slot lasts: the spacing to the next time, the last slot the previous spacing.
    ``time_s`` sorted, increasing, at least two entries."""
    t = np.asarray(time_s, dtype=np.float64)
    spacing = np.diff(t)
    return np.concatenate([spacing, spacing[-1:]])


def _fail(path, message: str):
    raise ValidationError(f"{KEY} = {path}: {message}")


def _number(path, text, column: str, line: int) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        _fail(path, f"line {line}, column {column}: {text!r} is not a number")
    if not math.isfinite(value):
        _fail(path, f"line {line}, column {column}: {text!r} is not a finite number")
    return value


def load_pass_table(path) -> Pass:
    """Read a pass table (module docstring) into a :class:`~qmc.freespace.geometry.Pass` with
    ``time_s``, ``elevation_deg``, ``loss_db`` and ``slot_s`` (``range_km`` is None)."""
    file = Path(str(path)).expanduser()
    if not file.is_file():
        _fail(path, "no such file")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        _fail(path, f"cannot be read ({type(err).__name__})")
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        _fail(path, f"is empty: expected a header with columns {', '.join(COLUMNS)}")
    reader = csv.reader([line for _, line in lines])
    header = [h.strip() for h in next(reader)]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        _fail(path, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    f"(header: {', '.join(header)})")
    index = {c: header.index(c) for c in COLUMNS}
    rows = []
    for (line, _), cells in zip(lines[1:], reader):
        if len(cells) < len(header):
            _fail(path, f"line {line}: {len(cells)} values for {len(header)} columns")
        values = {c: _number(path, cells[index[c]].strip(), c, line) for c in COLUMNS}
        if not 0.0 <= values["elevation_deg"] <= 90.0:
            _fail(path, f"line {line}, column elevation_deg: {values['elevation_deg']:g} is out "
                        "of range: must be in [0, 90]")
        if values["loss_db"] < 0.0:
            _fail(path, f"line {line}, column loss_db: {values['loss_db']:g} is out of range: "
                        "must be >= 0 (the positive total channel loss in dB)")
        rows.append((values["time_s"], values["elevation_deg"], values["loss_db"], line))
    if len(rows) < 2:
        _fail(path, f"has {len(rows)} row{'s' if len(rows) != 1 else ''}: a slot lasts the spacing "
                    "of time_s, so at least 2 rows are needed")
    rows.sort(key=lambda r: r[0])
    for a, b in zip(rows, rows[1:]):
        if b[0] == a[0]:
            _fail(path, f"column time_s: lines {a[3]} and {b[3]} have the same time {a[0]:g}")
    time_s = np.array([r[0] for r in rows])
    return Pass(time_s=time_s, elevation_deg=np.array([r[1] for r in rows]), range_km=None,
                slot_s=slot_durations_s(time_s), loss_db=np.array([r[2] for r in rows]))
