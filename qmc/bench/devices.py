"""Scaling over the local devices: throughput on one device and on all of them.

The exact sweep (a chunk of key-rate points, :func:`qmc.sweep.run`), the block engine's sessions
and the pulse engine's chunks, each timed on the first device and split over every local
device (:mod:`qmc._devices`), the same work and the same numbers either way. The table gives the
rate on one device, on all, and per device on all (against one device: the scaling efficiency).
Forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``) share the CPU's
cores: they show the split works, not a speed-up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import qmc  # noqa: F401  (enables float64)
from qmc import sweep
from qmc._devices import local_devices, resolve
from qmc.analysis import InfiniteDecoy
from qmc.bench.timing import median_time
from qmc.engines.block import sample_sessions
from qmc.engines.pulse import default_chunk, simulate

__all__ = ["run_devices", "devices_lines"]

_WHAT = (("exact", "exact sweep, key rate", "points/s"), ("block", "block engine, fast mode", "sessions/s"),
         ("pulse", "pulse engine, fast path", "pulses/s"))


def run_devices(key, link, protocol, quick: bool, reps: int, methods=None) -> dict:
    """The rates on one device and on all local devices (``devices_*`` keys)."""
    n_all = len(local_devices())
    on_cpu = jax.default_backend() == "cpu"
    n_points = (2**12 if quick else 2**14) if on_cpu else 2**18
    n_sessions = (2**14 if quick else 2**16) if on_cpu else 2**22
    n_pulses = (2**23 if quick else 2**25) if on_cpu else 2**32
    chunk = default_chunk(2**20)
    analysis = InfiniteDecoy(f_ec=1.22)
    tree = {"link": link, "protocol": protocol}
    lengths = sweep.grid({"link.channel.length_km": np.linspace(0.0, 200.0, n_points)})

    def key_rate(t):
        return analysis.key_rate(t["link"], t["protocol"])

    def exact(count):
        return lambda: [out for _, _, out in sweep.run(key_rate, tree, lengths, None, devices=count)]

    def block(count):
        used = resolve(count)
        return lambda: jax.block_until_ready(sample_sessions(key, link, protocol, 10**9, n_sessions, True, devices=used))

    def pulse(count):
        used = resolve(count)
        return lambda: jax.block_until_ready(simulate(key, link, protocol, jnp.int64(n_pulses), chunk=chunk,
                                                      methods=methods, devices=used))

    out: dict = {"devices_count": n_all, "devices_kind": jax.default_backend(),
                 "devices_sizes": {"exact": n_points, "block": n_sessions, "pulse": n_pulses}}
    for name, make in (("exact", exact), ("block", block), ("pulse", pulse)):
        size = out["devices_sizes"][name]
        for label, count in (("one", 1), ("all", None)):
            if label == "all" and n_all == 1:  # one device: the same run
                out[f"devices_{name}_all_per_s"] = out[f"devices_{name}_one_per_s"]
                continue
            go = make(count)
            go()  # compiles
            wall, _ = median_time(go, reps)
            out[f"devices_{name}_{label}_per_s"] = size / wall
    return out


def devices_lines(r: dict) -> list[str]:
    """The scaling table (a section of the engine benchmark's output)."""
    from qmc.bench.timing import table

    n = r["devices_count"]
    rows = []
    for name, what, unit in _WHAT:
        one, every = r[f"devices_{name}_one_per_s"], r[f"devices_{name}_all_per_s"]
        rows.append((what, unit, one, every, every / n, every / n / one))
    lines = [f"scaling over {n} local {r['devices_kind']} device{'s' if n > 1 else ''} (the batch split, same numbers):"]
    lines += table([("what", -28), ("unit", 10), ("1 device", 10), (f"{n} device{'s' if n > 1 else ''}", 10),
                    ("per device", 10), ("efficiency", 10)], rows)
    return lines
