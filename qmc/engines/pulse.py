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

from qmc._devices import AXIS, devices_check, resolve, split_map
from qmc._pytree import as_count, pytree_dataclass, static
from qmc.engines.base import AbstractEngine
from qmc.engines import exact
from qmc.random import compact, histogram, philox, tables
from qmc.engines.exact import photon_outcome_table
from qmc.engines.cells import CellTally
from qmc.engines.tally import Tally
from qmc.engines.physical import background_levels, cell_physical, physical_tables, word_position
from qmc.link import at_noise_level, varies_in_time
from qmc.channels.raman import traffic_profile
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
# (the physical path's streams: qmc.engines.physical)


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


def _cells_fast(pkeys, block_pulses: int, entry, cut, level=None):
    """Cells of the blocks of one chunk (flat, block-major) on the fast path: one word and one
    alias lookup per pulse, rare exact fix-ups with a second word. With ``level`` (one per pulse)
    ``entry`` and ``cut`` hold one table per level of the traffic's profile.

    The fix-up loop runs once over the whole chunk (not once per block under ``vmap``, where
    every step of any block's loop would be a select over all the blocks' cells)."""
    w = jax.vmap(lambda pk: philox.words(pk, block_pulses, _S_CELL))(pkeys).ravel()
    cell, amb = tables.alias_draw(w, entry, level)

    def resolve(i):
        b, j = jnp.divmod(i, block_pulses)
        w_lo = philox.word_at(pkeys[b], word_position(j, block_pulses), _S_CELL_LO)
        if level is None:
            return tables.alias_exact(w[i], w_lo, entry, cut)
        return tables.alias_exact(w[i], w_lo, entry[level[i]], cut[level[i]])

    return compact.fix_ambiguous(cell, amb, resolve)


@functools.partial(
    jax.jit, static_argnames=("path", "chunk", "block_pulses", "photon_counts", "max_photons", "methods", "devices")
)
def simulate(key, link, protocol, n_pulses, *, path: str = "fast", chunk: int = 2**20,
             block_pulses: int = 2**20, photon_counts: bool = False, max_photons: int = 32,
             methods: tuple[str, str] | None = None, start_pulse=0, devices: tuple | None = None) -> Tally:
    """Tally of ``n_pulses`` pulses over ``link`` (see the module docstring).

    Pulses are independent; with classical traffic whose power varies in time
    (:mod:`qmc.channels.traffic`) pulse i is drawn from the tables of the level its emission time
    (start_pulse + i) / ``source.rep_rate_hz`` falls in, so the pulses of one burst share its
    noise (one table per level: the alias tables on the fast path, the background probability
    by thinning on the physical one).

    Args:
        key: JAX PRNG key (the only source of randomness).
        link, protocol: :class:`qmc.Link` and :class:`qmc.DecoyBB84`.
        n_pulses: emitted pulses (traced int64; below 2**52).
        start_pulse: index of the first pulse on the traffic profile's time axis (traced int64;
            e.g. ``b n_pulses`` for the b-th of consecutive sessions). Only the profile reads it.
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
        devices: the local devices the chunks are split over (:func:`qmc._devices.resolve`;
            ``None``: one device): device d of D runs chunks d, d + D, d + 2 D, ... and the int64
            tallies are summed (``lax.psum``), so the counts are the one device's bit for bit.

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
    k = jnp.shape(protocol.intensities)[0]  # 1 for a protocol that owns its layout (not used then)
    blocks_per_chunk = chunk // block_pulses
    n_pulses = jnp.asarray(n_pulses, jnp.int64)
    start_pulse = jnp.asarray(start_pulse, jnp.int64)
    timed = varies_in_time(link)
    if timed:
        profile, rep_rate_hz = traffic_profile(link.classical), link.source.rep_rate_hz
        factors = profile.factors()
        if hist_method == FUSED:  # the Pallas kernel draws from one table
            hist_method = histogram.kernel_methods()[1]
    layout = exact.owns_layout(protocol)
    if layout and (path != "fast" or photon_counts or timed):
        raise ValueError(f"protocol {type(protocol).__name__} owns its outcome layout: the fast path draws it "
                         f"(path='fast', no photon_counts, constant traffic)")
    if path == "fast":
        purpose = PURPOSE_FAST

        def joint_of(link):
            if layout:
                return exact.joint_probabilities(link, protocol)
            if photon_counts:
                return protocol.class_probabilities()[..., None, None] * photon_outcome_table(link, protocol)
            return protocol.class_probabilities()[..., None] * exact.outcome_table(link, protocol)

        if timed:
            joints = jax.vmap(lambda f: joint_of(at_noise_level(link, f)).ravel())(factors)
            entry, cut = jax.vmap(tables.alias_table)(joints)
            n_cells = joints.shape[-1]
        else:
            joint = joint_of(link)
            entry, cut = tables.alias_table(joint.ravel())
            n_cells = joint.size

        def chunk_cells(pkeys, level=None):
            return _cells_fast(pkeys, block_pulses, entry, cut, None if level is None else level.ravel())

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
        phys_tables = physical_tables(link, protocol, max_photons)
        n_cells = 8 * k * (12 if photon_counts else 4)
        thinning = background_levels(link, factors) if timed else None

        def chunk_cells(pkeys, level=None):
            if level is None:
                return jax.vmap(lambda pk: cell_physical(pk, block_pulses, link, phys_tables, max_photons,
                                                          photon_counts, cat_method))(pkeys)
            return jax.vmap(lambda pk, lv: cell_physical(pk, block_pulses, link, phys_tables, max_photons,
                                                          photon_counts, cat_method, thinning + (lv,)))(pkeys, level)

    base = jax.random.fold_in(key, purpose)
    index = jnp.arange(block_pulses, dtype=jnp.int64)
    index_f = jnp.arange(block_pulses, dtype=jnp.float64)  # a profile's pulse times: float64 vectorizes

    def chunk_body(c, total):
        blocks = c * blocks_per_chunk + jnp.arange(blocks_per_chunk, dtype=jnp.int64)
        pkeys = jax.vmap(lambda b: philox.philox_key(base, b.astype(jnp.uint32)))(blocks)
        if hist_method == FUSED:
            n_valid = jnp.clip(n_pulses - blocks * block_pulses, 0, block_pulses)
            return total + chunk_counts(pkeys, n_valid).astype(jnp.int64)
        if timed:
            pulse = (start_pulse + blocks * block_pulses).astype(jnp.float64)[:, None] + index_f[None, :]
            cells = chunk_cells(pkeys, profile.level_of(pulse, rep_rate_hz))
        else:
            cells = chunk_cells(pkeys)
        cells = cells.reshape(blocks_per_chunk, block_pulses)
        valid = index[None, :] < n_pulses - blocks[:, None] * block_pulses
        cells = jnp.where(valid, cells, n_cells)  # pulses past n_pulses go to a dropped bin
        hist = histogram.histogram(cells, n_cells, hist_method)  # int32: < 2**31 per chunk
        return total + hist.astype(jnp.int64)

    n_chunks = (n_pulses + chunk - 1) // chunk
    if devices is None:
        total = lax.fori_loop(jnp.int64(0), n_chunks, chunk_body, jnp.zeros(n_cells, jnp.int64))
    else:
        n_dev = len(devices)

        def on_device(n_chunks):
            d = lax.axis_index(AXIS).astype(jnp.int64)
            mine = (n_chunks - d + n_dev - 1) // n_dev  # chunks d, d + D, ... below n_chunks
            part = lax.fori_loop(jnp.int64(0), mine, lambda i, t: chunk_body(i * n_dev + d, t),
                                 jnp.zeros(n_cells, jnp.int64))
            return lax.psum(part, AXIS)

        total = split_map(on_device, devices, 0, out_split=False)(n_chunks)
    if layout:
        return CellTally.of(total, protocol)
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
        devices: local devices the chunks are split over: ``None`` for all of them, or a count
            (the first ones). They change only the speed, never a count.

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
    devices: int | None = static(None)
    name: ClassVar[str] = "pulse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_pulses", as_count(self.n_pulses))
        for name in ("chunk", "block_pulses", "max_photons", "devices"):
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
            devices_check("devices"),
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
            devices=resolve(self.devices, "engine.devices"),
        )

    def observations(self, key, link, protocol):
        """Observed gains and error gains."""
        return self.tally(key, link, protocol).observations()

