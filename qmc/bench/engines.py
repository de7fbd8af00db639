"""Throughput of the Monte Carlo engines: ``python -m qmc.bench [--quick] [--json]``.

Measures, on the default JAX device, the pulse engine's fast and physical paths (pulses per
second), the block engine's fast mode (three-intensity BB84 sessions per second), the fast path
with classical traffic varying in time (:mod:`qmc.bench.traffic`), a fading satellite pass slot by
slot (:mod:`qmc.bench.passes`), repeater chains over attempt rounds (:mod:`qmc.bench.repeaters`)
the scaling over the local devices (:mod:`qmc.bench.devices`) and plain vectorized numpy
implementations of the same pulse models (one thread, ``numpy.random``), on
the GYS link at 50 km with intensities (0.48, 0.1, 0) and probabilities (0.8, 0.1, 0.1). Each
number is the median of several repetitions after a warm-up run that compiles. Wall-clock rates
are the headline; rates per CPU-second of this process are printed beside them because on a
shared machine other processes take cores (the two agree on an idle machine running one thread).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import qmc  # noqa: F401  (enables float64)
from qmc.engines import exact
from qmc.bench.devices import devices_lines, run_devices
from qmc.bench.streams import run_correlated
from qmc.bench.passes import passes_rows, run_passes
from qmc.bench.repeaters import repeaters_rows, run_repeaters
from qmc.bench.traffic import run_traffic, traffic_rows
from qmc.bench.timing import machine, machine_line, median_time, table
from qmc.engines.block import sample_sessions
from qmc.engines.pulse import FUSED, default_chunk, fast_methods, simulate
from qmc.presets import decoy_protocol, gys_link
from qmc.random.histogram import kernel_methods

__all__ = ["run", "format_result", "numpy_fast", "numpy_physical"]


def numpy_fast(rng, joint, n):
    """The fast path's model in numpy: each pulse's (class, outcome) cell by inverting the joint
    cumulative table with a float64 uniform, then a bincount."""
    cdf = np.cumsum(joint.ravel())
    cell = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.bincount(np.minimum(cell, joint.size - 1), minlength=joint.size)


def numpy_physical(rng, class_p, mu, eta, e_d, p_dark, n):
    """The physical path's model in numpy: class, Poisson photon number, independent photon fates
    (detector 0, detector 1 or lost: a multinomial thinning), Bernoulli dark counts per detector."""
    cls = np.searchsorted(np.cumsum(class_p), rng.random(n) * class_p.sum(), side="right")
    cls = np.minimum(cls, class_p.size - 1)
    k, a, b, x = cls // 8, (cls // 4) % 2, (cls // 2) % 2, cls % 2
    photons = rng.poisson(mu[k])
    f0 = np.where(a == b, np.where(x == 0, 1.0 - e_d, e_d), 0.5)
    n0 = rng.binomial(photons, eta * f0)
    n1 = rng.binomial(photons - n0, eta * (1.0 - f0) / (1.0 - eta * f0))
    d0 = (n0 > 0) | (rng.random(n) < p_dark)
    d1 = (n1 > 0) | (rng.random(n) < p_dark)
    return np.bincount(cls * 4 + d0 + 2 * d1, minlength=class_p.size * 4)


def run(quick: bool = False, methods: tuple[str, str] | None = None) -> dict:
    """Run the benchmark; returns the numbers (rates per wall second unless named per_cpu_s).

    ``methods``: the pulse and stream engines' ``(categorical, histogram)`` kernel methods
    (default: :func:`qmc.engines.pulse.fast_methods` for the fast path, the fused kernel on a GPU,
    and :func:`qmc.engines.histogram.kernel_methods` for the others; same numbers either way).
    """
    reps = 3 if quick else 5
    on_cpu = jax.default_backend() == "cpu"
    # An accelerator gets runs long enough (about 0.1-1 s each) to time its throughput, not launches.
    n_fast = (2**25 if quick else 2**27) if on_cpu else 2**32
    n_phys = (2**22 if quick else 2**24) if on_cpu else 2**30
    n_np = 2**21 if quick else 2**23
    n_sessions = (2**16 if quick else 2**18) if on_cpu else 2**22
    session_pulses = 10**9
    link, protocol = gys_link(50.0), decoy_protocol()
    key = jax.random.key(0)
    chunk = default_chunk(2**20)
    out: dict = {
        **machine(),
        "chunk": chunk,
        "methods": list(methods or fast_methods(2**20)),  # the fast path's
        "quick": quick,
    }
    # The fused kernel draws the fast path only: the other engines keep the backend's histogram.
    others = (methods[0], kernel_methods()[1]) if methods is not None and methods[1] == FUSED else methods
    for path, n in (("fast", n_fast), ("physical", n_phys)):
        def go(path=path, n=n):
            return jax.block_until_ready(simulate(key, link, protocol, jnp.int64(n), path=path, chunk=chunk,
                                                  methods=methods if path == "fast" else others))
        t0 = time.perf_counter()
        go()
        compile_s = time.perf_counter() - t0
        wall, cpu = median_time(go, reps)
        name = "pulse_engine" if path == "fast" else "pulse_engine_physical"
        out[f"{name}_pulses_per_s"] = n / wall
        out[f"{name}_pulses_per_cpu_s"] = n / cpu
        out[f"{name}_first_call_s"] = compile_s
    go = lambda: jax.block_until_ready(sample_sessions(key, link, protocol, session_pulses, n_sessions, True))  # noqa: E731
    t0 = time.perf_counter()
    go()
    out["block_engine_first_call_s"] = time.perf_counter() - t0
    wall, cpu = median_time(go, reps)
    out["block_engine_sessions_per_s"] = n_sessions / wall
    out["block_engine_sessions_per_cpu_s"] = n_sessions / cpu
    # numpy baselines of the same two models, in the same run.
    rng = np.random.default_rng(0)
    joint = np.asarray(protocol.class_probabilities()[..., None] * exact.outcome_table(link, protocol))
    class_p = np.asarray(protocol.class_probabilities()).ravel()
    mu = np.asarray(protocol.intensities)
    eta, e_d, p_dark = float(link.transmittance()), float(link.detector.misalignment), float(link.detector.p_dark)
    numpy_fast(rng, joint, 1000)
    wall, cpu = median_time(lambda: numpy_fast(rng, joint, n_np), reps)
    out["numpy_fast_pulses_per_s"] = n_np / wall
    out["numpy_fast_pulses_per_cpu_s"] = n_np / cpu
    wall, cpu = median_time(lambda: numpy_physical(rng, class_p, mu, eta, e_d, p_dark, n_np), reps)
    out["numpy_pulses_per_s"] = n_np / wall
    out["numpy_pulses_per_cpu_s"] = n_np / cpu
    out["ratio_physical_to_numpy"] = out["pulse_engine_physical_pulses_per_s"] / out["numpy_pulses_per_s"]
    out["ratio_fast_to_numpy_fast"] = out["pulse_engine_pulses_per_s"] / out["numpy_fast_pulses_per_s"]
    out.update(run_correlated(key, link, protocol, quick, reps, others))  # the stream engine
    out.update(run_traffic(key, link, protocol, quick, reps, methods, chunk))  # traffic varying in time
    out.update(run_passes(key, link, protocol, quick, reps, methods, chunk))  # a fading satellite pass
    out.update(run_repeaters(quick, reps))  # repeater chains over attempt rounds (qmc.repeaters)
    out.update(run_devices(key, link, protocol, quick, reps, methods))  # one device against all
    out["sizes"] = {"fast": n_fast, "physical": n_phys, "numpy": n_np, "block_sessions": n_sessions,
                    "block_session_pulses": session_pulses, "repetitions": reps}
    return out


def format_result(r: dict) -> str:
    """The engine benchmark as a plain-text table."""
    rows = [
        ("pulse engine, fast path", "pulses/s", r["pulse_engine_pulses_per_s"], r["pulse_engine_pulses_per_cpu_s"]),
        ("pulse engine, physical path", "pulses/s", r["pulse_engine_physical_pulses_per_s"],
         r["pulse_engine_physical_pulses_per_cpu_s"]),
        ("block engine, fast mode", "sessions/s", r["block_engine_sessions_per_s"], r["block_engine_sessions_per_cpu_s"]),
        ("numpy, fast model", "pulses/s", r["numpy_fast_pulses_per_s"], r["numpy_fast_pulses_per_cpu_s"]),
        ("numpy, physical model", "pulses/s", r["numpy_pulses_per_s"], r["numpy_pulses_per_cpu_s"]),
    ]
    if "pulse_engine_correlated_pulses_per_s" in r:  # stream engine: afterpulsing + dead time
        rows.insert(2, ("stream engine, ap + dead time", "pulses/s",
                        r["pulse_engine_correlated_pulses_per_s"], r["pulse_engine_correlated_pulses_per_cpu_s"]))
        rows.append(("numpy, ap + dead-time model", "pulses/s", r["numpy_correlated_pulses_per_s"],
                     r["numpy_correlated_pulses_per_cpu_s"]))
    rows.append(("physical path / numpy physical", "ratio", r["ratio_physical_to_numpy"], ""))
    rows.append(("fast path / numpy fast", "ratio", r["ratio_fast_to_numpy_fast"], ""))
    if "ratio_correlated_to_numpy_correlated" in r:
        rows.append(("stream engine / numpy ap+dead", "ratio", r["ratio_correlated_to_numpy_correlated"], ""))
    if "traffic_constant_pulses_per_s" in r:  # classical traffic varying in time (qmc.bench.traffic)
        rows += traffic_rows(r)
    if "pass_fixed_pulses_per_s" in r:  # a fading pass, slot by slot (qmc.bench.passes)
        rows += passes_rows(r)
    if "repeaters_2_links_chains_per_s" in r:  # repeater chains (qmc.bench.repeaters)
        rows += repeaters_rows(r)
    lines = [f"{machine_line(r)}, chunk {r['chunk']}, kernels {'/'.join(r['methods'])}"]
    lines += table([("what", -44), ("unit", 10), ("per wall s", 12), ("per CPU s", 12)], rows)
    if "correlated_n_streams" in r:
        lines.append(f"stream engine: {r['correlated_n_streams']} streams, {r['correlated_chunk_gates']} gates per chunk")
    lines.append(
        f"first calls (compile + run): fast {r['pulse_engine_first_call_s']:.1f} s, physical "
        f"{r['pulse_engine_physical_first_call_s']:.1f} s, block {r['block_engine_first_call_s']:.1f} s"
    )
    if "devices_count" in r:  # one device against all (qmc.bench.devices)
        lines += devices_lines(r)
    return "\n".join(lines)
