"""Sweep axes: one axis of a study's grid as values, or start..stop with num points or a step.

An axis is written in a config as a list of values or a mapping (``{start, stop, num, spacing}``
or ``{start, stop, step}``); :class:`Axis` holds it and :func:`axis_values` makes the values,
refusing malformed settings with a one-line error named by the config key.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from qmc.validation import Check, ValidationError

__all__ = ["Axis", "axis_values", "axis_size", "axis_or_none", "SPACINGS"]

SPACINGS = ("linear", "geometric")


def axis_values(spec: Mapping[str, Any] | Sequence[float], name: str, max_points: int | None = None) -> np.ndarray:
    """Values of one sweep axis from plain settings.

    ``spec`` is a list of values, or a mapping: ``values`` when it is not None; else ``start`` and
    ``stop`` (both included) with ``num`` points (``spacing: linear`` or ``geometric``) or, when
    ``num`` is None, steps of ``step`` (linear only).

    Raises:
        ValidationError: malformed or out-of-range settings, or more than ``max_points`` values
            (checked before any is made), named ``name``.
    """
    if max_points is not None:
        size = axis_size(spec, name)
        if size > max_points:
            raise ValidationError(f"{name}: {size:,} points is more than sweep.max_points = {int(max_points)} "
                                  f"(raise sweep.max_points to run it, or take fewer points)")
    return _axis(spec, name, size_only=False)


def axis_size(spec: Mapping[str, Any] | Sequence[float], name: str) -> int:
    """The number of values of :func:`axis_values` ``(spec, name)``, checked but not made."""
    return _axis(spec, name, size_only=True)


def _axis(spec, name, size_only):
    if isinstance(spec, Mapping) and spec.get("values") is not None:
        spec = spec["values"]
    if not isinstance(spec, Mapping):
        try:
            values = np.asarray(spec, dtype=float)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} = {spec!r}: must be a list of numbers") from None
    else:
        if spec.get("start") is None or spec.get("stop") is None:
            raise ValidationError(f"{name}: give values, or start and stop with num or step")
        start, stop = float(spec["start"]), float(spec["stop"])
        spacing = spec.get("spacing") or "linear"
        if spacing not in SPACINGS:
            raise ValidationError(f"{name}.spacing = {spacing!r}: must be linear or geometric")
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise ValidationError(f"{name}: values must be finite")
        if stop < start:
            raise ValidationError(f"{name}.stop = {stop:g} is out of range: must be >= {name}.start = {start:g}")
        if spec.get("num") is not None:
            num = int(spec["num"])
            if num < 1:
                raise ValidationError(f"{name}.num = {num} is out of range: must be >= 1")
            if spacing == "geometric" and start <= 0:
                raise ValidationError(f"{name}.start = {start:g} is out of range: must be > 0 for geometric spacing")
            if size_only:
                return num
            values = np.geomspace(start, stop, num) if spacing == "geometric" else np.linspace(start, stop, num)
        elif spec.get("step") is not None and spacing == "linear":
            step = float(spec["step"])
            if not step > 0:
                raise ValidationError(f"{name}.step = {step:g} is out of range: must be > 0")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            if size_only:
                return count
            values = start + step * np.arange(count)
        else:
            raise ValidationError(f"{name}: give num (or step, for linear spacing)")
    if values.ndim != 1 or values.size == 0:
        raise ValidationError(f"{name}: needs at least one value")
    if not np.all(np.isfinite(values)):
        raise ValidationError(f"{name}: values must be finite")
    return values.size if size_only else values


def axis_or_none(value: Any) -> Any:
    """An :class:`Axis` from a config mapping; anything else (None, an Axis) as it is."""
    return Axis(**value) if isinstance(value, Mapping) else value


@dataclasses.dataclass(frozen=True)
class Axis:
    """One sweep axis: ``values`` when given, else ``start`` .. ``stop`` (both included) in ``num``
    points (``spacing`` linear or geometric) or, without ``num``, in steps of ``step``."""

    start: float | None = None
    stop: float | None = None
    step: float | None = None
    num: int | None = None
    spacing: str = "linear"
    values: Any = None

    def checks(self):
        def problem(axis, prefix):
            try:
                axis.size(prefix[:-1] if prefix.endswith(".") else prefix or "axis")
            except ValidationError as err:
                return str(err)
            return None

        return [Check(problem)]

    def size(self, name: str = "axis") -> int:
        """The number of values of the axis (checked, not made: :func:`axis_size`)."""
        return axis_size(dataclasses.asdict(self), name)

    def grid(self, name: str = "axis", max_points: int | None = None) -> np.ndarray:
        """The values of the axis (:func:`axis_values`); errors are named ``name``."""
        return axis_values(dataclasses.asdict(self), name, max_points)
