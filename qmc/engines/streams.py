"""Stream engine: pulses that remember, afterpulsing and dead time simulated gate by gate.

A real session is one long sequence of gates in which every click changes what the detectors do
next. The engine simulates ``n_streams`` such sequences side by side: sequential within a stream
(the detector state is carried through ``lax.scan``), independent and vectorized across streams.
Pulse ``i`` of a run is gate ``i // n_streams`` of stream ``i % n_streams`` (gate-major), so a run
of N pulses tallies exactly the first N pulses of any longer run with the same key. The number of
streams is physics, not a performance knob: every stream is a separate detector history whose
start must be burnt in, so it is a config value (``n_streams``), never chosen by the device.

Each gate, in order (see :class:`qmc.detectors.ThresholdDetectors` for the model):

1. The pulse's class and its *memoryless* outcome (which detectors would fire on photons, dark
   counts and the noise of classical traffic, :meth:`qmc.Link.background_click_probability`) are
   drawn from :func:`qmc.engines.exact.memoryless_table` exactly as on the pulse engine's fast
   path (one 32-bit word and one alias lookup, exact fix-up of the rare ambiguous draws with a
   second word).
2. A pending trap of detector j whose release gate has come fires detector j.
3. A detector that is dead (``"common"``: either detector clicked in the last d gates;
   ``"per_detector"``: this one did) does not click: its photon, dark count or afterpulse is lost.
4. Every click restarts the dead time and, with probability p_ap, arms a trap in its detector
   with release delay J ~ Geometric(1 - r), r = exp(-1 / tau), J >= 1, drawn by inversion
   (J = 1 + floor(-tau log u)): a delay, not a per-gate hazard, so a gate needs no further words.
   Afterpulse clicks arm traps too (cascades). Each detector holds at most ``TRAP_SLOTS`` = 2
   pending traps; a further one is dropped (at most (p_ap * p_bar * mean delay)^2 of clicks).

Randomness: Philox4x32 under a key folded from ``key`` and this engine's purpose, counters
(g mod 2**32, lane, g div 2**32, purpose): purpose 0 gives the cell words of streams 4 lane ..
4 lane + 3 at gate g, purpose 1 the trap words of detectors 0 and 1 of streams 2 lane, 2 lane + 1
(drawn only when p_ap > 0), purpose 2 the lower words of the rare ambiguous cells. So every
number depends only on (key, config, s, g), never on ``chunk_gates``.

Start: every stream starts with both detectors live and no trap, then runs ``burn_in_gates``
gates that are not tallied (burn-in, not an exact stationary start: the stationary law of dead
time plus traps has no simple closed form). The bias left is of order d p_bar exp(-B / T), T
the mixing time (about the mean gap between clicks plus d).

Memory is set by ``chunk_gates * n_streams`` (the memoryless cells of a chunk are drawn at once,
then scanned), never by ``n_pulses``; ``chunk_gates=None`` picks about 2**20 pulses per chunk on
a CPU and 2**24 on an accelerator (the numbers do not depend on it).

Rates from this engine are model rates when the detectors have memory (``has_memory()``): the
security proofs behind the analyses assume neither afterpulsing nor dead time.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from qmc._pytree import pytree_dataclass, static
from qmc.engines.base import AbstractEngine
from qmc.detectors import DEAD_TIME_MODES
from qmc.engines import exact
from qmc.random import compact, histogram, philox, tables
from qmc.engines.pulse import default_chunk
from qmc.engines.tally import Tally
from qmc.validation import Range, Rule

__all__ = ["StreamEngine", "simulate_streams", "sample_cells", "default_chunk_gates", "TRAP_SLOTS", "PURPOSE_STREAMS"]

PURPOSE_STREAMS = 0x57EA
TRAP_SLOTS = 2
_MAX_DELAY = 2**30
_P_CELL, _P_ARM, _P_CELL_LO = 0, 1, 2  # Philox counter word 3: what the words are for  # release delays are capped here (a trap older than 1e9 gates never matters)


def default_chunk_gates(n_streams: int) -> int:
    """Gates per chunk for the default backend: about 2**20 pulses on a CPU, 2**24 on a GPU."""
    return max(1, default_chunk(2**20) // int(n_streams))


def _philox(pkey, g, lane, purpose, rolled=False):
    """Four Philox words of counter (g mod 2**32, lane, g div 2**32, purpose), broadcast."""
    lo = (g & 0xFFFFFFFF).astype(jnp.uint32)
    hi = (g >> 32).astype(jnp.uint32)
    return philox.philox4x32(pkey[0], pkey[1], lo, lane, hi, purpose, rolled=rolled)


def _cell_words(pkey, g, n_streams: int):
    """Cell words (G, S): one Philox call gives the words of streams 4q .. 4q + 3 at gate g."""
    q = jnp.arange(n_streams // 4, dtype=jnp.uint32)[None, :]
    w = _philox(pkey, g[:, None], q, _P_CELL)  # 4 x (G, S / 4)
    return jnp.stack(w, axis=-1).reshape(g.shape[0], n_streams)


def _arm_words(pkey, g, n_streams: int):
    """Trap words of detectors 0 and 1, each (G, S): one Philox call serves streams 2q, 2q + 1."""
    q = jnp.arange(n_streams // 2, dtype=jnp.uint32)[None, :]
    a0, b0, a1, b1 = _philox(pkey, g[:, None], q, _P_ARM)  # (G, S / 2) each
    shape = (g.shape[0], n_streams)
    return jnp.stack([a0, a1], axis=-1).reshape(shape), jnp.stack([b0, b1], axis=-1).reshape(shape)


def _cells(pkey, g, w0, entry, cut):
    """Memoryless cells (G, S) from the cell words by alias lookup (as on the pulse engine's fast
    path); the rare ambiguous draws get their lower word (counter purpose ``_P_CELL_LO``) and an
    exact comparison."""
    shape = w0.shape
    w0 = w0.ravel()
    cell, amb = tables.alias_draw(w0, entry)

    def resolve(i):
        gi, si = jnp.divmod(i, shape[1])
        w_lo = _philox(pkey, g[gi], (si // 4).astype(jnp.uint32), _P_CELL_LO, rolled=True)
        w_lo = jnp.select([si % 4 == 0, si % 4 == 1, si % 4 == 2], list(w_lo[:3]), w_lo[3])
        return tables.alias_exact(w0[i], w_lo, entry, cut)

    return compact.fix_ambiguous(cell, amb, resolve).reshape(shape)


def _arm(w, t_arm, tau):
    """Trap delays (int32, 0 = no trap) that a click would arm, from one word each: armed iff
    w < t_arm (P = p_ap to 2**-32), delay J = 1 + floor(-tau log u), u = (w + 1/2) / t_arm uniform
    given armed (float32: J's law is resolved to about 2**-24)."""
    armed = w.astype(jnp.int64) < t_arm
    u = (w.astype(jnp.float32) + 0.5) / jnp.maximum(t_arm, 1).astype(jnp.float32)
    u = jnp.clip(u, 1e-30, 1.0)
    delay = 1.0 + jnp.floor(-tau * jnp.log(u))
    delay = jnp.minimum(delay, float(_MAX_DELAY)).astype(jnp.int32)
    return jnp.where(armed, jnp.maximum(delay, 1), 0)


def _step(d, mode: str):
    """One gate for all streams: state -> (state, cell), state = (dead times, traps).

    ``dead`` is one countdown per stream (``"common"``) or one per detector; ``traps`` holds the
    gates left until release of each detector's ``TRAP_SLOTS`` slots (0: empty), each (S,) int32
    (separate arrays: stacking them costs copies inside the loop). ``x`` holds the gate's
    memoryless cells and the trap delays that a click of detector 0 or 1 would arm (0: none),
    drawn beforehand for every gate (vectorized, outside the scan).
    """

    def tick(t):
        return jnp.maximum(t - 1, 0)

    def insert(new, slots):
        a, b = slots  # into the first free slot; with both taken the new trap is dropped
        return jnp.where(a == 0, new, a), jnp.where((a != 0) & (b == 0), new, b)

    def step(state, x):
        dead, (t0a, t0b, t1a, t1b) = state
        cell, arm0, arm1 = x
        outcome = cell & 3
        fire0 = ((outcome & 1) != 0) | (t0a == 1) | (t0b == 1)  # photon, dark count or release
        fire1 = ((outcome & 2) != 0) | (t1a == 1) | (t1b == 1)
        if mode == "common":
            (dc,) = dead
            live = dc == 0
            click0, click1 = fire0 & live, fire1 & live
            dead = (jnp.where(click0 | click1, d, tick(dc)),)
        else:
            d0, d1 = dead
            click0, click1 = fire0 & (d0 == 0), fire1 & (d1 == 0)
            dead = (jnp.where(click0, d, tick(d0)), jnp.where(click1, d, tick(d1)))
        slots0 = insert(jnp.where(click0, arm0, 0), (tick(t0a), tick(t0b)))
        slots1 = insert(jnp.where(click1, arm1, 0), (tick(t1a), tick(t1b)))
        out = (cell - outcome) + click0.astype(jnp.int32) + 2 * click1.astype(jnp.int32)
        return (dead, slots0 + slots1), out

    return step


def _machine(key, link, protocol, n_streams: int, unroll: int = 1):
    """The stream simulation of one link: ``(state0, run, joint_shape)``, ``run(state, g)`` taking
    the gates ``g`` (int64 (G,), consecutive) of every stream to ``(state, cells (G, S))``."""
    det = link.detector
    if det.dead_time_mode not in DEAD_TIME_MODES:
        raise ValueError(f"detector.dead_time_mode = {det.dead_time_mode!r}: must be one of {DEAD_TIME_MODES}")
    if n_streams <= 0 or n_streams % 4:
        raise ValueError(f"n_streams = {n_streams}: must be a positive multiple of 4")
    joint = protocol.class_probabilities()[..., None] * exact.memoryless_table(link, protocol)
    entry, cut = tables.alias_table(joint.ravel())
    d = jnp.round(jnp.asarray(det.dead_time_gates)).astype(jnp.int32)
    t_arm = jnp.floor(jnp.asarray(det.p_afterpulse, jnp.float64) * 2.0**32).astype(jnp.int64)
    tau = jnp.asarray(det.afterpulse_decay_gates).astype(jnp.float32)
    step = _step(d, det.dead_time_mode)
    pkey = philox.philox_key(key, PURPOSE_STREAMS)

    def run(state, g):
        cells = _cells(pkey, g, _cell_words(pkey, g, n_streams), entry, cut)  # (G, S)

        def draw_arms(_):
            w2, w3 = _arm_words(pkey, g, n_streams)
            return _arm(w2, t_arm, tau), _arm(w3, t_arm, tau)

        no_arms = jnp.zeros(cells.shape, jnp.int32)
        arms = lax.cond(t_arm > 0, draw_arms, lambda _: (no_arms, no_arms), None)  # none if p_ap = 0
        return lax.scan(step, state, (cells,) + arms, unroll=unroll)

    zero = jnp.zeros(n_streams, jnp.int32)
    n_dead = 1 if det.dead_time_mode == "common" else 2
    return ((zero,) * n_dead, (zero,) * (2 * TRAP_SLOTS)), run, joint.shape


@functools.partial(jax.jit, static_argnames=("n_streams", "chunk_gates", "burn_in_gates", "methods", "unroll"))
def simulate_streams(key, link, protocol, n_pulses, *, n_streams: int, chunk_gates: int,
                     burn_in_gates: int = 1024, methods: tuple[str, str] | None = None,
                     unroll: int | None = None) -> Tally:
    """Tally of ``n_pulses`` pulses simulated as ``n_streams`` streams with detector memory.

    Args:
        key: JAX PRNG key.
        link, protocol: :class:`qmc.Link` (its detector's afterpulsing and dead time are
            simulated) and :class:`qmc.DecoyBB84`.
        n_pulses: pulses tallied (traced int64); pulse i is gate i // n_streams of stream
            i % n_streams, after the burn-in.
        n_streams: independent streams (static, a multiple of 4; physics at the stream starts).
        chunk_gates: gates per loop step (static; memory; the numbers do not depend on it).
        burn_in_gates: untallied gates at the start of every stream.
        methods: ``(categorical, histogram)`` kernel methods (:func:`qmc.random.histogram.kernel_methods`);
            ``None`` picks them for the backend. They never change the numbers (the cells are
            drawn by alias lookup: only the histogram method is used).
        unroll: gates per iteration of the compiled gate loop (``lax.scan``'s unroll; speed only);
            ``None``: 1 on a CPU, 4 on an accelerator (fewer loop steps, each a kernel launch).

    Returns:
        :class:`Tally` (int64 counts), axes as the exact engine's outcome table.
    """
    if chunk_gates <= 0 or burn_in_gates < 0:
        raise ValueError("chunk_gates must be positive and burn_in_gates non-negative")
    if chunk_gates * n_streams >= 2**31:
        raise ValueError(f"chunk_gates * n_streams = {chunk_gates * n_streams}: must be below 2**31")
    hist_method = (histogram.kernel_methods() if methods is None else methods)[1]
    if unroll is None:
        unroll = 1 if jax.default_backend() == "cpu" else 4
    state0, run, shape = _machine(key, link, protocol, n_streams, unroll)
    n_cells = int(np.prod(shape))
    s64 = jnp.arange(n_streams, dtype=jnp.int64)
    n_pulses = jnp.asarray(n_pulses, jnp.int64)
    n_gates = burn_in_gates + (n_pulses + n_streams - 1) // n_streams

    def chunk_body(c, carry):
        state, total = carry
        g = c * chunk_gates + jnp.arange(chunk_gates, dtype=jnp.int64)  # (G,)
        state, out = run(state, g)  # (G, S)
        pulse = (g[:, None] - burn_in_gates) * n_streams + s64[None, :]
        valid = (g[:, None] >= burn_in_gates) & (pulse < n_pulses)
        out = jnp.where(valid, out, n_cells)
        hist = histogram.histogram(out, n_cells, hist_method)
        return state, total + hist.astype(jnp.int64)

    n_chunks = (n_gates + chunk_gates - 1) // chunk_gates
    _, total = lax.fori_loop(jnp.int64(0), n_chunks, chunk_body, (state0, jnp.zeros(n_cells, jnp.int64)))
    return Tally(total.reshape(shape))


@functools.partial(jax.jit, static_argnames=("n_gates", "n_streams", "burn_in_gates"))
def sample_cells(key, link, protocol, *, n_gates: int, n_streams: int, burn_in_gates: int = 1024):
    """The gate-by-gate record that :func:`simulate_streams` tallies (same numbers): int32 cells
    (n_gates, n_streams), cell = class * 4 + outcome (class = ((k * 2 + a) * 2 + b) * 2 + x),
    gates after the burn-in. For tests and for statistics a tally cannot hold (click sequences)."""
    state, run, _ = _machine(key, link, protocol, n_streams)
    if burn_in_gates:
        state, _ = run(state, jnp.arange(burn_in_gates, dtype=jnp.int64))
    return run(state, burn_in_gates + jnp.arange(n_gates, dtype=jnp.int64))[1]


@pytree_dataclass
class StreamEngine(AbstractEngine):
    """Per-pulse Monte Carlo with detector memory (see the module docstring).

    Args:
        n_pulses: pulses tallied per sweep point.
        n_streams: independent detector histories simulated side by side (physics: each starts
            with a burn-in; not chosen by the device).
        burn_in_gates: untallied gates at the start of each stream.
        chunk_gates: gates per loop step; ``None`` chooses by device (the numbers do not depend
            on it).
    """

    n_pulses: int = static(10**8)
    n_streams: int = static(2**12)
    burn_in_gates: int = static(1024)
    chunk_gates: int | None = static(None)
    name: ClassVar[str] = "streams"

    def checks(self):
        return [
            Range("n_pulses", 0.0, 2.0**52, hi_open=True),
            Rule("n_streams", lambda e, xp: xp.asarray(0 < e.n_streams < 2**31 and e.n_streams % 4 == 0),
                 "must be a positive multiple of 4 below 2**31"),
            Rule("burn_in_gates", lambda e, xp: xp.asarray(e.burn_in_gates >= 0), "must be >= 0"),
            Rule("chunk_gates", lambda e, xp: xp.asarray(
                e.chunk_gates is None or (e.chunk_gates > 0 and e.chunk_gates * e.n_streams < 2**31)),
                "must be None or positive with chunk_gates * n_streams below 2**31"),
        ]

    def resolved_chunk_gates(self) -> int:
        return default_chunk_gates(self.n_streams) if self.chunk_gates is None else int(self.chunk_gates)

    def tally(self, key, link, protocol) -> Tally:
        """Tally of ``n_pulses`` pulses."""
        return simulate_streams(
            key, link, protocol, jnp.asarray(self.n_pulses, jnp.int64), n_streams=int(self.n_streams),
            chunk_gates=self.resolved_chunk_gates(), burn_in_gates=int(self.burn_in_gates),
        )

    def observations(self, key, link, protocol):
        """Observed gains and error gains (model rates if the detectors have memory)."""
        return self.tally(key, link, protocol).observations()

