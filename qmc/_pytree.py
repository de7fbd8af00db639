"""Frozen dataclasses registered as PyTrees, and addressing of their leaves by path.

qmc uses plain frozen dataclasses registered as custom PyTree nodes (no Equinox dependency; see
:func:`register` for why not ``jax.tree_util.register_dataclass``). Fields marked with
:func:`static` are metadata: they change shapes or control flow, so changing them recompiles.
Every other field is an array leaf that can be swept or differentiated.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["pytree_dataclass", "static", "register", "replace_path", "get_path", "as_count"]


def static(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field that is static (hashable metadata, part of the jit cache key)."""
    return dataclasses.field(default=default, metadata={"static": True}, **kwargs)


def as_count(value: Any) -> Any:
    """A whole number given as a float (``1.0e8`` from YAML) as an int, so that a static count is
    hashable and exact; anything else unchanged (range checks then report it)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2.0**63:
        return int(value)
    return value


def _as_leaf(value: Any) -> Any:
    # Plain Python / numpy numbers become float64 numpy arrays so that every value of a field has
    # the same abstract type under jit (a weak-typed Python float and a strong array would compile
    # twice). Tracers, jax arrays and anything else JAX passes while unflattening stay as they are.
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, np.generic)):
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.generic)) for v in value):
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return value.astype(np.float64)
    return value


def pytree_dataclass(cls: type) -> type:
    """Make ``cls`` a frozen dataclass and register it as a PyTree.

    Numeric non-static fields given as Python numbers, lists or numpy arrays are converted to
    float64 arrays, so a value from YAML and a value from Python trace identically.
    """
    original_post_init = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:
        for f in dataclasses.fields(self):
            if not f.metadata.get("static", False):
                object.__setattr__(self, f.name, _as_leaf(getattr(self, f.name)))
        if original_post_init is not None:
            original_post_init(self)

    # Set before @dataclass runs: the generated __init__ only calls a __post_init__ it can see.
    cls.__post_init__ = __post_init__
    cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
    data_fields = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("static", False)]
    meta_fields = [f.name for f in dataclasses.fields(cls) if f.metadata.get("static", False)]
    cls.leaf_fields = tuple(data_fields)  # the numeric fields (array leaves): what a config must give as numbers
    return register(cls, data_fields, meta_fields)


def register(cls: type, data_fields: list[str], meta_fields: list[str]) -> type:
    """Register the frozen dataclass ``cls`` as a PyTree: ``data_fields`` are children,
    ``meta_fields`` (hashable) go into the tree structure.

    Why not ``jax.tree_util.register_dataclass``: in jaxlib 0.10 the tree structures of two
    dataclasses with the same field names compare equal even when the classes differ (their hashes
    differ), so ``jit``'s cache can hand a call with one class the program traced for the other
    whenever their hashes collide: ``SinglePhoton`` and ``InfiniteDecoy`` (both just ``f_ec``)
    gave each other's rates in about one test run in six (tests/test_sweep.py checks the fix). A
    custom node's structure holds its class. Unflattening sets the fields directly, without
    ``__init__``: JAX unflattens with placeholders too (vmap axes, ``None``), which a
    ``__post_init__`` must not see.
    """
    tu = jax.tree_util
    keys = tuple(tu.GetAttrKey(n) for n in data_fields)

    def getter(names):  # a tuple of the named attributes, fast (flattening is on every jit call)
        if not names:
            return lambda obj: ()
        get = operator.attrgetter(*names)
        return (lambda obj: (get(obj),)) if len(names) == 1 else get

    get_data, get_meta = getter(data_fields), getter(meta_fields)

    def flatten_with_keys(obj: Any):
        return tuple(zip(keys, get_data(obj))), get_meta(obj)

    def flatten(obj: Any):
        return get_data(obj), get_meta(obj)

    def unflatten(meta: tuple, children: Any) -> Any:
        obj = object.__new__(cls)
        for n, v in zip(data_fields, children):
            object.__setattr__(obj, n, v)
        for n, v in zip(meta_fields, meta):
            object.__setattr__(obj, n, v)
        return obj

    tu.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def _split(path: str) -> list[str]:
    return [p for p in path.replace("[", ".").replace("]", "").split(".") if p]


def get_path(tree: Any, path: str) -> Any:
    """Value at a dotted path such as ``"link.channel.length_km"`` or ``"protocol.intensities.0"``."""
    node = tree
    for part in _split(path):
        if part.lstrip("-").isdigit():
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            if not hasattr(node, part):
                raise KeyError(f"{path!r}: {type(node).__name__} has no field {part!r}")
            node = getattr(node, part)
    return node


def replace_path(tree: Any, path: str, value: Any) -> Any:
    """Copy of ``tree`` with the leaf at ``path`` replaced by ``value`` (works under jit/vmap).

    An integer as the last part indexes into an array leaf (``"protocol.intensities.0"``).
    """
    parts = _split(path)
    if not parts:
        return value
    head, rest = parts[0], ".".join(parts[1:])
    if head.lstrip("-").isdigit():
        index = int(head)
        if isinstance(tree, (tuple, list)):
            items = list(tree)
            items[index] = replace_path(items[index], rest, value)
            return type(tree)(items)
        if rest:
            raise KeyError(f"cannot descend into array element with {rest!r}")
        return jnp.asarray(tree).at[index].set(value)
    if isinstance(tree, dict):
        return {**tree, head: replace_path(tree[head], rest, value)}
    if not dataclasses.is_dataclass(tree) or not hasattr(tree, head):
        raise KeyError(f"{type(tree).__name__} has no field {head!r}")
    return dataclasses.replace(tree, **{head: replace_path(getattr(tree, head), rest, value)})
