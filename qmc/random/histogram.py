"""Tallies of cell indices (histograms) and the kernel methods chosen per backend.

Every method gives the same int32 counts; they differ only in speed, which depends on the device
(docs/benchmarks/ has the measurements behind :func:`kernel_methods`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from qmc.random.tables import CATEGORICAL_METHODS

__all__ = ["histogram", "HISTOGRAM_METHODS", "kernel_methods", "CATEGORICAL_METHODS"]


HISTOGRAM_METHODS = ("scatter", "onehot", "onehot8", "onehot_rows", "packed", "replicated", "split", "split_rows",
                     "matmul")


def kernel_methods(backend: str | None = None) -> tuple[str, str]:
    """``(categorical, histogram)`` methods for a backend (default: JAX's default backend).

    Every method gives bit-identical results; they differ only in speed. On a CPU the unrolled
    compares vectorize (a gather-based search does not) and a scatter-add is cheap. On a GPU a
    scatter-add into a few hot bins serializes on atomics and the compare chain loads the M
    thresholds per draw, so there the table is searched (log2 M steps, the first ones by selects
    among known entries, the rest gathers from a cached table) and the histogram is a fused
    one-hot reduction over int8 cells (see :func:`histogram`). The categorical method serves the
    physical path; the fast path and the stream engine draw by alias lookup
    (:func:`qmc.random.tables.alias_draw`) and use only the histogram method. The fast path
    chooses its own (:func:`qmc.engines.pulse.fast_methods`): on a GPU a fused Pallas kernel that
    none of these XLA methods can express.
    """
    backend = jax.default_backend() if backend is None else backend
    return ("compare", "scatter") if backend == "cpu" else ("search_top", "onehot8")


def _replicated_scatter(values, n_bins: int, replicas: int = 32):
    """Scatter-add into ``replicas`` copies of the bins, copy chosen by position (so that the 32
    lanes of a GPU warp never add into one address), then summed: atomics without contention.
    Values outside [0, n_bins) get an index past the end, which the scatter drops unread (an
    overflow bin would be the hottest address of all when most values are outside)."""
    inside = (values >= 0) & (values < n_bins)
    copy = (lax.iota(jnp.int32, values.shape[0]) % replicas) * n_bins
    slot = jnp.where(inside, values.astype(jnp.int32) + copy, replicas * n_bins)
    counts = jax.ops.segment_sum(jnp.ones(values.shape, jnp.int32), slot, replicas * n_bins)
    return counts.reshape(replicas, n_bins).sum(axis=0, dtype=jnp.int32)


def _small_ints(values, n_bins: int):
    """``values`` in [0, n_bins], out-of-range ones set to n_bins, in the narrowest signed type,
    materialized once (without the barrier XLA may fuse, so recompute, the whole producer,
    Philox included, into every bin's comparison)."""
    dtype = jnp.int8 if n_bins < 127 else jnp.int16 if n_bins < 32767 else jnp.int32
    v = jnp.where((values >= 0) & (values < n_bins), values, n_bins).astype(dtype)
    return lax.optimization_barrier(v)


def _onehot_counts(v, n_bins: int, rows: bool):
    """int32 counts of ``v`` in bins 0 .. n_bins - 1 by a fused compare-and-reduce; ``rows``
    reduces a (n_bins, n) comparison over its minor axis (on a GPU: a row reduction, each bin's
    values read in contiguous vectors), else a (n, n_bins) one over its major axis (a column
    reduction: each value read once per tile of bins). The same counts; only the GPU code differs."""
    bins = jnp.arange(n_bins, dtype=v.dtype)
    if rows:
        return jnp.sum(v[None, :] == bins[:, None], axis=1, dtype=jnp.int32)
    return jnp.sum(v[:, None] == bins[None, :], axis=0, dtype=jnp.int32)


def histogram(values, n_bins: int, method: str = "scatter"):
    """int32 counts of ``values`` (int, (n,)) in bins 0 .. n_bins - 1; other values are dropped.

    Methods (identical counts):

    * ``"scatter"``: one scatter-add per value (``segment_sum``); best on a CPU.
    * ``"onehot"``: a fused compare-and-reduce over (n, n_bins); ``"onehot8"`` the same on the
      values as int8 (n_bins < 127). n_bins compare-and-adds per value. ``"onehot_rows"``: int8
      values compared as (n_bins, n) and reduced over the minor axis (another GPU reduction
      kernel, see :func:`_onehot_counts`).
    * ``"replicated"``: scatter-add into 32 copies of the bins (by position), then summed.
    * ``"split"``: for cells numbered 4 * group + outcome with outcome mostly 0 (no click): a
      one-hot over the groups (a quarter of the compares of ``onehot``), a replicated scatter-add
      of the values with a non-zero outcome (the others are dropped unread: atomics only for the
      clicks), and the outcome-0 counts by difference. ``"split_rows"``: its one-hot as rows.
    * ``"matmul"``: bin = 8 * hi + lo; the (hi, lo) counts are a matrix product of the one-hot
      codes of hi and lo over the values (exact in float32: at most 2**14 values a product), so
      n_bins / 8 + 8 compares per value and the products on a GPU's tensor cores.
    * ``"packed"``: values in groups of 128; each group's counts are accumulated as bytes packed
      four to a uint32 word (a count below 256 cannot carry into the next byte), so a value costs
      ceil(n_bins / 4) compare-and-adds instead of n_bins, and no atomics; then the bytes are
      unpacked and summed over groups.

    The GPU default is ``onehot8`` (:func:`kernel_methods`): its cost does not depend on the click
    rate, where the split tallies scatter every click, so they lose on short, saturated links.
    """
    values = jnp.asarray(values).ravel()
    if method == "scatter":
        v = jnp.where((values >= 0) & (values < n_bins), values.astype(jnp.int32), n_bins)
        return jax.ops.segment_sum(jnp.ones_like(v, jnp.int32), v, n_bins + 1)[:n_bins]
    if method == "replicated":
        return _replicated_scatter(values, n_bins)
    if method in ("split", "split_rows"):
        n_groups = (n_bins + 3) // 4
        v = _small_ints(values, n_bins)  # out-of-range values are n_bins
        per_group = _onehot_counts(v >> 2, n_groups, rows=method == "split_rows")
        rare = _replicated_scatter(jnp.where((v & 3) != 0, v, n_bins), n_bins)
        rare = jnp.concatenate([rare, jnp.zeros(4 * n_groups - n_bins, jnp.int32)]).reshape(n_groups, 4)
        zero = per_group - rare[:, 1:].sum(axis=1, dtype=jnp.int32)
        if n_bins % 4:  # then the marker n_bins is in the last group: take its count back out
            zero = zero.at[-1].add(-jnp.sum(v == n_bins, dtype=jnp.int32))
        return jnp.concatenate([zero[:, None], rare[:, 1:]], axis=1).ravel()[:n_bins]
    if method == "matmul":
        per_product = 2**14  # counts below 2**24: exact in float32
        v = _small_ints(values, n_bins).astype(jnp.int32)
        pad = (-v.shape[0]) % per_product
        v = jnp.concatenate([v, jnp.full(pad, n_bins, jnp.int32)]).reshape(-1, per_product)
        n_hi = n_bins // 8 + 1  # the marker n_bins has its own (hi, lo), never read back
        hi = (v[..., None] >> 3 == jnp.arange(n_hi, dtype=jnp.int32)[None, None, :]).astype(jnp.bfloat16)
        lo = (v[..., None] & 7 == jnp.arange(8, dtype=jnp.int32)[None, None, :]).astype(jnp.bfloat16)
        # one product per group of 2**14 values (float32 counts exact), summed as integers
        c = jnp.einsum("gnh,gnl->ghl", hi, lo, preferred_element_type=jnp.float32)
        return jnp.sum(c.astype(jnp.int32), axis=0, dtype=jnp.int32).ravel()[:n_bins]
    if method in ("onehot", "onehot8", "onehot_rows"):
        if method != "onehot" and n_bins < 127:  # a quarter of the bytes to read per value
            values = _small_ints(values, n_bins)
        else:
            values = lax.optimization_barrier(values)
        return _onehot_counts(values, n_bins, rows=method == "onehot_rows")
    if method != "packed":
        raise ValueError(f"method = {method!r}: must be one of {HISTOGRAM_METHODS}")
    group = 128
    n_words = (n_bins + 3) // 4
    pad = (-values.shape[0]) % group
    v = jnp.concatenate([values.astype(jnp.int32), jnp.full(pad, -1, jnp.int32)]).reshape(-1, group)
    v = jnp.where((v >= 0) & (v < n_bins), v, 4 * n_words)  # out of range: a word never summed
    word = v // 4
    one = jnp.left_shift(jnp.uint32(1), (8 * (v % 4)).astype(jnp.uint32))  # (G, 128)
    ids = jnp.arange(n_words, dtype=jnp.int32)
    packed = jnp.sum(jnp.where(word[:, None, :] == ids[None, :, None], one[:, None, :], jnp.uint32(0)),
                     axis=-1, dtype=jnp.uint32)  # (G, W): bytes = counts < 256
    shifts = jnp.arange(4, dtype=jnp.uint32) * jnp.uint32(8)
    counts = (packed[..., None] >> shifts[None, None, :]) & jnp.uint32(0xFF)  # (G, W, 4)
    return jnp.sum(counts.reshape(counts.shape[0], -1), axis=0, dtype=jnp.int32)[:n_bins]
