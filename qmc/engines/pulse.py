"""Pulse engine: per-pulse Monte Carlo in fixed-size chunks, tallies reduced inside each chunk.

Pulses are simulated in **blocks** of ``block_pulses`` (2**20 by default), the unit of key folding:
block ``b`` draws its words from a Philox key folded from (key, purpose, b), so every pulse's
random words depend only on the seed, the config and its index, never on how the work is chunked.
A **chunk** is a whole number of blocks (``vmap`` over blocks), reduced to int32 counts per cell
(``segment_sum``) and added into an int64 tally carried by a ``lax.fori_loop`` over chunks whose
trip count is a traced value: memory is set by the chunk, never by ``n_pulses``, and a new
``n_pulses`` does not recompile. Pulses past ``n_pulses`` in the last block are dropped, so a run
of N pulses tallies exactly the first N pulses of any longer run with the same key.

Two paths (static field ``path``):

* ``"fast"``: each pulse's (class, outcome) cell is drawn from the exact engine's joint table
  P(class) P(outcome | class) with **one 32-bit word per pulse** and an exact alias table
  (Walker's method, :func:`tables.alias_table`): the word's top k bits pick one of 2**k >=
  n_cells columns, one lookup gives the column's cut and alias, and the other bits are compared
  with the cut; the rare pulses whose bits equal the cut's upper bits (2**(k - 32) per pulse:
  one in 2**25 for the 96 cells of three intensities) get a second word and an exact comparison.
  Every cell probability, p_dark = 1e-9 included, is resolved to 2**-63. One lookup per pulse,
  where a search of the cumulative table costs log2(n_cells) dependent lookups (on a GPU) or
  n_cells compares (on a CPU): the same law, 1.5 times as fast on a CPU.
* ``"physical"``: independent of the exact engine's formulas. Alice's class by one word; her
  photon number by inversion of the source's photon-number distribution with a 64-bit uniform;
  each photon independently lost or routed to a detector (matched basis: Alice's detector with
  probability 1 - e_d; mismatched: either with 1/2), one word per photon (photons beyond the
  second, 1.4 % of pulses at mu = 0.48, on a compacted list); dark counts of each detector as a
  Bernoulli process drawn as geometric gaps (counts placed at their positions, p_dark realized to
  2**-53); a detector fires on a photon or a dark count. With classical traffic in the fiber the
  Bernoulli probability is the background p_bg = 1 - (1 - p_dark)(1 - p_noise) of
  :meth:`qmc.Link.background_click_probability` (noise photons are Poisson and independent of
  everything else, so a detector's noise clicks are Bernoulli per gate with the exact engine's
  marginal). Only the ``threshold`` click model is physical (``ma2005`` is a linear model of the
  gains).

Hidden counts (``photon_counts=True``) split every cell by the photon number Alice sent (0, 1, 2+):
the physical path counts them; the fast path draws from the joint table with photon bins.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax import lax

from qmc._pytree import as_count, pytree_dataclass, static
from qmc.engines.base import AbstractEngine
from qmc.engines import exact
from qmc.random import binomial, compact, histogram, philox, tables
from qmc.engines.exact import photon_outcome_table
from qmc.engines.tally import Tally
from qmc.validation import Range, Rule, whole

__all__ = ["PulseEngine", "simulate", "default_chunk", "fast_methods", "PATHS"]

PATHS = ("fast", "physical")
# The fast path's third kernel, besides the histogram methods: draw and tally fused in one Pallas
# kernel (qmc.engines.fused; Triton on a GPU, Pallas's interpreter elsewhere).
FUSED = "fused"
PURPOSE_FAST = 0xFA57
PURPOSE_PHYSICAL = 0x9415

# Philox streams within a block (each stream is a sequence of block_pulses words).
_S_CELL, _S_CELL_LO = 0, 1  # fast path: the cell word and its rare lower word
_S_CLASS, _S_CLASS_LO, _S_NPH_HI, _S_NPH_LO = 0, 1, 2, 3  # physical: class, photon number
_S_DARK = 8  # physical: dark counts of detector d use stream 8 + d
_S_FATE = 16  # physical: photon j's fate uses stream 16 + 2 j, its rare lower word 17 + 2 j


def default_chunk(block_pulses: int) -> int:
    """Pulses per chunk for the default backend: one block on a CPU, 16 on an accelerator."""
    return block_pulses * (1 if jax.default_backend() == "cpu" else 16)


def fast_methods(block_pulses: int = 2**20, backend: str | None = None) -> tuple[str, str]:
    """The fast path's ``(categorical, histogram)`` kernel methods for a backend (default: JAX's).

    On a GPU the fused Pallas kernel (:mod:`qmc.engines.fused`), where this JAX has Pallas's
    Triton backend and the kernel can draw blocks of ``block_pulses`` (a multiple of 64,
    :func:`fused.counters_per_program`); elsewhere, and for the other paths
    and engines, :func:`qmc.random.histogram.kernel_methods`. Every choice gives the same counts,
    bit for bit; on a GPU the fused kernel is several times faster than any XLA histogram
    (docs/benchmarks/).
    """
    backend = jax.default_backend() if backend is None else backend
    if backend == "gpu":
        from qmc.engines import fused

        try:
            fused.counters_per_program(block_pulses)
        except ValueError:  # a block the kernel cannot split into programs: the XLA methods
            return histogram.kernel_methods(backend)
        if fused.available():
            return ("search_top", FUSED)
    return histogram.kernel_methods(backend)


def _word_position(i, block_pulses: int):
    return jnp.divmod(i, block_pulses // 4)


def _cells_fast(pkeys, block_pulses: int, entry, cut):
    """Cells of the blocks of one chunk (flat, block-major) on the fast path: one word and one
    alias lookup per pulse, rare exact fix-ups with a second word.

    The fix-up loop runs once over the whole chunk (not once per block under ``vmap``, where
    every step of any block's loop would be a select over all the blocks' cells)."""
    w = jax.vmap(lambda pk: philox.words(pk, block_pulses, _S_CELL))(pkeys).ravel()
    cell, amb = tables.alias_draw(w, entry)

    def resolve(i):
        b, j = jnp.divmod(i, block_pulses)
        w_lo = philox.word_at(pkeys[b], _word_position(j, block_pulses), _S_CELL_LO)
        return tables.alias_exact(w[i], w_lo, entry, cut)

    return compact.fix_ambiguous(cell, amb, resolve)


def _select_rows(row, table):
    """table[row] for a small static table (R, ...) by a where-chain (a gather would stop XLA:CPU
    from vectorizing the surrounding loop)."""
    out = jnp.broadcast_to(table[0], row.shape + table.shape[1:])
    for r in range(1, table.shape[0]):
        out = jnp.where((row == r).reshape(row.shape + (1,) * (table.ndim - 1)), table[r], out)
    return out


def _lt64(w_hi, w_lo, t_hi, t_lo):
    """64-bit comparison (w_hi, w_lo) < (t_hi, t_lo), t_hi in [0, 2**32] and t_lo (int64)."""
    h = w_hi.astype(jnp.int64)
    return (h < t_hi) | ((h == t_hi) & (w_lo.astype(jnp.int64) < t_lo))


def _physical_tables(link, protocol, max_photons: int):
    """Threshold tables of the physical path (64-bit fixed point as (hi, lo) int64 pairs).

    Returns:
        ``t_class`` (thresholds of the 8k classes), ``(s_hi, s_lo)`` of P(n > j | mu_k), shape
        (k, max_photons), and ``t_fate`` of the photon fates (detector 0, detector 1, lost) for
        the routing rows (bit 0 matched, bit 1 matched, mismatched), shape (3, 2) each.
    """
    t_class = tables.thresholds64(protocol.class_probabilities().ravel())  # (8k - 1,)
    # P(n > j | mu_k) for j = 0 .. max_photons - 1, as suffix sums of the source's pmf (relative
    # precision kept for tiny tails); photons beyond max_photons are cut (see PulseEngine).
    n = jnp.arange(max_photons + 8, dtype=jnp.float64)
    mu = jnp.asarray(protocol.intensities, jnp.float64)
    pmf = link.source.photon_number_pmf(mu[:, None], n[None, :])  # (k, J + 8)
    tail = jnp.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]  # P(n >= j)
    more = jnp.clip(tail[:, 1: max_photons + 1], 0.0, 1.0)  # P(n > j), (k, J)
    s_hi = jnp.floor(more * 2.0**32)
    s_lo = jnp.floor((more * 2.0**32 - s_hi) * 2.0**32)
    # Photon fate: (detector 0, detector 1, lost). Routing rows: bit 0 matched (detector 0 with
    # 1 - e_d), bit 1 matched (detector 0 with e_d), mismatched (either with 1/2).
    eta = link.transmittance()
    e_d = link.detector.misalignment
    f0 = jnp.stack([1.0 - e_d, e_d, jnp.full_like(e_d, 0.5)])
    fate = jnp.stack([eta * f0, eta * (1.0 - f0), jnp.broadcast_to(1.0 - eta, (3,))], axis=-1)
    t_fate = tables.thresholds64(fate)  # (3, 2) each
    return t_class, (s_hi.astype(jnp.int64), s_lo.astype(jnp.int64)), t_fate


def _cell_physical(pkey, block_pulses: int, link, phys_tables, max_photons: int, photon_bins: bool,
                   method: str = "compare"):
    """Cells of one block on the physical path.

    Photons 0 and 1 of every pulse are handled on the whole block (one fate word each, rare exact
    fix-ups); the few pulses with 3 or more photons (1.4 % at mu = 0.48) are compacted and their
    further photons drawn from the same words (``word_at``), with exact 64-bit comparisons.
    """
    t_class, (s_hi, s_lo), (f_hi, f_lo) = phys_tables
    w = philox.words(pkey, block_pulses, _S_CLASS)
    cls, amb = tables.categorical(w, t_class[0], method)

    def resolve_class(i):
        w_lo = philox.word_at(pkey, _word_position(i, block_pulses), _S_CLASS_LO)
        return tables.categorical_exact(w[i], w_lo, t_class[0], t_class[1])

    cls = compact.fix_ambiguous(cls, amb, resolve_class)
    k_idx = cls // 8
    a, b, x = (cls // 4) % 2, (cls // 2) % 2, cls % 2
    route = jnp.where(a == b, x, 2)  # routing row: 0 / 1 matched by Alice's bit, 2 mismatched
    v_hi = philox.words(pkey, block_pulses, _S_NPH_HI)
    v_lo = philox.words(pkey, block_pulses, _S_NPH_LO)

    def has_photon(j, kk, vh, vl):  # photon j exists: n > j
        return _lt64(vh, vl, _select_rows(kk, s_hi[:, j]), _select_rows(kk, s_lo[:, j]))

    f_hi32 = jnp.minimum(f_hi, 0xFFFFFFFF).astype(jnp.uint32)  # (3, 2)
    t0 = _select_rows(route, f_hi32[:, 0])
    t1 = _select_rows(route, f_hi32[:, 1])
    det0 = jnp.zeros(block_pulses, bool)
    det1 = jnp.zeros(block_pulses, bool)
    n_ph = jnp.zeros(block_pulses, jnp.int32)
    for j in range(min(2, max_photons)):
        has = has_photon(j, k_idx, v_hi, v_lo)
        stream = _S_FATE + 2 * j
        u = philox.words(pkey, block_pulses, stream)
        fate = (u >= t0).astype(jnp.int32) + (u >= t1).astype(jnp.int32)
        amb = has & (fate > 0) & (u == jnp.where(fate == 2, t1, t0))

        def resolve_fate(i, u=u, stream=stream):
            u_lo = philox.word_at(pkey, _word_position(i, block_pulses), stream + 1)
            return tables.categorical_exact(u[i], u_lo, f_hi[route[i]], f_lo[route[i]])

        fate = compact.fix_ambiguous(fate, amb, resolve_fate)
        det0 = det0 | (has & (fate == 0))
        det1 = det1 | (has & (fate == 1))
        n_ph = n_ph + has.astype(jnp.int32)

    if max_photons > 2:
        det0, det1, n_ph = _more_photons(
            pkey, block_pulses, has_photon(2, k_idx, v_hi, v_lo), (k_idx, route, v_hi, v_lo),
            has_photon, (f_hi, f_lo), (det0, det1, n_ph), max_photons,
        )
    # Background of each detector: dark counts or noise photons of classical traffic, independent
    # of each other, of the other detector (unpolarized Poisson noise split in two) and of Alice's
    # photons, so one Bernoulli(p_bg) per detector and gate; p_bg is p_dark without traffic.
    p_bg = link.background_click_probability()
    dark0 = binomial.geometric_positions(pkey, _S_DARK, p_bg, block_pulses)
    dark1 = binomial.geometric_positions(pkey, _S_DARK + 1, p_bg, block_pulses)
    outcome = (det0 | dark0).astype(jnp.int32) + 2 * (det1 | dark1).astype(jnp.int32)
    if photon_bins:
        return (cls * 3 + jnp.minimum(n_ph, 2)) * 4 + outcome
    return cls * 4 + outcome


def _more_photons(pkey, block_pulses, candidates, pulse, has_photon, fate_table, state, max_photons):
    """Photons 2, 3, ... of the pulses that have them, ``buf`` pulses at a time."""
    k_idx, route, v_hi, v_lo = pulse
    f_hi, f_lo = fate_table
    buf = max(64, block_pulses // 16)

    def one_batch(carry):
        cand, det0, det1, n_ph = carry
        idx = compact.first_true(cand, buf, block_pulses)
        valid = idx < block_pulses
        gi = jnp.minimum(idx, block_pulses - 1)
        kk, rr, vh, vl = k_idx[gi], route[gi], v_hi[gi], v_lo[gi]
        pos = _word_position(gi, block_pulses)
        th, tl = f_hi[rr], f_lo[rr]  # (buf, 2)

        def photon(c):
            j, d0, d1, n, _ = c
            has = valid & has_photon(j, kk, vh, vl)
            stream = (_S_FATE + 2 * j).astype(jnp.uint32)
            u_hi = philox.word_at(pkey, pos, stream)
            u_lo = philox.word_at(pkey, pos, stream + 1)
            fate = tables.categorical_exact(u_hi, u_lo, th, tl)
            return (j + 1, d0 | (has & (fate == 0)), d1 | (has & (fate == 1)), n + has.astype(jnp.int32), jnp.any(has))

        zero = jnp.zeros(buf, bool)
        init = (jnp.int32(2), zero, zero, jnp.zeros(buf, jnp.int32), jnp.asarray(True))
        _, d0, d1, n, _ = lax.while_loop(lambda c: c[4] & (c[0] < max_photons), photon, init)
        det0 = det0.at[idx].set(det0[gi] | d0, mode="drop")
        det1 = det1.at[idx].set(det1[gi] | d1, mode="drop")
        n_ph = n_ph.at[idx].add(n, mode="drop")
        cand = cand.at[idx].set(False, mode="drop")
        return cand, det0, det1, n_ph

    _, det0, det1, n_ph = lax.while_loop(lambda c: jnp.any(c[0]), one_batch, (candidates,) + state)
    return det0, det1, n_ph


@functools.partial(
    jax.jit, static_argnames=("path", "chunk", "block_pulses", "photon_counts", "max_photons", "methods")
)
def simulate(key, link, protocol, n_pulses, *, path: str = "fast", chunk: int = 2**20,
             block_pulses: int = 2**20, photon_counts: bool = False, max_photons: int = 32,
             methods: tuple[str, str] | None = None) -> Tally:
    """Tally of ``n_pulses`` independent pulses over ``link`` (see the module docstring).

    Args:
        key: JAX PRNG key (the only source of randomness).
        link, protocol: :class:`qmc.Link` and :class:`qmc.DecoyBB84`.
        n_pulses: emitted pulses (traced int64; below 2**52).
        path: ``"fast"`` or ``"physical"``.
        chunk: pulses per loop step, a whole number of blocks (memory scales with it).
        block_pulses: pulses per key-folding block (a multiple of 4; fixed for reproducibility).
        photon_counts: also tally hidden counts by photon number sent (0, 1, 2+).
        max_photons: physical path, photons per pulse simulated at most (the cut tail
            P(n > 32) is below 1e-16 for mu <= 5, 1e-25 for mu <= 2).
        methods: ``(categorical, histogram)`` kernel methods (:func:`qmc.random.histogram.kernel_methods`);
            ``None`` picks them for the backend and path (:func:`fast_methods` for the fast
            path). They never change the numbers. (The fast path draws by alias lookup and uses
            only the histogram method; there it may also be ``"fused"``: draw and tally in one
            Pallas kernel, :mod:`qmc.engines.fused`, the default on a GPU.)

    Returns:
        :class:`Tally` (int64 counts).
    """
    if path not in PATHS:
        raise ValueError(f"path = {path!r}: must be one of {PATHS}")
    if chunk % block_pulses or chunk <= 0 or block_pulses % 4:
        raise ValueError(f"chunk = {chunk} must be a positive multiple of block_pulses = {block_pulses} (a multiple of 4)")
    if chunk >= 2**31:
        raise ValueError(f"chunk = {chunk}: must be below 2**31 (int32 counts per chunk)")
    if methods is None:
        methods = fast_methods(block_pulses) if path == "fast" else histogram.kernel_methods()
    cat_method, hist_method = methods
    k = jnp.shape(protocol.intensities)[0]
    blocks_per_chunk = chunk // block_pulses
    n_pulses = jnp.asarray(n_pulses, jnp.int64)
    if path == "fast":
        purpose = PURPOSE_FAST
        if photon_counts:
            joint = protocol.class_probabilities()[..., None, None] * photon_outcome_table(link, protocol)
        else:
            joint = protocol.class_probabilities()[..., None] * exact.outcome_table(link, protocol)
        entry, cut = tables.alias_table(joint.ravel())
        n_cells = joint.size

        def chunk_cells(pkeys):
            return _cells_fast(pkeys, block_pulses, entry, cut)

        if hist_method == FUSED:
            from qmc.engines import fused

            fused.counters_per_program(block_pulses)  # a clear error before tracing the kernel

            def chunk_counts(pkeys, n_valid):
                return fused.chunk_counts(pkeys, n_valid, entry, cut, block_pulses, n_cells, _S_CELL, _S_CELL_LO)

    else:
        if hist_method == FUSED:
            raise ValueError(f"methods = {methods!r}: the {FUSED!r} kernel draws the fast path only")
        if link.detector.click_model != "threshold":
            raise ValueError(
                f"the physical path simulates threshold detectors; detector.click_model = "
                f"{link.detector.click_model!r} is a linear model (use path='fast')"
            )
        purpose = PURPOSE_PHYSICAL
        phys_tables = _physical_tables(link, protocol, max_photons)
        n_cells = 8 * k * (12 if photon_counts else 4)

        def chunk_cells(pkeys):
            return jax.vmap(lambda pk: _cell_physical(pk, block_pulses, link, phys_tables, max_photons, photon_counts,
                                                      cat_method))(pkeys)

    base = jax.random.fold_in(key, purpose)
    index = jnp.arange(block_pulses, dtype=jnp.int64)

    def chunk_body(c, total):
        blocks = c * blocks_per_chunk + jnp.arange(blocks_per_chunk, dtype=jnp.int64)
        pkeys = jax.vmap(lambda b: philox.philox_key(base, b.astype(jnp.uint32)))(blocks)
        if hist_method == FUSED:
            n_valid = jnp.clip(n_pulses - blocks * block_pulses, 0, block_pulses)
            return total + chunk_counts(pkeys, n_valid).astype(jnp.int64)
        cells = chunk_cells(pkeys).reshape(blocks_per_chunk, block_pulses)
        valid = index[None, :] < n_pulses - blocks[:, None] * block_pulses
        cells = jnp.where(valid, cells, n_cells)  # pulses past n_pulses go to a dropped bin
        hist = histogram.histogram(cells, n_cells, hist_method)  # int32: < 2**31 per chunk
        return total + hist.astype(jnp.int64)

    n_chunks = (n_pulses + chunk - 1) // chunk
    total = lax.fori_loop(jnp.int64(0), n_chunks, chunk_body, jnp.zeros(n_cells, jnp.int64))
    if photon_counts:
        pc = total.reshape(k, 2, 2, 2, 3, 4)
        return Tally(pc.sum(axis=-2), pc)
    return Tally(total.reshape(k, 2, 2, 2, 4))


def _known_methods(methods, path: str) -> bool:
    if not isinstance(methods, (tuple, list)) or len(methods) != 2:
        return False
    cat, hist = methods
    return cat in tables.CATEGORICAL_METHODS and (
        hist in histogram.HISTOGRAM_METHODS or (hist == FUSED and path == "fast"))


@pytree_dataclass
class PulseEngine(AbstractEngine):
    """Per-pulse Monte Carlo (see the module docstring).

    Args:
        n_pulses: emitted pulses per sweep point.
        chunk: pulses per loop step, a multiple of ``block_pulses``; ``None`` chooses by device
            (the numbers do not depend on it).
        path: ``"fast"`` (exact probabilities, one word per pulse) or ``"physical"``.
        block_pulses: pulses per key-folding block; changing it changes the numbers.
        photon_counts: also tally hidden counts by photon number sent.
        max_photons: physical path, photons per pulse simulated at most (P(n > 32) < 1e-16
            for mu <= 5).
        methods: ``(categorical, histogram)`` kernel methods; ``None`` chooses by device and path
            (:func:`fast_methods`). They change only the speed, never a count.

    Randomness: one key; words are folded by purpose (path) and by block of ``block_pulses``
    pulses, so ``chunk`` never changes the numbers and the same seed and config give the same
    numbers on the same backend (the Philox arithmetic is also the same on every backend).
    """

    n_pulses: int = static(10**8)
    chunk: int | None = static(None)
    path: str = static("fast")
    block_pulses: int = static(2**20)
    photon_counts: bool = static(False)
    max_photons: int = static(32)
    methods: tuple[str, str] | None = static(None)
    name: ClassVar[str] = "pulse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_pulses", as_count(self.n_pulses))
        for name in ("chunk", "block_pulses", "max_photons"):
            object.__setattr__(self, name, as_count(getattr(self, name)))
        if isinstance(self.methods, list):  # a static field must be hashable
            object.__setattr__(self, "methods", tuple(self.methods))

    def checks(self):
        return [
            whole("n_pulses", 0),
            Range("n_pulses", 0.0, 2.0**52, hi_open=True),
            Rule("path", lambda e, xp: xp.asarray(e.path in PATHS), f"must be one of {', '.join(PATHS)}"),
            Rule("block_pulses", lambda e, xp: xp.asarray(e.block_pulses > 0 and e.block_pulses % 4 == 0),
                 "must be a positive multiple of 4"),
            Rule("chunk", lambda e, xp: xp.asarray(
                e.chunk is None or (e.chunk > 0 and e.chunk % e.block_pulses == 0 and e.chunk < 2**31)),
                "must be None or a positive multiple of block_pulses below 2**31"),
            Rule("methods", lambda e, xp: xp.asarray(e.methods is None or _known_methods(e.methods, e.path)),
                 f"must be None or (categorical, histogram) with categorical in {tables.CATEGORICAL_METHODS} and "
                 f"histogram in {histogram.HISTOGRAM_METHODS + (FUSED,)} ({FUSED!r}: the fast path only)"),
        ]

    def resolved_chunk(self) -> int:
        return default_chunk(self.block_pulses) if self.chunk is None else int(self.chunk)

    def tally(self, key, link, protocol) -> Tally:
        """Tally of ``n_pulses`` pulses."""
        return simulate(
            key, link, protocol, jnp.asarray(self.n_pulses, jnp.int64), path=self.path,
            chunk=self.resolved_chunk(), block_pulses=int(self.block_pulses),
            photon_counts=bool(self.photon_counts), max_photons=int(self.max_photons),
            methods=None if self.methods is None else tuple(self.methods),
        )

    def observations(self, key, link, protocol):
        """Observed gains and error gains."""
        return self.tally(key, link, protocol).observations()

