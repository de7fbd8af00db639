"""Compaction helpers for rare work inside vectorized kernels: the first True entries of a mask,
and a sparse fix-up loop over them."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["first_true", "fix_ambiguous"]


def first_true(mask, size: int, fill: int):
    """Indices of the first ``size`` True entries of the 1-D ``mask``, padded with ``fill``.

    The same as ``jnp.nonzero(mask, size=size, fill_value=fill)``, by one prefix sum and one
    scatter of distinct indices: ``jnp.nonzero`` counts with a scatter-add of every element into
    the bin of its prefix sum, and on a GPU the long runs of equal prefix sums (a sparse mask) all
    add into one address, serialized on atomics.
    """
    n = mask.shape[0]
    off = max(n, size)
    dtype = jnp.int32 if off + n < 2**31 else jnp.int64
    i = lax.iota(dtype, n)
    rank = jnp.cumsum(mask, dtype=dtype) - 1
    slot = jnp.where(mask, rank, off + i)  # every slot distinct; those >= size are dropped
    return jnp.full(size, fill, dtype).at[slot].set(i, mode="drop", unique_indices=True)


def fix_ambiguous(values, ambiguous, resolve):
    """Replace ``values[i]`` by ``resolve(i)`` for every ``i`` where ``ambiguous`` is set.

    A sparse fix-up loop: one ambiguous draw per iteration, so its cost is that of a reduction of
    the mask when (as is usual) nothing is ambiguous. ``values`` and ``ambiguous`` have shape (n,);
    ``resolve`` maps a scalar int32 index to the exact value.
    """
    count = jnp.sum(ambiguous, dtype=jnp.int32)

    def body(_, carry):
        vals, mask = carry
        i = jnp.argmax(mask).astype(jnp.int32)
        vals = vals.at[i].set(resolve(i).astype(vals.dtype))
        return vals, mask.at[i].set(False)

    return lax.fori_loop(0, count, body, (values, ambiguous))[0]
