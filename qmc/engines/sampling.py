"""Random words and exact discrete samplers for the Monte Carlo engines.

Everything here draws from **Philox4x32-10** (Salmon, Moraes, Dror, Shaw, "Parallel random numbers:
as easy as 1, 2, 3", SC'11), a counter-based generator written in plain ``jnp`` integer ops: the
words for (key, counter) are a pure function of both, so any pulse's words can be recomputed
anywhere, on any chunking, under ``vmap``, on CPU and GPU alike (the arithmetic is the same on every
backend). It is about 15 times faster on a CPU than ``jax.random.bits`` with the default threefry
implementation, and it passes the Random123 known-answer tests (``tests/test_pulse.py``).

Keys: a Philox key is two uint32 words, derived from a JAX PRNG key by :func:`philox_key`, which
folds in a purpose and an index with ``jax.random.fold_in`` (threefry). A Philox counter is four
uint32 words; the engines use ``(position, stream, 0, 0)``.

Exact discrete sampling:

* :func:`thresholds64` turns a probability vector into 64-bit fixed-point cumulative thresholds
  (each cell's weight is ``floor(p * 2**64)``, computed cell by cell and summed exactly in
  integers, so every cell is resolved to 2**-64 absolute wherever it sits in the table: relative
  error 5e-11 at p = 1e-9, 5e-7 at p = 1e-13).
* :func:`categorical` draws a cell from one 32-bit word per draw, comparing it with the thresholds'
  upper words. Only when the word equals a threshold's upper word (probability below
  ``n_cells * 2**-32``) is the outcome ambiguous; those rare draws are resolved exactly with a
  second word (the lower 32 bits of the 64-bit uniform) in a sparse fix-up loop. So every cell
  probability is resolved to 2**-64 with about one word per draw.
* :func:`alias_table` / :func:`alias_draw` draw a cell with one word and one table lookup
  (Walker's alias method, the table built in exact integers), resolved to 2**-63; a second word
  decides the rare draws that fall on a column's cut (:func:`alias_exact`).
* :func:`binomial` is an exact binomial sampler for counts up to 2**53: inversion (sequential
  search of the pmf) when n min(p, 1-p) < 10, otherwise BTRS (Hormann, "The generation of binomial
  random variates", J. Stat. Comput. Simul. 46, 101 (1993)) with the acceptance bound written in
  ``log1p`` form so that it stays accurate for n up to 1e15 (the textbook form loses ~0.1 in the
  log-acceptance at n = 1e15). :func:`multinomial` chains conditional binomials along the cells.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "philox4x32", "philox_key", "words", "uniform53", "thresholds64", "categorical", "histogram",
    "kernel_methods", "CATEGORICAL_METHODS", "HISTOGRAM_METHODS", "categorical_exact", "fix_ambiguous", "first_true",
    "binomial", "multinomial", "geometric_positions", "alias_bits", "alias_table", "alias_draw", "alias_exact",
]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint32(0x9E3779B9)
_W1 = np.uint32(0xBB67AE85)
_TWO32 = 4294967296.0


def _mulhilo(m, x):
    p = x.astype(jnp.uint64) * m
    return (p >> np.uint64(32)).astype(jnp.uint32), p.astype(jnp.uint32)


def philox4x32(k0, k1, c0, c1, c2, c3, rounds: int = 10, rolled: bool = False):
    """Philox4x32 (Random123): four uint32 words per counter (c0, c1, c2, c3) and key (k0, k1).

    All arguments broadcast against each other; they are cast to uint32. ``rolled=True`` runs the
    rounds in a ``fori_loop`` (same words): a smaller program that compiles faster, for the few
    words of a fix-up; the default unrolled form fuses into one fast kernel for whole blocks.
    """
    u32 = lambda v: jnp.asarray(v).astype(jnp.uint32)  # noqa: E731
    k0, k1, c0, c1, c2, c3 = map(u32, (k0, k1, c0, c1, c2, c3))
    shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in (k0, k1, c0, c1, c2, c3)))

    def one_round(_, state):
        k0, k1, c0, c1, c2, c3 = state
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        return k0 + _W0, k1 + _W1, hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0

    state = tuple(jnp.broadcast_to(v, shape) for v in (k0, k1, c0, c1, c2, c3))
    if rolled:
        state = lax.fori_loop(0, rounds, one_round, state)
    else:
        for r in range(rounds):
            state = one_round(r, state)
    return state[2:]


def philox_key(key, *folds):
    """Philox key (uint32 (2,)) from a JAX PRNG key folded with each integer of ``folds`` in turn.

    ``folds`` name a purpose and an index (block of pulses, session), never anything that depends
    on how the work is chunked. Works for typed keys and raw uint32 keys of any implementation.
    """
    for f in folds:
        key = jax.random.fold_in(key, f)
    return jax.random.bits(key, (2,), jnp.uint32)


def words(pkey, n: int, stream):
    """``n`` uint32 words (n a multiple of 4) of one stream: counters (0 .. n/4 - 1, stream, 0, 0).

    Word ``j * n/4 + i`` is output ``j`` of counter ``i``: contiguous quarters avoid interleaving.
    """
    if n % 4:
        raise ValueError(f"n = {n} must be a multiple of 4")
    i = lax.iota(jnp.uint32, n // 4)
    out = philox4x32(pkey[..., 0, None], pkey[..., 1, None], i, stream, 0, 0)
    return jnp.concatenate(out, axis=-1)


def word_at(pkey, position, stream):
    """The word that :func:`words` puts at ``position`` (int array) of a stream of ``n`` words.

    Needs ``n``: pass ``position`` as ``(quarter, counter)`` = divmod(position, n // 4).
    """
    quarter, counter = position
    out = philox4x32(pkey[..., 0], pkey[..., 1], counter, stream, 0, 0, rolled=True)
    return jnp.select([quarter == 0, quarter == 1, quarter == 2], list(out[:3]), out[3])


def uniform53(hi, lo):
    """Float64 uniform in (0, 1) from two uint32 words (53 random bits, never 0 or 1)."""
    hi = (hi >> np.uint32(5)).astype(jnp.float64)  # 27 bits
    lo = (lo >> np.uint32(6)).astype(jnp.float64)  # 26 bits
    return (hi * 67108864.0 + lo + 0.5) * (1.0 / 9007199254740992.0)


# ----------------------------------------------------------------------------------------------
# Categorical draws on 64-bit fixed-point thresholds
# ----------------------------------------------------------------------------------------------


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
HISTOGRAM_METHODS = ("scatter", "onehot", "onehot8", "onehot_rows", "packed", "replicated", "split", "split_rows",
                     "matmul")


def kernel_methods(backend: str | None = None) -> tuple[str, str]:
    """``(categorical, histogram)`` methods for a backend (default: JAX's default backend).

    Every method gives bit-identical results; they differ only in speed. On a CPU the unrolled
    compares vectorize (a gather-based search does not) and a scatter-add is cheap. On a GPU a
    scatter-add into a few hot bins serializes on atomics and the compare chain loads the M
    thresholds per draw, so there the table is searched (log2 M steps, the first ones by selects
    among known entries, the rest gathers from a cached table) and the histogram is a fused
    one-hot reduction over int8 cells (see :func:`histogram`). Measured on an H100 with
    ``scripts/gpu_variants.py`` (docs/benchmarks/): 2.1e10 pulses/s against 1.9e9 for the CPU's
    choice (with the threshold search; the fast path and the stream engine now draw by alias
    lookup, :func:`alias_draw`, and use only the histogram method; the categorical method serves
    the physical path). The fast path chooses its own (``pulse.fast_methods``): on a GPU a fused
    Pallas kernel that none of these XLA methods can express.
    """
    backend = jax.default_backend() if backend is None else backend
    return ("compare", "scatter") if backend == "cpu" else ("search_top", "onehot8")


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


# ----------------------------------------------------------------------------------------------
# Alias tables: one lookup per draw
# ----------------------------------------------------------------------------------------------


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


def alias_draw(w_hi, entry):
    """Cells from one 32-bit word per draw and an :func:`alias_table` ``entry``: the top k bits
    pick a column, the other 32 - k bits are the upper part of a uniform compared with the
    column's cut. Returns ``(cell, ambiguous)``: ambiguous draws (the upper part equals the cut's,
    probability 2**(k - 32) per draw) need :func:`alias_exact` with a second word."""
    k = int(entry.shape[-1]).bit_length() - 1
    col = w_hi >> np.uint32(32 - k)
    frac = w_hi & np.uint32((1 << (32 - k)) - 1)
    e = entry[col]
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

    On an H100 (docs/benchmarks/) ``onehot8`` beat ``packed`` and ``replicated`` and the first
    ``split`` (whose scatter sent every no-click value to one overflow bin). Of the others (H100,
    the fast path at 50 km, docs/benchmarks/h100_2026-11-26.txt): ``split_rows`` 3.6e10 pulses/s,
    ``split`` 3.0e10, ``onehot_rows`` 2.9e10, ``onehot8`` 2.7e10, ``matmul`` 1.2e10; the stream
    engine 1.9e10 with ``split_rows`` against 1.6e10. But the split tallies scatter the clicks, and
    at 0 km with 90 % efficient detectors (about 40 % of pulses click) ``split_rows`` fell to 2.4e10
    against 2.7e10 for ``onehot8``, whose cost does not depend on the click rate: the GPU default
    stays ``onehot8`` (:func:`kernel_methods`), for the stream engine's short, saturated links too.
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


def categorical_exact(w_hi, w_lo, t_hi, t_lo):
    """Exact cell of the 64-bit uniform ``w_hi * 2**32 + w_lo`` (few draws; any batch shape).

    ``t_hi``/``t_lo`` have shape ``w_hi.shape + (M - 1,)`` or broadcast to it.
    """
    h = w_hi.astype(jnp.int64)[..., None]
    l = w_lo.astype(jnp.int64)[..., None]
    above = (h > t_hi) | ((h == t_hi) & (l >= t_lo))
    return jnp.sum(above, axis=-1, dtype=jnp.int32)


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


# ----------------------------------------------------------------------------------------------
# Binomial and multinomial counts
# ----------------------------------------------------------------------------------------------

_STIRLING_TAIL = np.array([
    0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
    0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
    0.00925546218271273, 0.00833056343336287,
])


# fc(k) for k = 0..9 as a degree-9 polynomial through the tabulated values (exact to ~2e-16): a
# table lookup (gather) inside the fused BTRS loop stops XLA:CPU from vectorizing it (3x slower).
_FC_POLY = np.polyfit((np.arange(10.0) - 4.5) / 4.5, _STIRLING_TAIL, 9)


def _fc(k):
    """Stirling tail fc(k) = log(k!) - [(k + 1/2) log(k + 1) - (k + 1) + log(sqrt(2 pi))]."""
    kp1 = k + 1.0
    kp1sq = kp1 * kp1
    approx = (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kp1sq) / kp1sq) / kp1
    t = (jnp.clip(k, 0.0, 9.0) - 4.5) / 4.5
    small = jnp.zeros_like(t)
    for c in _FC_POLY:
        small = small * t + c
    return jnp.where(k <= 9, small, approx)


def _uniform_pair(pkey, counter, stream, lane, lane2=0x42494E4F, rolled=False):
    a, b, c, d = philox4x32(pkey[0], pkey[1], counter, stream, lane, lane2, rolled=rolled)
    return uniform53(a, b), uniform53(c, d)


def _btrs_propose(pkey, counter, stream, lane, lane2, nb, qb, rolled=False):
    """One BTRS proposal (Hormann 1993) per element: the proposed count, or NaN if rejected."""
    spq = jnp.sqrt(nb * qb * (1.0 - qb))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * qb
    c = nb * qb + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    m = jnp.floor((nb + 1.0) * qb)
    uu, vv = _uniform_pair(pkey, counter, stream, lane, lane2, rolled=rolled)
    uu = uu - 0.5
    us = 0.5 - jnp.abs(uu)
    k = jnp.floor((2.0 * a / us + b) * uu + c)
    ok = (k >= 0.0) & (k <= nb)
    squeeze = (us >= 0.07) & (vv <= v_r)
    ks = jnp.clip(k, 0.0, nb)
    d = ks - m
    # log f(k) / f(m), with every ratio near 1 in log1p form (accurate for n up to 1e15; the
    # textbook form (n + 1) log((n - m + 1) / (n - k + 1)) loses ~0.1 at n = 1e15).
    log_ratio = (
        -(m + 0.5) * jnp.log1p(d / (m + 1.0))
        + (nb - m + 0.5) * jnp.log1p(d / (nb - ks + 1.0))
        + d * (jnp.log(qb) - jnp.log1p(-qb) + jnp.log((nb - ks + 1.0) / (ks + 1.0)))
        + _fc(m) + _fc(nb - m) - _fc(ks) - _fc(nb - ks)
    )
    lv = jnp.log(vv * alpha / (a / (us * us) + b))
    return jnp.where(squeeze | (ok & (lv <= log_ratio)), k, jnp.nan)


# Rejected BTRS proposals are compacted into a buffer of 1/_FINISH_FRACTION of the batch (the
# values never depend on it). On an H100 (scripts/gpu_block.py, docs/benchmarks/) 1/8 and 1/32
# ran alike (4.4e7-4.7e7 sessions/s) and 1/128 at half the speed (more compaction passes).
_FINISH_FRACTION = 8

# Steps per iteration of the sampler's loops, unrolled inside one iteration (speed only: every
# element takes the same steps in the same order, so the values never depend on them). Each
# iteration of a ``while_loop`` over a batch is a pass over the batch's arrays in memory and, on a
# GPU, kernel launches and a device-to-host copy of the loop test (some 10 us): with one step per
# iteration the inversion's walk up the pmf (to k ~ 30 for n p just below 10, in a batch of
# millions) made ~30 such iterations per binomial. Unrolled steps are fused arithmetic instead.
# The BTRS finish makes one try per iteration on every backend: each try is a whole proposal for
# every element of the buffer, accepted ones included, so on a CPU, where a loop test is cheap, 4
# tries per iteration made the block engine 1.5x slower than 1 (2-core CPU, 2**16 and 2**18
# sessions; the inversion's steps, 1 to 8, and a buffer of 1/8 or 1/32 made no difference there),
# and on a GPU 1 try was no slower than 4 either (scripts/gpu_variants.py: 9.3e7 against 9.1e7
# sessions/s on an H100, 1.00e8 against 9.4e7 on an H200; docs/benchmarks/).
_INVERSION_STEPS = 8
_FINISH_TRIES = 1


def _btrs_finish(pkey, stream, lane, lane2, nb, qb, k_out, tries_done: int):
    """Propose again for the elements still NaN until none is left.

    Each outer pass compacts up to ``buf`` (1/8 of the batch) rejected elements
    (:func:`first_true`) and loops on that buffer alone until all of it is accepted, then scatters
    back (one pass unless more than ``buf`` were rejected). Every element proposes with its own
    counters, so its value does not depend on ``buf`` or on the other elements.
    """
    size = k_out.shape[0]
    buf = max(min(size, 64), size // _FINISH_FRACTION)

    def inner(carry):
        k, used, lane_b, lane2_b, nb_b, qb_b = carry
        for _ in range(_FINISH_TRIES):  # unrolled: one fused pass and one loop test per iteration
            prop = _btrs_propose(pkey, used + 1, stream, lane_b, lane2_b, nb_b, qb_b, rolled=False)
            todo = jnp.isnan(k)
            k, used = jnp.where(todo, prop, k), used + todo.astype(jnp.uint32)
        return k, used, lane_b, lane2_b, nb_b, qb_b

    def outer(k):
        idx = first_true(jnp.isnan(k), buf, size)
        gi = jnp.minimum(idx, size - 1)
        sub = jnp.where(idx < size, jnp.nan, 0.0)
        used = jnp.full(buf, tries_done, jnp.uint32)
        carry = (sub, used, lane[gi], lane2[gi], nb[gi], qb[gi])
        sub = lax.while_loop(lambda c: jnp.any(jnp.isnan(c[0])), inner, carry)[0]
        return k.at[idx].set(sub, mode="drop")

    return lax.while_loop(lambda k: jnp.any(jnp.isnan(k)), outer, k_out)


def binomial(pkey, stream, n, p, lane=0, lane2=0, tries_per_round: int = 2):
    """Exact Binomial(n, p) counts as float64 (exact integers up to 2**53).

    Args:
        pkey: one Philox key, shape (2,). Elements are told apart by ``lane`` and ``lane2`` (a
            per-element key would make XLA carry 20 round-key arrays through the loops).
        stream: an integer naming this draw (different draws with one key need different streams).
        n: trial counts (float64 or int; integers below 2**53).
        p: success probabilities in [0, 1].
        lane, lane2: uint32 arrays telling the elements apart (e.g. session index and cell index);
            every (stream, lane, lane2) must be distinct among the draws of one key.

    Returns:
        float64 array of the broadcast shape of ``n``, ``p``, ``lane`` and ``lane2``.

    Method: for q = min(p, 1 - p) and n q < 10, inversion by sequential search of the pmf from 0
    (one uniform). Otherwise BTRS: ``tries_per_round`` proposals for every element, then the few
    rejected ones are compacted, 1/8 of the batch at a time, and proposed again until all are
    accepted (a plain loop would cost every element the rounds of the slowest). The value of
    every element depends only on (key, stream, lane, lane2, n, p), not on the batch.
    """
    n = jnp.asarray(n, jnp.float64)
    p = jnp.asarray(p, jnp.float64)
    shape = jnp.broadcast_shapes(n.shape, p.shape, jnp.shape(lane), jnp.shape(lane2))
    n = jnp.broadcast_to(jnp.floor(jnp.maximum(n, 0.0)), shape).ravel()
    p = jnp.broadcast_to(jnp.clip(p, 0.0, 1.0), shape).ravel()
    lane = jnp.broadcast_to(jnp.asarray(lane, jnp.uint32), shape).ravel()
    lane2 = jnp.broadcast_to(jnp.asarray(lane2, jnp.uint32), shape).ravel()
    size = n.shape[0]
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    use_inv = n * q < 10.0
    stream = jnp.uint32(stream)

    # Inversion: k = smallest k with u <= F(k), F the cdf, walking the pmf upwards from P(0).
    u, _ = _uniform_pair(pkey, 0, stream, lane, lane2, rolled=False)
    r = q / jnp.where(q < 1.0, 1.0 - q, 1.0)
    p0 = jnp.exp(n * jnp.log1p(-q))
    inv_active = use_inv & (u > p0) & (q > 0.0)

    def inv_body(c):
        k, pk, cdf, active = c
        for _ in range(_INVERSION_STEPS):  # unrolled (see _INVERSION_STEPS)
            k1 = k + 1.0
            pk = jnp.where(active, pk * r * (n - k) / k1, pk)
            cdf = jnp.where(active, cdf + pk, cdf)
            k = jnp.where(active, k1, k)
            active = active & (u > cdf) & (pk > 0.0) & (k < n)
        return k, pk, cdf, active

    zero = jnp.zeros_like(n)
    k_inv = lax.while_loop(lambda c: jnp.any(c[3]), inv_body, (zero, p0, p0, inv_active))[0]

    # BTRS for n q >= 10 (dummy parameters where inversion is used); skipped if none needs it.
    # The arrays carry the accepted value or NaN: with two outputs (value, done) XLA duplicated the
    # whole proposal into two fusions (4x slower on CPU).
    def btrs(_):
        nb = jnp.where(use_inv, 1e4, n)
        qb = jnp.where(use_inv, 0.5, q)
        k_b = jnp.where(use_inv, 0.0, jnp.nan)

        for t in range(tries_per_round):  # unrolled: one fused pass over the batch
            k_b = jnp.where(jnp.isnan(k_b), _btrs_propose(pkey, t + 1, stream, lane, lane2, nb, qb), k_b)
        return _btrs_finish(pkey, stream, lane, lane2, nb, qb, k_b, tries_per_round)

    k_b = lax.cond(jnp.all(use_inv), lambda _: zero, btrs, None)
    k = jnp.where(use_inv, k_inv, k_b)
    return jnp.where(flip, n - k, k).reshape(shape)


def multinomial(pkey, stream, n, probs, lane=0, lane2=0, tries_per_round: int = 2):
    """Exact Multinomial(n, probs) counts over the last axis of ``probs`` (float64 counts).

    Conditional binomials along the cells, count_j ~ Binomial(n - sum_{i<j} count_i,
    p_j / sum_{i>=j} p_i) (suffix sums, so tiny cells keep their precision), in a ``lax.scan``:
    M cells cost M - 1 binomials and one compiled sampler. ``probs`` need not be normalized.

    Args:
        pkey: one Philox key, shape (2,).
        stream: the stream of this call.
        n: counts; the batch shape is the broadcast of ``probs.shape[:-1]``, ``n`` and the lanes.
        probs: shape (..., M).
        lane, lane2: uint32, tell the rows apart (broadcastable to the batch); the cell index is
            folded into the second word as ``lane2 * M + j``.
        tries_per_round: :func:`binomial`'s (speed only: the counts do not depend on it).
    """
    probs = jnp.asarray(probs, jnp.float64)
    m = probs.shape[-1]
    batch = jnp.broadcast_shapes(probs.shape[:-1], jnp.shape(n), jnp.shape(lane), jnp.shape(lane2))
    # Conditional probabilities on the probabilities' own shape (often one row for a whole batch
    # of sessions): broadcast to the batch only inside each binomial, never as (batch, M) arrays.
    probs = jnp.maximum(probs, 0.0)
    rest = jnp.cumsum(probs[..., ::-1], axis=-1)[..., ::-1]  # sum_{i >= j} p_i
    cond = jnp.where(rest > 0, probs / jnp.where(rest > 0, rest, 1.0), 0.0)
    cond = jnp.clip(cond, 0.0, 1.0)
    n = jnp.broadcast_to(jnp.asarray(n, jnp.float64), batch)
    lane = jnp.broadcast_to(jnp.asarray(lane, jnp.uint32), batch)
    lane2 = jnp.broadcast_to(jnp.asarray(lane2, jnp.uint32), batch) * np.uint32(m)
    if m == 1:
        return n[..., None]

    def step(remaining, xs):
        j, p_j = xs
        c = binomial(pkey, stream, remaining, p_j, lane, lane2 + j, tries_per_round)
        return remaining - c, c

    cells = jnp.arange(m - 1, dtype=jnp.uint32)
    last, counts = lax.scan(step, n, (cells, jnp.moveaxis(cond[..., :-1], -1, 0)))
    return jnp.concatenate([jnp.moveaxis(counts, 0, -1), last[..., None]], axis=-1)


def geometric_positions(pkey, stream, p, length: int, batch: int = 256):
    """Positions of the successes of ``length`` Bernoulli(p) trials, as a bool mask (length,).

    Rare events drawn as counts and placed: the gaps between successes are geometric,
    ``g = floor(log(u) / log(1 - p))`` from 53-bit uniforms, so p is realized to 2**-53 absolute
    (1e-7 relative at p = 1e-9, where a float32 uniform would be off by 20 %), accumulated ``batch``
    at a time until they pass the end. Cost: one round of ``batch`` gaps per ``batch`` successes,
    independent of ``length``.
    """
    log_q = jnp.log1p(-jnp.clip(jnp.asarray(p, jnp.float64), 0.0, 1.0))
    idx = jnp.arange(batch // 2, dtype=jnp.uint32)

    def cond(c):
        return c[1] < length

    def body(c):
        rnd, pos, mask = c
        u, v = _uniform_pair(pkey, rnd, stream, idx, rolled=True)
        uv = jnp.concatenate([u, v])
        gap = jnp.where(log_q < 0.0, jnp.floor(jnp.log(uv) / jnp.where(log_q < 0, log_q, -1.0)), jnp.inf)
        gap = jnp.minimum(gap, 2.0**62)
        at = pos + jnp.cumsum(gap + 1.0) - 1.0  # float64: exact below 2**53
        inside = at < length
        mask = mask.at[jnp.where(inside, at, length).astype(jnp.int64)].set(True, mode="drop")
        return rnd + 1, at[-1] + 1.0, mask

    init = (jnp.uint32(0), jnp.float64(0.0), jnp.zeros(length, bool))
    return lax.while_loop(cond, body, init)[2]
