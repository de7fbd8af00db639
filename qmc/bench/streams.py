"""The stream engine's part of ``python -m qmc.bench``: correlated pulses per second, and a numpy
baseline of the same model (afterpulsing and common dead time, streams side by side, one gate at
a time) in the same run.

Model benchmarked: the GYS link at 50 km, intensities (0.48, 0.1, 0), with p_ap = 0.04 (Lim et al.
2014's value), tau = 10 gates and a common dead time of 10 gates. The number of streams is part of
the model (``n_streams`` in the result: 2**12 on a CPU, 2**18 on an accelerator so that each
gate-step has enough parallel work), with 1024 burn-in gates per stream counted as work.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from qmc.bench.timing import median_time
from qmc.engines import exact
from qmc.engines.streams import default_chunk_gates, simulate_streams

__all__ = ["correlated_detector", "numpy_correlated", "run_correlated"]


def correlated_detector(detector):
    """The benchmark's detector with memory: p_ap = 0.04, tau = 10 gates, dead time 10 gates."""
    return dataclasses.replace(detector, p_afterpulse=0.04, afterpulse_decay_gates=10.0, dead_time_gates=10.0)


def numpy_correlated(rng, table, p_ap, tau, d, n_streams, n_gates):
    """The stream model in numpy: per gate, memoryless cells by inverting the joint cumulative
    table, then the detector state (common dead time, one pending trap per detector) for all
    streams at once. Returns the cell histogram."""
    cdf = np.cumsum(table.ravel())
    dead = np.zeros(n_streams, np.int64)
    traps = np.zeros((2, n_streams), np.int64)
    hist = np.zeros(table.size, np.int64)
    for _ in range(n_gates):
        cell = np.minimum(np.searchsorted(cdf, rng.random(n_streams) * cdf[-1], side="right"), table.size - 1)
        out = cell & 3
        release = traps == 1
        traps = np.maximum(traps - 1, 0)
        live = dead == 0
        c0 = (((out & 1) != 0) | release[0]) & live
        c1 = (((out & 2) != 0) | release[1]) & live
        dead = np.where(c0 | c1, d, np.maximum(dead - 1, 0))
        for j, c in enumerate((c0, c1)):
            arm = c & (rng.random(n_streams) < p_ap) & (traps[j] == 0)
            delay = 1 + np.floor(-tau * np.log(rng.random(n_streams))).astype(np.int64)
            traps[j] = np.where(arm, delay, traps[j])
        hist += np.bincount(cell - out + c0 + 2 * c1, minlength=table.size)
    return hist


def run_correlated(key, link, protocol, quick: bool, reps: int, methods=None) -> dict:
    """Stream-engine and numpy rates for the correlated model (keys as ``qmc.bench``)."""
    on_cpu = jax.default_backend() == "cpu"
    n_streams = 2**12 if on_cpu else 2**18
    burn_in = 1024
    n = (2**22 if quick else 2**25) if on_cpu else 2**31
    link = dataclasses.replace(link, detector=correlated_detector(link.detector))
    chunk_gates = default_chunk_gates(n_streams)

    def go():
        return jax.block_until_ready(simulate_streams(
            key, link, protocol, jnp.int64(n), n_streams=n_streams, chunk_gates=chunk_gates, burn_in_gates=burn_in,
            methods=methods))

    t0 = time.perf_counter()
    go()
    first = time.perf_counter() - t0
    wall, cpu = median_time(go, reps)
    work = n + n_streams * burn_in  # burn-in gates are simulated too
    out = {
        "pulse_engine_correlated_pulses_per_s": work / wall,
        "pulse_engine_correlated_pulses_per_cpu_s": work / cpu,
        "pulse_engine_correlated_first_call_s": first,
        "correlated_n_streams": n_streams,
        "correlated_chunk_gates": chunk_gates,
    }
    det = link.detector
    table = np.asarray(protocol.class_probabilities()[..., None] * exact.memoryless_table(link, protocol))
    rng = np.random.default_rng(0)
    np_streams, np_gates = 4096, (32 if quick else 256)
    numpy_correlated(rng, table, 0.04, 10.0, 10, np_streams, 4)
    wall, cpu = median_time(lambda: numpy_correlated(rng, table, float(det.p_afterpulse), float(det.afterpulse_decay_gates),
                                               int(det.dead_time_gates), np_streams, np_gates), reps)
    out["numpy_correlated_pulses_per_s"] = np_streams * np_gates / wall
    out["numpy_correlated_pulses_per_cpu_s"] = np_streams * np_gates / cpu
    out["ratio_correlated_to_numpy_correlated"] = (
        out["pulse_engine_correlated_pulses_per_s"] / out["numpy_correlated_pulses_per_s"])
    return out
