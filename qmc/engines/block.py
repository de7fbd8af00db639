"""Block engine: a whole QKD session's counts as multinomial draws of the exact probabilities.

For independent, identically distributed pulses the counts of a session of N pulses are
multinomial in the exact engine's probabilities, so a session costs a few dozen binomial draws
whatever N is (exact in distribution for N up to 2**53; counts are float64 while drawn and int64
in the tally, never float32). Many sessions are drawn at once, as a vector. It shows the
session-to-session fluctuation that a finite-key analysis must cover, millions of sessions at a
time.

Two modes:

* full (``fast=False``): every cell of the outcome table, a :class:`~qmc.engines.tally.Tally`:
  a multinomial over the 32k cells (class (k, a, b, x) x outcome): 32k - 1 binomials per session
  (95 for three intensities).
* fast (``fast=True``): only what the analyses read, a
  :class:`~qmc.engines.tally.SiftedTally`: the 8k cells (matched class (k, b) x (no click,
  correct, error, double click)), bits merged (they are uniform, so the merged cells are again
  multinomial), plus one cell for the mismatched bases: 8k binomials per session (24 for three
  intensities).

Randomness: one Philox key folded from ``key`` and this engine's purpose; session ``s`` is told
apart by its index in the counters, so session ``s`` has the same counts whatever ``n_sessions``.

Sessions that run until the key basis holds n_X detections (the rule of Lim et al. 2014, Sec. II)
have a random number of pulses: :func:`sample_until_full` draws them exactly (negative binomial
pulses, multinomial cells), from any closed-form engine's ``sifted_probabilities``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import jax.random as jr

from qmc._devices import devices_check, padded_size, resolve, split_map
from qmc._pytree import as_count, pytree_dataclass, static
from qmc.engines.base import AbstractEngine
from qmc.engines import exact
from qmc.random import binomial, philox
from qmc.random.poisson import negative_binomial
from qmc.engines.exact import photon_outcome_table, sifted_probabilities
from qmc.engines.cells import CellTally
from qmc.engines.tally import SiftedTally, Tally
from qmc.validation import Range, Rule, whole

__all__ = ["BlockEngine", "sample_sessions", "sample_until_full"]

PURPOSE_SESSIONS = 0xB10C


def _session_counts(pkey, n, cells, n_sessions: int, tries_per_round: int, devices: tuple | None):
    """(n_sessions, cells) multinomial counts, session s drawn from lane s: on one device, or the
    sessions split over ``devices`` (padded to a multiple of their count; a lane's counts do not
    depend on the other lanes, so the split changes no count)."""
    def draw(lane, pkey, n, cells):
        return binomial.multinomial(pkey, 0, n[None], cells[None, :], lane, 0, tries_per_round)

    if devices is None or n_sessions < 2:
        return draw(jnp.arange(n_sessions, dtype=jnp.uint32), pkey, n, cells)
    lane = jnp.arange(padded_size(n_sessions, len(devices)), dtype=jnp.uint32)
    counts = split_map(draw, devices, 1)(lane, pkey, n, cells)
    return counts if counts.shape[0] == n_sessions else counts[:n_sessions]


@functools.partial(jax.jit, static_argnames=("n_sessions", "fast", "photon_counts", "tries_per_round", "devices"))
def sample_sessions(key, link, protocol, n_pulses, n_sessions: int, fast: bool = True, photon_counts: bool = False,
                    tries_per_round: int | None = None, devices: tuple | None = None):
    """Tallies of ``n_sessions`` independent sessions of ``n_pulses`` pulses each.

    Args:
        key: JAX PRNG key.
        link, protocol: the link and the pulse classes (:class:`qmc.DecoyBB84`).
        n_pulses: pulses per session (traced: a new length does not recompile), below 2**53.
        n_sessions: number of sessions (static).
        fast: draw a :class:`SiftedTally` (matched bases only) instead of a full :class:`Tally`.
        photon_counts: also draw the hidden photon-number split (0, 1, 2+) of every cell.
        tries_per_round: BTRS proposals per element before the rejected ones are compacted
            (speed only: every count is the first accepted proposal in counter order whatever
            it is); ``None``: 2.
        devices: the local devices the sessions are split over (:func:`qmc._devices.resolve`);
            ``None``: one device. The counts are the same either way, bit for bit.

    Returns:
        A tally with leading axis (n_sessions,).
    """
    pkey = philox.philox_key(key, PURPOSE_SESSIONS)
    n = jnp.asarray(n_pulses, jnp.float64)
    if tries_per_round is None:  # speed only (docs/benchmarks/)
        tries_per_round = 2
    if exact.owns_layout(protocol):  # the protocol's cells, one multinomial (fast and full alike)
        if photon_counts:
            raise ValueError(f"protocol {type(protocol).__name__} owns its outcome layout: no photon counts")
        cells = exact.joint_probabilities(link, protocol)
        counts = _session_counts(pkey, n, cells, n_sessions, tries_per_round, devices)
        return CellTally.of(counts[:, : cells.size].astype(jnp.int64), protocol)
    if fast:
        p_class, p_out = sifted_probabilities(link, protocol, photon_counts)  # (k, 2), (k, 2, [3,] 4)
        cells = (p_class.reshape(p_class.shape + (1,) * (p_out.ndim - 2)) * p_out).ravel()
        cells = jnp.concatenate([cells, jnp.maximum(1.0 - cells.sum(), 0.0)[None]])  # + mismatched
        shape = p_out.shape
    else:
        table = photon_outcome_table(link, protocol) if photon_counts else exact.outcome_table(link, protocol)
        p_class = protocol.class_probabilities()  # (k, 2, 2, 2)
        cells = (p_class.reshape(p_class.shape + (1,) * (table.ndim - 4)) * table).ravel()
        shape = table.shape
    # One multinomial over all the cells of a session: a chain of conditional binomials, each
    # vectorized over the sessions (whose counts share a regime, so no work is wasted on a
    # sampler branch that only some elements need), and a single compiled binomial sampler.
    counts = _session_counts(pkey, n, cells, n_sessions, tries_per_round, devices)  # (S, cells)
    out = counts[:, : math.prod(shape)].reshape((n_sessions,) + shape).astype(jnp.int64)
    if fast:
        n_all = jnp.full(n_sessions, n, jnp.float64).astype(jnp.int64)
        if photon_counts:
            return SiftedTally(out.sum(axis=-2), n_all, out)
        return SiftedTally(out, n_all)
    if photon_counts:
        return Tally(out.sum(axis=-2), out)
    return Tally(out)


@pytree_dataclass
class BlockEngine(AbstractEngine):
    """Multinomial sessions of i.i.d. pulses (see the module docstring).

    Args:
        n_pulses: emitted pulses per session (below 2**53).
        n_sessions: sessions drawn at once; ``None`` for one session without a leading axis.
        fast: draw only the matched-basis counts the analyses read (a SiftedTally).
        photon_counts: also draw hidden counts by photon number sent (0, 1, 2+).
        devices: local devices the sessions are split over: ``None`` for all of them, or a count
            (the first ones). The counts do not depend on it.
    """

    n_pulses: int = static(10**9)
    n_sessions: int | None = static(None)
    fast: bool = static(True)
    photon_counts: bool = static(False)
    devices: int | None = static(None)
    name: ClassVar[str] = "block"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_pulses", as_count(self.n_pulses))
        object.__setattr__(self, "n_sessions", as_count(self.n_sessions))
        object.__setattr__(self, "devices", as_count(self.devices))

    def checks(self):
        return [
            whole("n_pulses", 0),
            Range("n_pulses", 0.0, 2.0**53, hi_open=True),
            Rule("n_sessions", lambda e, xp: xp.asarray(e.n_sessions is None or e.n_sessions >= 1),
                 "must be None or a positive number of sessions"),
            devices_check("devices"),
        ]

    def tally(self, key, link, protocol):
        """Tally (or SiftedTally if ``fast``) of ``n_sessions`` sessions (leading axis)."""
        n_sessions = 1 if self.n_sessions is None else int(self.n_sessions)
        out = sample_sessions(
            key, link, protocol, jnp.asarray(self.n_pulses, jnp.float64), n_sessions,
            bool(self.fast), bool(self.photon_counts), devices=resolve(self.devices, "engine.devices"),
        )
        if self.n_sessions is None:
            if isinstance(out, CellTally):  # only the counts have the session axis
                return dataclasses.replace(out, counts=out.counts[0])
            out = jax.tree_util.tree_map(lambda x: x[0], out)
        return out

    def observations(self, key, link, protocol):
        """Observed gains and error gains of the session(s)."""
        return self.tally(key, link, protocol).observations()


@functools.partial(jax.jit, static_argnames=("n_sessions",))
def sample_until_full(key, p_class, p_outcome, block_size, n_sessions: int) -> SiftedTally:
    """Sessions that run until the key basis holds ``block_size`` detections (Lim's rule).

    Args:
        key: JAX PRNG key.
        p_class, p_outcome: a closed-form engine's ``sifted_probabilities`` (shapes (k, 2) and (k, 2, 4)).
        block_size: n_X (a whole number below 2**53; traced, so a new value does not recompile).
        n_sessions: number of independent sessions (static).

    Returns:
        A :class:`SiftedTally` with leading axis (n_sessions,): counts int64 (S, k, 2, 4) (key
        basis Z, test basis X; no click, correct, error, double click) and n_pulses int64 (S,).
        Every session has exactly n_X key-basis detections; N - n_X ~ NB(n_X, p).
    """
    k = p_class.shape[0]
    n_x = jnp.asarray(block_size, jnp.float64)
    key_cells = p_class[:, 0, None] * p_outcome[:, 0, 1:]  # (k, 3) key-basis detections per pulse
    mismatched = jnp.maximum(1.0 - jnp.sum(p_class), 0.0)  # 2 p_z (1 - p_z)
    other = jnp.concatenate([
        p_class[:, 0] * p_outcome[:, 0, 0],  # (k,) key basis, no click
        (p_class[:, 1, None] * p_outcome[:, 1, :]).ravel(),  # (4k,) test basis, every outcome
        mismatched[None],
    ])
    p_key = jnp.sum(key_cells)
    key_f, key_split, key_rest = jr.split(key, 3)
    failures = negative_binomial(key_f, n_x, p_key, (n_sessions,))  # (S,)
    # Probabilities broadcast to (S, cells) and no `shape=`: its meaning (with or without the cell
    # axis) differs between jax's docstring and its behaviour.
    split = jr.multinomial(key_split, jnp.full((n_sessions,), n_x),
                           jnp.broadcast_to(key_cells.ravel() / p_key, (n_sessions, 3 * k)), dtype=jnp.float64)
    rest = jr.multinomial(key_rest, failures, jnp.broadcast_to(other / jnp.sum(other), (n_sessions, 5 * k + 1)),
                          dtype=jnp.float64)
    z = jnp.concatenate([rest[:, :k, None], split.reshape(n_sessions, k, 3)], axis=-1)  # (S, k, 4)
    x = rest[:, k:5 * k].reshape(n_sessions, k, 4)
    counts = jnp.stack([z, x], axis=2).astype(jnp.int64)  # (S, k, 2, 4)
    return SiftedTally(counts, (n_x + failures).astype(jnp.int64))
