"""The pulse engine with classical traffic varying in time, beside constant traffic and numpy.

Same link and protocol as the engine benchmark (:mod:`qmc.bench.engines`) with one data channel
in the adjacent C-band slot (-15 dBm while on, the GYS detectors' 1 ns gate): constant traffic
(one table), on/off bursts (two tables; bursts of 10 us at duty cycle 0.3) and a measured trace
(1000 samples of 1 us: a thousand tables), each pulse's table chosen by its emission time. The
numpy version draws the same model: each pulse's level from its index, then its cell by
inverting that level's cumulative table.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from qmc.bench.timing import median_time
from qmc.channels.raman import ClassicalChannel
from qmc.channels.traffic import Bursts, Constant, Trace
from qmc.engines import exact
from qmc.engines.pulse import simulate
from qmc.link import Link, at_noise_level

__all__ = ["run_traffic", "numpy_levels", "PROFILES"]

PROFILES = {
    "constant": Constant(),
    "bursts": Bursts(0.3, 1e-5),
    "trace": Trace(np.random.default_rng(0).random(1000), 1e-6),
}


def _traffic_link(link, profile):
    source = dataclasses.replace(link.source, wavelength_nm=1550.12)
    return Link(source, link.channel, link.detector,
                ClassicalChannel(1549.32, -15.0, isolation_db=100.0, profile=profile))


def numpy_levels(rng, link, protocol, n, start=0):
    """The per-level fast model in numpy: level of each pulse, then its cell by inverting the
    level's cumulative joint table with a float64 uniform (one searchsorted per level)."""
    profile = link.classical.profile
    factors = np.asarray(profile.factors())
    cdf = np.stack([np.cumsum(np.asarray(protocol.class_probabilities()[..., None]
                                         * exact.outcome_table(at_noise_level(link, f), protocol)).ravel())
                    for f in factors])
    level = np.asarray(profile.level_of(np.arange(start, start + n, dtype=np.int64), link.source.rep_rate_hz))
    u = rng.random(n)
    cell = np.empty(n, np.int64)
    for lv in np.unique(level):
        at = level == lv
        cell[at] = np.searchsorted(cdf[lv], u[at] * cdf[lv][-1], side="right")
    return np.bincount(np.minimum(cell, cdf.shape[1] - 1), minlength=cdf.shape[1])


def run_traffic(key, link, protocol, quick: bool, reps: int, methods, chunk: int) -> dict:
    """Pulses per second of the fast path for each profile, and numpy's for bursts and the trace."""
    n = (2**24 if quick else 2**26) if jax.default_backend() == "cpu" else 2**31
    n_np = 2**20 if quick else 2**22
    out: dict = {"traffic_pulses": n, "traffic_numpy_pulses": n_np}
    for name, profile in PROFILES.items():
        at = _traffic_link(link, profile)

        def go(at=at):
            return jax.block_until_ready(simulate(key, at, protocol, jnp.int64(n), chunk=chunk, methods=methods))

        t0 = time.perf_counter()
        go()
        out[f"traffic_{name}_first_call_s"] = time.perf_counter() - t0
        wall, cpu = median_time(go, reps)
        out[f"traffic_{name}_pulses_per_s"] = n / wall
        out[f"traffic_{name}_pulses_per_cpu_s"] = n / cpu
        if name != "constant":
            rng = np.random.default_rng(0)
            wall, cpu = median_time(lambda at=at: numpy_levels(rng, at, protocol, n_np), reps)
            out[f"traffic_numpy_{name}_pulses_per_s"] = n_np / wall
            out[f"traffic_numpy_{name}_pulses_per_cpu_s"] = n_np / cpu
            out[f"ratio_traffic_{name}_to_constant"] = out[f"traffic_{name}_pulses_per_s"] / out[
                "traffic_constant_pulses_per_s"]
            out[f"ratio_traffic_{name}_to_numpy"] = out[f"traffic_{name}_pulses_per_s"] / out[
                f"traffic_numpy_{name}_pulses_per_s"]
    return out


def traffic_rows(r: dict) -> list[tuple]:
    """Rows of the engine benchmark's table for :func:`run_traffic`'s numbers."""
    rows = [("fast path, constant traffic", "pulses/s", r["traffic_constant_pulses_per_s"],
             r["traffic_constant_pulses_per_cpu_s"])]
    for name, text in (("bursts", "bursts (2 tables)"), ("trace", "trace (1000 tables)")):
        rows.append((f"fast path, {text}", "pulses/s", r[f"traffic_{name}_pulses_per_s"],
                     r[f"traffic_{name}_pulses_per_cpu_s"]))
        rows.append((f"numpy, {text}", "pulses/s", r[f"traffic_numpy_{name}_pulses_per_s"],
                     r[f"traffic_numpy_{name}_pulses_per_cpu_s"]))
    for name in ("bursts", "trace"):
        rows.append((f"{name} / constant traffic", "ratio", r[f"ratio_traffic_{name}_to_constant"], ""))
        rows.append((f"{name} / numpy {name}", "ratio", r[f"ratio_traffic_{name}_to_numpy"], ""))
    return rows
