"""Exact discrete sampling from 64-bit fixed-point tables: thresholds and alias tables.

* :func:`thresholds64` turns a probability vector into 64-bit fixed-point cumulative thresholds
  (each cell's weight is ``floor(p * 2**64)``, computed cell by cell and summed exactly in
  integers, so every cell is resolved to 2**-64 absolute wherever it sits in the table: relative
  error 5e-11 at p = 1e-9, 5e-7 at p = 1e-13).
* :func:`categorical` draws a cell from one 32-bit word per draw, comparing it with the thresholds'
  upper words. Only when the word equals a threshold's upper word (probability below
  ``n_cells * 2**-32``) is the outcome ambiguous; those rare draws are resolved exactly with a
  second word (the lower 32 bits of the 64-bit uniform, :func:`categorical_exact`) in a sparse
  fix-up loop (:func:`qmc.random.compact.fix_ambiguous`). So every cell probability is resolved to
  2**-64 with about one word per draw.
* :func:`alias_table` / :func:`alias_draw` draw a cell with one word and one table lookup
  (Walker's alias method, the table built in exact integers), resolved to 2**-63; a second word
  decides the rare draws that fall on a column's cut (:func:`alias_exact`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "thresholds64", "categorical", "categorical_exact", "CATEGORICAL_METHODS", "alias_bits", "alias_table",
    "alias_draw", "alias_exact",
]

_TWO32 = 4294967296.0


def thresholds64(probs):
    """Cumulative 64-bit fixed-point thresholds of the last axis of ``probs`` (each sums to 1).

    Cell ``c`` is drawn when ``T[c-1] <= u < T[c]`` for a uniform 64-bit integer ``u``; each
    cell's weight is ``floor(p * 2**64)`` (to 2**-64), the largest cell absorbs the rounding so
    that the weights sum to 2**64 exactly, and a threshold at 2**64 (all later cells empty) can
    never be reached.

    Returns:
        ``(hi, lo)``, int64 arrays of shape ``probs.shape[:-1] + (M - 1,)``: the threshold is
        ``hi * 2**32 + lo`` with ``hi`` in [0, 2**32] and ``lo`` in [0, 2**32).
    """
    p = jnp.clip(jnp.asarray(probs, jnp.float64), 0.0, 1.0 - 2.0**-53)
    hi = jnp.floor(p * _TWO32)
    lo = jnp.floor((p * _TWO32 - hi) * _TWO32)
    w = (hi.astype(jnp.uint64) << np.uint64(32)) + lo.astype(jnp.uint64)  # (..., M)
    total = jnp.sum(w, axis=-1, dtype=jnp.uint64)  # wraps modulo 2**64; the deficit is small
    deficit = jnp.zeros_like(total) - total  # 2**64 - sum (mod 2**64), applied as signed
    big = jnp.argmax(p, axis=-1)
    onehot = jnp.arange(p.shape[-1]).reshape((1,) * (p.ndim - 1) + (-1,)) == big[..., None]
    w = w + jnp.where(onehot, deficit[..., None], np.uint64(0))
    t = jnp.cumsum(w, axis=-1, dtype=jnp.uint64)[..., :-1]  # exact partial sums, 2**64 wraps to 0
    # A partial sum of 0 modulo 2**64 is either 0 (nothing below) or 2**64 (nothing above).
    c_float = jnp.cumsum(p, axis=-1)[..., :-1]
    never = (t == 0) & (c_float > 0.5)
    t_hi = jnp.where(never, _TWO32, (t >> np.uint64(32)).astype(jnp.float64)).astype(jnp.int64)
    t_lo = jnp.where(never, 0, (t & np.uint64(0xFFFFFFFF)).astype(jnp.int64))
    return t_hi, t_lo


def _hi32(t_hi):
    return jnp.minimum(t_hi, 0xFFFFFFFF).astype(jnp.uint32)


CATEGORICAL_METHODS = ("compare", "search", "search64", "search_top")


def categorical(w_hi, t_hi, method: str = "compare"):
    """Cell index from one 32-bit word per draw, and whether the lower word is needed.

    Args:
        w_hi: uint32 words, shape (n,).
        t_hi: upper threshold words from :func:`thresholds64`, shape (M - 1,) (one table).
        method: ``"compare"`` (M - 1 unrolled compares per draw), ``"search"`` (branch-free
            binary search, ceil(log2 M) gathers per draw from the uint32 table), ``"search_top"``
            (the same, its first levels by selects among known entries) or ``"search64"`` (int64
            table); the same cells every way (:func:`kernel_methods` picks one per backend).

    Returns:
        ``(cell, ambiguous)``: int32 cell (exact unless ``ambiguous``), and a bool mask of the rare
        draws whose word equals the upper word of the threshold just below the cell (then the cell
        may be lower; resolve them with :func:`categorical_exact` / :func:`fix_ambiguous`).
    """
    h = _hi32(t_hi)
    m = h.shape[-1]
    if method == "compare":
        cell = jnp.zeros(w_hi.shape, jnp.int32)
        for j in range(m):  # unrolled compares vectorize well on a CPU; a gather-based search does not
            cell = cell + (w_hi >= h[j]).astype(jnp.int32)
    elif method in ("search", "search64", "search_top"):
        # cell = #{j : h[j] <= w} (h is non-decreasing), by a branch-free binary search over the
        # table padded to P = 2**K > m entries: K steps find any count in [0, P - 1]. The padding
        # is 2**32 - 1, which only a word of 2**32 - 1 reaches, and then every real entry is
        # <= w too, so clipping the count at m is exact. "search64": int64 table, padding 2**32.
        size = 1 << int(m).bit_length()
        if method in ("search", "search_top"):
            padded, wv = jnp.concatenate([h, jnp.full(size - m, 0xFFFFFFFF, jnp.uint32)]), w_hi
        else:
            padded = jnp.concatenate([h.astype(jnp.int64), jnp.full(size - m, 2**32, jnp.int64)])
            wv = w_hi.astype(jnp.int64)
        cell = jnp.zeros(w_hi.shape, jnp.int32)
        step = size // 2
        while step >= 1:  # invariant: the first `cell` entries are <= w
            if method == "search_top" and size // (2 * step) <= 4:
                # the first levels probe at most 4 known entries: selects instead of gathers
                probe = padded[step - 1]
                for i in range(1, size // (2 * step)):
                    probe = jnp.where(cell == 2 * step * i, padded[2 * step * i + step - 1], probe)
            else:
                probe = padded[cell + step - 1]
            cell = jnp.where(probe <= wv, cell + step, cell)
            step //= 2
        cell = jnp.minimum(cell, m)
    else:
        raise ValueError(f"method = {method!r}: must be one of {CATEGORICAL_METHODS}")
    below = h[jnp.maximum(cell - 1, 0)]
    return cell, (cell > 0) & (w_hi == below)


def categorical_exact(w_hi, w_lo, t_hi, t_lo):
    """Exact cell of the 64-bit uniform ``w_hi * 2**32 + w_lo`` (few draws; any batch shape).

    ``t_hi``/``t_lo`` have shape ``w_hi.shape + (M - 1,)`` or broadcast to it.
    """
    h = w_hi.astype(jnp.int64)[..., None]
    l = w_lo.astype(jnp.int64)[..., None]
    above = (h > t_hi) | ((h == t_hi) & (l >= t_lo))
    return jnp.sum(above, axis=-1, dtype=jnp.int32)


def alias_bits(n_cells: int) -> int:
    """log2 of the number of alias columns: the smallest K = 2**k >= n_cells (k >= 1)."""
    return max(1, (int(n_cells) - 1).bit_length())


def alias_table(probs):
    """Exact alias table of a probability vector, in 63-bit fixed point: Walker's method (ACM
    Trans. Math. Softw. 3, 253 (1977)) with Vose's pairing (IEEE Trans. Softw. Eng. 17, 972
    (1991)).

    Each cell's weight is ``W_j = floor(p_j 2**63)`` (the most probable cell absorbs the rounding,
    so the weights sum to 2**63 exactly; the construction of :func:`thresholds64`, one bit coarser
    so that a certain cell's weight and every partial sum fit in a uint64). With K = 2**k columns
    of capacity ``C = 2**(63 - k)``, column c keeps ``T_c`` of its capacity for cell c and gives
    the rest to cell ``A_c``; Vose's pairing (a column below capacity is filled from one above
    it, which may then fall below) is done in exact integers, so ``T_j + sum_{c: A_c = j}
    (C - T_c) = W_j`` for every cell: each cell's probability is realized to 2**-63 absolute.

    Returns:
        ``(entry, t)``: uint32 ``entry[c] = min(T_c >> 31, 2**(32 - k) - 1) << k | A_c`` (what a
        draw reads: one lookup) and int64 ``t[c] = T_c`` (for the rare exact comparisons), shape
        (K,).
    """
    p = jnp.clip(jnp.asarray(probs, jnp.float64), 0.0, 1.0 - 2.0**-53)
    m = p.shape[-1]
    k = alias_bits(m)
    n_col = 1 << k
    cap = 1 << (63 - k)
    # uint64 with wrap-around arithmetic: every true value lies in [0, 2**63] (a certain cell
    # weighs 2**63, one more than int64 holds), so the modular results are the exact ones.
    w = jnp.floor(p * 2.0**63).astype(jnp.uint64)  # exact: a power-of-two scaling, then floor
    total = jnp.sum(w, dtype=jnp.uint64)  # below 2**64 (sum(p) <= 1 + m 2**-53)
    w = w.at[jnp.argmax(p)].add(np.uint64(2**63) - total)  # + the (signed, small) deficit
    w = jnp.concatenate([w, jnp.zeros(n_col - m, jnp.uint64)])
    cap_u = np.uint64(cap)

    def pair(_, state):  # one column below capacity is closed per step
        w, t, a, done = state
        small = ~done & (w < cap_u)
        large = ~done & (w > cap_u)
        go = jnp.any(small) & jnp.any(large)
        s, l = jnp.argmax(small), jnp.argmax(large)
        t = t.at[s].set(jnp.where(go, w[s].astype(jnp.int64), t[s]))
        a = a.at[s].set(jnp.where(go, l.astype(jnp.int32), a[s]))
        done = done.at[s].set(done[s] | go)
        w = w.at[l].add(jnp.where(go, w[s] - cap_u, np.uint64(0)))  # gives cap - w[s] away
        return w, t, a, done

    state = (w, jnp.zeros(n_col, jnp.int64), jnp.zeros(n_col, jnp.int32), jnp.zeros(n_col, bool))
    w, t, a, done = lax.fori_loop(0, n_col, pair, state)
    own = jnp.arange(n_col, dtype=jnp.int32)
    t = jnp.where(done, t, cap)  # the columns never paired hold exactly their capacity
    a = jnp.where(done, a, own)
    t_hi = jnp.minimum(t >> 31, (1 << (32 - k)) - 1).astype(jnp.uint32)
    entry = (t_hi << np.uint32(k)) | a.astype(jnp.uint32)
    return entry, t


def alias_draw(w_hi, entry, row=None):
    """Cells from one 32-bit word per draw and an :func:`alias_table` ``entry``: the top k bits
    pick a column, the other 32 - k bits are the upper part of a uniform compared with the
    column's cut. Returns ``(cell, ambiguous)``: ambiguous draws (the upper part equals the cut's,
    probability 2**(k - 32) per draw) need :func:`alias_exact` with a second word.

    With ``row`` (int32, one per draw), ``entry`` holds several tables (R, 2**k) and each draw
    reads its own row: still one lookup."""
    k = int(entry.shape[-1]).bit_length() - 1
    col = w_hi >> np.uint32(32 - k)
    frac = w_hi & np.uint32((1 << (32 - k)) - 1)
    if row is None:
        e = entry[col]
    else:
        e = entry.reshape(-1)[(row << k) + col.astype(jnp.int32)]
    cut = e >> np.uint32(k)
    alias = (e & np.uint32((1 << k) - 1)).astype(jnp.int32)
    cell = jnp.where(frac < cut, col.astype(jnp.int32), alias)
    return cell, frac == cut


def alias_exact(w_hi, w_lo, entry, t):
    """Exact cell of a draw from its two words: the 63 - k bit uniform ``frac(w_hi) * 2**31 +
    w_lo >> 1`` against the column's full cut."""
    k = int(entry.shape[-1]).bit_length() - 1
    col = (w_hi >> np.uint32(32 - k)).astype(jnp.int32)
    frac = (w_hi & np.uint32((1 << (32 - k)) - 1)).astype(jnp.int64)
    u = (frac << 31) | (w_lo >> np.uint32(1)).astype(jnp.int64)
    return jnp.where(u < t[col], col, (entry[col] & np.uint32((1 << k) - 1)).astype(jnp.int32))
