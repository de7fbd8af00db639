"""A fading pass in the pulse and block engines, beside the fixed-loss link and numpy.

A pass of 16 slots (mean losses 30 to 36 dB, Gamma-Gamma fading at Rytov variance 1, the
detectors of the engine benchmark's link, 1e8 pulses/s): the pulse engine draws each slot's
fading, builds its tables and draws its pulses (:func:`qmc.engines.slots.pass_tally_pulse`),
against one fixed-loss link simulated for the same number of pulses in one call; the block
engine's passes per second (:func:`qmc.engines.slots.pass_tallies_block`) with fading and
without; numpy draws the same model (per slot: X, then the slot's cells by inverting its
cumulative table; the tables themselves come from qmc's exact engine, outside the timing).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from qmc.bench.timing import median_time
from qmc.engines import exact
from qmc.engines.pulse import simulate
from qmc.engines.slots import frozen_slots, pass_tallies_block, pass_tally_pulse
from qmc.freespace.channel import FreeSpaceChannel
from qmc.freespace.fading import Fading
from qmc.freespace.pass_link import pass_link
from qmc.link import Link

__all__ = ["run_passes", "passes_rows", "numpy_pass"]

N_SLOTS = 16


def _pass(link, fading, slot_pulses):
    loss = jnp.linspace(30.0, 36.0, N_SLOTS)
    return pass_link(link.source, link.detector, loss, jnp.full(N_SLOTS, slot_pulses / link.source.rep_rate_hz),
                     fading)


def numpy_pass(rng, key, pass_link_, protocol):
    """The pass in numpy: per slot the cells of its N_s pulses by inverting the cumulative joint
    table of its frozen link (the same draws of X as qmc's, from ``key``)."""
    frozen, _ = frozen_slots(key, pass_link_)
    joint = np.asarray(jax.vmap(lambda link: (protocol.class_probabilities()[..., None]
                                              * exact.outcome_table(link, protocol)).ravel())(frozen))
    cdf = np.cumsum(joint, axis=1)
    total = np.zeros(joint.shape[1], np.int64)
    for s, n in enumerate(np.asarray(pass_link_.slot_pulses, np.int64)):
        cell = np.searchsorted(cdf[s], rng.random(n) * cdf[s][-1], side="right")
        total += np.bincount(np.minimum(cell, joint.shape[1] - 1), minlength=joint.shape[1])
    return total


def run_passes(key, link, protocol, quick: bool, reps: int, methods, chunk: int) -> dict:
    """Pulses per second of a fading pass and of the fixed-loss link; block-engine passes per
    second with and without fading; numpy's pulses per second."""
    on_cpu = jax.default_backend() == "cpu"
    slot_pulses = (2**20 if quick else 2**22) if on_cpu else 2**27
    n_np = 2**16 if quick else 2**18
    n_passes = (256 if quick else 1024) if on_cpu else 4096
    source = link.source
    fixed_link = Link(source, FreeSpaceChannel(33.0), link.detector)
    faded = _pass(link, Fading("gamma_gamma", rytov_variance=1.0), slot_pulses)
    steady = _pass(link, Fading(), slot_pulses)
    total = N_SLOTS * slot_pulses
    opts = {"chunk": chunk, "methods": methods}
    out: dict = {"pass_slots": N_SLOTS, "pass_slot_pulses": slot_pulses, "pass_block_passes": n_passes}

    def timed(name, go, work):
        t0 = time.perf_counter()
        go()
        out[f"{name}_first_call_s"] = time.perf_counter() - t0
        wall, cpu = median_time(go, reps)
        out[f"{name}_per_s"] = work / wall
        out[f"{name}_per_cpu_s"] = work / cpu

    timed("pass_fixed_pulses", lambda: jax.block_until_ready(
        simulate(key, fixed_link, protocol, jnp.int64(total), **opts)), total)
    timed("pass_fading_pulses", lambda: jax.block_until_ready(pass_tally_pulse(key, faded, protocol, 0, **opts)), total)
    index = jnp.arange(n_passes)
    timed("pass_block_fading_passes", lambda: jax.block_until_ready(pass_tallies_block(key, faded, protocol, index)),
          n_passes)
    timed("pass_block_fixed_passes", lambda: jax.block_until_ready(pass_tallies_block(key, steady, protocol, index)),
          n_passes)
    small = _pass(link, Fading("gamma_gamma", rytov_variance=1.0), n_np)
    rng = np.random.default_rng(0)
    timed("pass_numpy_pulses", lambda: numpy_pass(rng, key, small, protocol), N_SLOTS * n_np)
    out["ratio_pass_fading_to_fixed"] = out["pass_fading_pulses_per_s"] / out["pass_fixed_pulses_per_s"]
    out["ratio_pass_fading_to_numpy"] = out["pass_fading_pulses_per_s"] / out["pass_numpy_pulses_per_s"]
    out["ratio_pass_block_fading_to_fixed"] = out["pass_block_fading_passes_per_s"] / out["pass_block_fixed_passes_per_s"]
    return out


def passes_rows(r: dict) -> list[tuple]:
    """Rows of the engine benchmark's table for :func:`run_passes`'s numbers."""
    return [
        ("pulse engine, fixed-loss link", "pulses/s", r["pass_fixed_pulses_per_s"], r["pass_fixed_pulses_per_cpu_s"]),
        (f"pulse engine, fading pass ({r['pass_slots']} slots)", "pulses/s", r["pass_fading_pulses_per_s"],
         r["pass_fading_pulses_per_cpu_s"]),
        ("numpy, fading pass", "pulses/s", r["pass_numpy_pulses_per_s"], r["pass_numpy_pulses_per_cpu_s"]),
        ("block engine, fading passes", "passes/s", r["pass_block_fading_passes_per_s"],
         r["pass_block_fading_passes_per_cpu_s"]),
        ("block engine, passes without fading", "passes/s", r["pass_block_fixed_passes_per_s"],
         r["pass_block_fixed_passes_per_cpu_s"]),
        ("fading pass / fixed-loss link", "ratio", r["ratio_pass_fading_to_fixed"], ""),
        ("fading pass / numpy fading pass", "ratio", r["ratio_pass_fading_to_numpy"], ""),
        ("block: fading / no fading", "ratio", r["ratio_pass_block_fading_to_fixed"], ""),
    ]
