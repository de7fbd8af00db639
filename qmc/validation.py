"""Range checks written once, evaluated two ways.

Each component lists its constraints as :class:`Range` and :class:`Rule` objects (``checks()``).
:func:`validate` evaluates them on concrete values at the API and CLI boundary and raises a
:class:`ValidationError` naming the field, the value and the allowed range, before anything is
compiled. :func:`is_valid` evaluates the same conditions with ``jnp`` inside traced code, so that
an invalid point of a sweep grid gives rate 0 with a reason instead of an exception.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

__all__ = ["ValidationError", "Range", "Rule", "Check", "validate", "is_valid", "whole"]


class ValidationError(ValueError):
    """A parameter is outside its allowed range. The message names field, value and range."""


def _fmt(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"


@dataclasses.dataclass(frozen=True)
class Range:
    """Every element of ``field`` lies in an interval (closed unless ``*_open``)."""

    field: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def condition(self, obj: Any, xp: Any = jnp) -> Any:
        x = xp.asarray(getattr(obj, self.field))
        ok_lo = x > self.lo if self.lo_open else x >= self.lo
        ok_hi = x < self.hi if self.hi_open else x <= self.hi
        return xp.all(ok_lo & ok_hi & ~xp.isnan(x))

    def describe(self) -> str:
        if self.hi == math.inf:
            return f"must be {'>' if self.lo_open else '>='} {_fmt(self.lo)}"
        if self.lo == -math.inf:
            return f"must be {'<' if self.hi_open else '<='} {_fmt(self.hi)}"
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"must be in {left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"

    def error(self, obj: Any, prefix: str) -> str | None:
        x = np.asarray(getattr(obj, self.field), dtype=float)
        if bool(self.condition(obj, np)):
            return None
        name = f"{prefix}{self.field}"
        if x.ndim:
            bad = [i for i, v in enumerate(x.ravel()) if not bool(self.condition(_Box(v), np))]
            return f"{name}[{bad[0]}] = {x.ravel()[bad[0]]:g} is out of range: {self.describe()}"
        return f"{name} = {float(x):g} is out of range: {self.describe()}"


@dataclasses.dataclass
class _Box:
    value: Any

    def __getattr__(self, _: str) -> Any:  # lets a Range read one element as its field
        return self.__dict__["value"]


def _show(value: Any) -> str:
    """A value as a message shows it: text bare, a list of names in brackets, numbers as arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    return np.array2string(np.asarray(value), precision=6)


@dataclasses.dataclass(frozen=True)
class Rule:
    """A constraint between fields: ``condition(obj, xp)`` must be all-true; ``message`` says why."""

    fields: str
    condition_fn: Callable[[Any, Any], Any]
    message: str

    def condition(self, obj: Any, xp: Any = jnp) -> Any:
        return xp.all(self.condition_fn(obj, xp))

    def error(self, obj: Any, prefix: str) -> str | None:
        if bool(self.condition(obj, np)):
            return None
        values = ", ".join(f"{prefix}{f} = {_show(getattr(obj, f))}" for f in self.fields.split(","))
        return f"{values}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Check:
    """A constraint found by a function of concrete values (settings, never traced):
    ``problem(obj, prefix)`` returns the whole one-line message, or None when ``obj`` is fine."""

    problem: Callable[[Any, str], str | None]

    def condition(self, obj: Any, xp: Any = jnp) -> Any:
        return xp.asarray(self.problem(obj, "") is None)

    def error(self, obj: Any, prefix: str) -> str | None:
        return self.problem(obj, prefix)


def whole(field: str, lo: int = 0, allow_none: bool = False) -> Check:
    """``field`` is a whole number >= ``lo`` (or None when ``allow_none``): counts and sizes."""
    def problem(obj: Any, prefix: str) -> str | None:
        value = getattr(obj, field)
        if value is None and allow_none:
            return None
        try:
            ok = float(value) == int(float(value)) and int(float(value)) >= lo
        except (TypeError, ValueError, OverflowError):
            ok = False
        if ok:
            return None
        return f"{prefix}{field} = {value!r} is out of range: must be a whole number >= {lo}" + (
            " or null" if allow_none else "")

    return Check(problem)


def _children(obj: Any) -> list[tuple[str, Any]]:
    if not dataclasses.is_dataclass(obj):
        return []
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.append((f.name, value))
        elif isinstance(value, (tuple, list)):
            out.extend((f"{f.name}.{i}", v) for i, v in enumerate(value) if dataclasses.is_dataclass(v))
    return out


def validate(obj: Any, prefix: str = "") -> Any:
    """Raise :class:`ValidationError` for the first violated check of ``obj`` or its parts.

    Call it on concrete values (the Python API's entry points and the CLI), never inside jit.
    Returns ``obj`` so that it can wrap a constructor.
    """
    for name, child in _children(obj):
        validate(child, f"{prefix}{name}.")
    for check in getattr(obj, "checks", lambda: [])():
        message = check.error(obj, prefix)
        if message is not None:
            raise ValidationError(message)
    return obj


def is_valid(obj: Any) -> Any:
    """Traced boolean: all checks of ``obj`` and of its parts hold."""
    ok = jnp.asarray(True)
    for _, child in _children(obj):
        ok = ok & is_valid(child)
    for check in getattr(obj, "checks", lambda: [])():
        ok = ok & check.condition(obj, jnp)
    return ok
