"""Sweeps: a grid over numeric leaves of a PyTree, evaluated by one ``jit(vmap(...))`` per chunk.

A sweep point sets the leaves named by dotted paths (``"link.channel.length_km"``,
``"protocol.intensities.0"``) and evaluates a function of the whole tree. The grid is cut into
chunks of a fixed size (the last one padded), so a sweep compiles once per chunk shape and the
caller can save each chunk as it finishes. Points share the tree's values for every other leaf.
"""

from __future__ import annotations

import math
import dataclasses
import functools
import itertools
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc._compile import jit
from qmc._devices import local_devices, shardings
from qmc._pytree import get_path, replace_path

__all__ = ["Grid", "grid", "chunks", "padded_chunks", "padded_index", "run", "evaluate", "maximize_on_grid", "grid_evaluations", "auto_chunk_size",
           "set_paths", "sweep_devices"]


@dataclasses.dataclass(frozen=True)
class Grid:
    """Cartesian product of named axes, flattened in C order.

    Attributes:
        paths: dotted paths of the swept leaves.
        axes: the values of each axis.
    """

    paths: tuple[str, ...]
    axes: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.axes else 1

    def points(self) -> np.ndarray:
        """All points, shape (size, n_axes), float64."""
        if not self.axes:
            return np.zeros((1, 0))
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1).astype(np.float64)


def grid(axes: Mapping[str, Sequence[float]] | None = None, **named: Sequence[float]) -> Grid:
    """Build a :class:`Grid` from ``{path: values}`` (or keyword paths with ``__`` for dots)."""
    items = dict(axes or {})
    items.update({k.replace("__", "."): v for k, v in named.items()})
    return Grid(tuple(items), tuple(np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in items.values()))


def set_paths(tree: Any, paths: Sequence[str], values: Any) -> Any:
    """Tree with ``values[i]`` written at ``paths[i]`` (traceable)."""
    for i, path in enumerate(paths):
        tree = replace_path(tree, path, values[i])
    return tree


@functools.partial(jit, static_argnames=("fn", "paths"))
def _evaluate_chunk(fn: Callable, paths: tuple[str, ...], tree: Any, points: jax.Array) -> Any:
    return jax.vmap(lambda p: fn(set_paths(tree, paths, p)))(points)


def chunks(n: int, chunk_size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of length ``chunk_size`` (the last one shorter)."""
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def padded_index(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start .. stop - 1``, the last one repeated up to ``size`` entries: a chunk padded
    to a fixed shape (so that a jitted function of it compiles once), the padding a copy of real
    work whose results are dropped."""
    idx = np.arange(start, stop)
    return np.concatenate([idx, np.repeat(idx[-1:], size - len(idx))]) if len(idx) < size else idx


def padded_chunks(n: int, chunk_size: int) -> Iterator[tuple[slice, np.ndarray]]:
    """``(slice, padded indices)`` of the chunks of ``range(n)``: every index array has
    ``chunk_size`` entries (:func:`padded_index`)."""
    for index in chunks(n, chunk_size):
        yield index, padded_index(index.start, index.stop, chunk_size)


def sweep_devices(devices: int | None = None) -> list:
    """The local devices a sweep's chunks are split over: all of them (``None``) or the first
    ``devices`` (:func:`qmc._devices.local_devices`; a bad count is a ``ValidationError``)."""
    return local_devices(devices)


_shardings = shardings  # (points split along their first axis, replicated) over a mesh of devices


def run(
    fn: Callable[[Any], Any],
    tree: Any,
    sweep_grid: Grid,
    chunk_size: int | None = None,
    devices: int | None = None,
) -> Iterator[tuple[slice, np.ndarray, Any]]:
    """Evaluate ``fn(tree with the grid point set)`` over the grid, one chunk at a time.

    Args:
        fn: a pure function of the tree returning a PyTree of scalars (e.g. a ``KeyRate``). It is a
            static argument of the jit: pass the same function object for every chunk.
        tree: the PyTree the paths refer to (e.g. ``{"link": link, "protocol": protocol}``).
        sweep_grid: the points.
        chunk_size: points per compiled call; ``None`` for the whole grid in one call.
        devices: local devices the chunk's points are split over (``None``: all of them, see
            :func:`sweep_devices`). With several, each chunk is padded to a multiple of their
            count and its points sharded along a 1-D mesh, the tree replicated; the outputs are
            the single device's bit for bit (every point is computed by the same program).

    Yields:
        ``(index_slice, points, outputs)`` per chunk: ``points`` (n, n_axes) and ``outputs`` a
        PyTree of numpy arrays with leading axis n. Every chunk has the same compiled shape.
    """
    for path in sweep_grid.paths:
        get_path(tree, path)  # a typo in a path fails here, before compiling
    points = sweep_grid.points()
    n = len(points)
    size = n if chunk_size is None else max(1, min(int(chunk_size), n))
    used = sweep_devices(devices)
    split = replicated = None
    if len(used) > 1:
        split, replicated = _shardings(tuple(used))
        tree = jax.tree_util.tree_map(lambda x: jax.device_put(x, replicated) if isinstance(x, jax.Array) else x, tree)
    padded_size = -(-size // len(used)) * len(used)
    for index in chunks(n, size):
        chunk = points[index]
        batch = jnp.asarray(points[padded_index(index.start, index.stop, padded_size)])
        if split is not None:
            batch = jax.device_put(batch, split)
        out = _evaluate_chunk(fn, tuple(sweep_grid.paths), tree, batch)
        out = jax.tree_util.tree_map(lambda x: np.asarray(x)[: len(chunk)], out)
        yield index, chunk, out


def evaluate(fn: Callable[[Any], Any], tree: Any, sweep_grid: Grid, chunk_size: int | None = None,
             devices: int | None = None) -> Any:
    """All outputs of :func:`run`, concatenated and reshaped to ``grid.shape``."""
    parts = [out for _, _, out in run(fn, tree, sweep_grid, chunk_size, devices)]
    flat = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)
    return jax.tree_util.tree_map(lambda x: x.reshape(sweep_grid.shape + x.shape[1:]), flat)


# Evaluations of the point function per compiled call that keep a call long enough for its
# dispatch and the rows' bookkeeping to be small beside it, short enough for steady progress:
# about a second on a 2-core CPU; accelerators take many more side by side.
_EVALUATIONS_PER_CALL = {"cpu": 2**21}
_EVALUATIONS_PER_CALL_ACCELERATOR = 2**24


def auto_chunk_size(n_points: int, evaluations_per_point: int, backend: str | None = None) -> int:
    """Points per compiled call for ``n_points`` points of ``evaluations_per_point`` analysis
    evaluations each on ``backend`` (default: JAX's): about a second of work per call on a CPU,
    the chunks of equal size (the last one padded by at most a few points)."""
    backend = jax.default_backend() if backend is None else backend
    per_call = _EVALUATIONS_PER_CALL.get(backend, _EVALUATIONS_PER_CALL_ACCELERATOR)
    target = max(1, per_call // max(1, int(evaluations_per_point)))
    n_chunks = -(-int(n_points) // target)
    return max(1, -(-int(n_points) // n_chunks))


def _coarse_grid(n: int) -> tuple[np.ndarray, int]:
    """The coarse indices of a grid of ``n`` values and the width of the fine window, which holds
    the values between any coarse index's two neighbours."""
    coarse = np.round(np.linspace(0, n - 1, math.ceil(math.sqrt(2 * n)))).astype(int)
    return coarse, min(n, 2 * int(np.max(np.diff(coarse))) + 1)


def grid_evaluations(n_values: int, exhaustive: bool = False) -> int:
    """Evaluations :func:`maximize_on_grid` makes for a grid of ``n_values``."""
    if exhaustive or n_values < 16:
        return int(n_values)
    coarse, width = _coarse_grid(n_values)
    return len(coarse) + width


def maximize_on_grid(
    fn: Callable[[Any], Any],
    tree: Any,
    path: str,
    values: Any,
    score: Callable[[Any], Any] | None = None,
    exhaustive: bool = False,
) -> tuple[Any, Any]:
    """Maximize ``score(fn(tree))`` over ``values`` of the leaf at ``path`` (traceable, vmapped).

    ``score`` ranks the outputs (default: :func:`qmc.analysis.keyrate.score`, a key rate whose
    zero rates are graded by how far they are from a key; a flat score, such as the rate alone,
    needs ``exhaustive``).

    Coarse to fine unless ``exhaustive``: about sqrt(2 n) evenly spaced values of the grid, then
    every value between the best one's two coarse neighbours (about 2 sqrt(2 n) evaluations in
    all: 67 for 500 values). That is the grid's own maximum wherever the score has one peak along
    the grid (a key rate against the signal intensity, whose score keeps rising toward a key
    where the rate is 0: :func:`qmc.analysis.keyrate.score`); ``exhaustive`` evaluates every
    value.

    Returns:
        ``(best_output, best_value)``; ties go to the first value (of the window, coarse to fine).
    """
    if score is None:
        from qmc.analysis.keyrate import score  # the key rate's ranking (sweep stays below analysis)
    values = jnp.asarray(values)
    n = values.shape[0]

    def best_of(vals):
        outs = jax.vmap(lambda v: fn(replace_path(tree, path, v)))(vals)
        return outs, jnp.argmax(score(outs))

    if exhaustive or n < 16:
        outs, best = best_of(values)
        return jax.tree_util.tree_map(lambda x: x[best], outs), values[best]
    coarse, width = _coarse_grid(n)
    _, j = best_of(values[coarse])
    below = jnp.asarray(coarse)[jnp.maximum(j - 1, 0)]
    start = jnp.clip(below, 0, n - width)
    window = jax.lax.dynamic_slice_in_dim(values, start, width)
    outs, best = best_of(window)
    return jax.tree_util.tree_map(lambda x: x[best], outs), window[best]


def product(*iterables: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Cartesian product as a list (for structural loops outside jit)."""
    return list(itertools.product(*iterables))
