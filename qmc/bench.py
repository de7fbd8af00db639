"""Throughput of the Monte Carlo engines: ``python -m qmc.bench [--quick] [--json]``.

Measures, on the default JAX device, the pulse engine's fast and physical paths (pulses per
second), the block engine's fast mode (three-intensity BB84 sessions per second) and plain
vectorized numpy implementations of the same two pulse models (one thread, ``numpy.random``), on
the GYS link at 50 km with intensities (0.48, 0.1, 0) and probabilities (0.8, 0.1, 0.1). Each
number is the median of several repetitions after a warm-up run that compiles. Wall-clock rates
are the headline; rates per CPU-second of this process are printed beside them because on a
shared machine other processes take cores (the two agree on an idle machine running one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import qmc  # noqa: F401  (enables float64)
from qmc.engines import exact
from qmc.engines.block import sample_sessions
from qmc.random.histogram import CATEGORICAL_METHODS, HISTOGRAM_METHODS, kernel_methods
from qmc.engines.pulse import FUSED, default_chunk, fast_methods, simulate
from qmc.bench_streams import run_correlated
from qmc.mc_study import decoy_protocol, gys_link

__all__ = ["main", "run"]


def _time(fn, reps: int):
    """(median wall seconds, median process CPU seconds) of ``fn()`` over ``reps`` runs."""
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def numpy_fast(rng, table, n):
    """The fast path's model in numpy: each pulse's (class, outcome) cell by inverting the joint
    cumulative table with a float64 uniform, then a bincount."""
    cdf = np.cumsum(table.ravel())
    cell = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.bincount(np.minimum(cell, table.size - 1), minlength=table.size)


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
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "jax": jax.__version__,
        "python": platform.python_version(),
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
        wall, cpu = _time(go, reps)
        name = "pulse_engine" if path == "fast" else "pulse_engine_physical"
        out[f"{name}_pulses_per_s"] = n / wall
        out[f"{name}_pulses_per_cpu_s"] = n / cpu
        out[f"{name}_first_call_s"] = compile_s
    go = lambda: jax.block_until_ready(sample_sessions(key, link, protocol, session_pulses, n_sessions, True))  # noqa: E731
    t0 = time.perf_counter()
    go()
    out["block_engine_first_call_s"] = time.perf_counter() - t0
    wall, cpu = _time(go, reps)
    out["block_engine_sessions_per_s"] = n_sessions / wall
    out["block_engine_sessions_per_cpu_s"] = n_sessions / cpu
    # numpy baselines of the same two models, in the same run.
    rng = np.random.default_rng(0)
    table = np.asarray(protocol.class_probabilities()[..., None] * exact.outcome_table(link, protocol))
    class_p = np.asarray(protocol.class_probabilities()).ravel()
    mu = np.asarray(protocol.intensities)
    eta, e_d, p_dark = float(link.transmittance()), float(link.detector.misalignment), float(link.detector.p_dark)
    numpy_fast(rng, table, 1000)
    wall, cpu = _time(lambda: numpy_fast(rng, table, n_np), reps)
    out["numpy_fast_pulses_per_s"] = n_np / wall
    out["numpy_fast_pulses_per_cpu_s"] = n_np / cpu
    wall, cpu = _time(lambda: numpy_physical(rng, class_p, mu, eta, e_d, p_dark, n_np), reps)
    out["numpy_pulses_per_s"] = n_np / wall
    out["numpy_pulses_per_cpu_s"] = n_np / cpu
    out["ratio_physical_to_numpy"] = out["pulse_engine_physical_pulses_per_s"] / out["numpy_pulses_per_s"]
    out["ratio_fast_to_numpy_fast"] = out["pulse_engine_pulses_per_s"] / out["numpy_fast_pulses_per_s"]
    out.update(run_correlated(key, link, protocol, quick, reps, _time, others))  # stream engine (issue #5)
    out["sizes"] = {"fast": n_fast, "physical": n_phys, "numpy": n_np, "block_sessions": n_sessions,
                    "block_session_pulses": session_pulses, "repetitions": reps}
    return out


def _table(r: dict) -> str:
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
    lines = [
        f"device {r['device']}, {r['cpu_count']} CPUs, load {r['load_average_1min']}, jax {r['jax']}, chunk {r['chunk']}, "
        f"kernels {'/'.join(r['methods'])}",
        f"{'what':32s} {'unit':>10s} {'per wall s':>12s} {'per CPU s':>12s}",
    ]
    lines += [f"{name:32s} {unit:>10s} {wall:12.3g} {cpu:12.3g}" for name, unit, wall, cpu in rows]
    lines.append(f"{'physical path / numpy physical':32s} {'ratio':>10s} {r['ratio_physical_to_numpy']:12.3g}")
    lines.append(f"{'fast path / numpy fast':32s} {'ratio':>10s} {r['ratio_fast_to_numpy_fast']:12.3g}")
    if "ratio_correlated_to_numpy_correlated" in r:
        lines.append(f"{'stream engine / numpy ap+dead':32s} {'ratio':>10s} {r['ratio_correlated_to_numpy_correlated']:12.3g}")
        lines.append(f"stream engine: {r['correlated_n_streams']} streams, {r['correlated_chunk_gates']} gates per chunk")
    lines.append(
        f"first calls (compile + run): fast {r['pulse_engine_first_call_s']:.1f} s, physical "
        f"{r['pulse_engine_physical_first_call_s']:.1f} s, block {r['block_engine_first_call_s']:.1f} s"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qmc.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 3 repetitions (under a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--optimize", action="store_true",
                        help="the optimizer benchmark instead (qmc.bench_optimize: qmc against scipy L-BFGS-B)")
    parser.add_argument("--methods", default=None, metavar="CATEGORICAL,HISTOGRAM",
                        help=f"kernel methods of the pulse/stream engines (categorical: {', '.join(CATEGORICAL_METHODS)}; "
                             f"histogram: {', '.join(HISTOGRAM_METHODS + (FUSED,))}); default by backend, same numbers")
    args, rest = parser.parse_known_args(argv)
    if args.optimize:  # issue #7: its own module, its own options (--points)
        from qmc.bench_optimize import main as optimize_main

        return optimize_main(["--quick"] * args.quick + ["--json"] * args.json + rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    methods = None
    if args.methods:
        methods = tuple(args.methods.split(","))
        hist = HISTOGRAM_METHODS + (FUSED,)
        if len(methods) != 2 or methods[0] not in CATEGORICAL_METHODS or methods[1] not in hist:
            parser.error(f"--methods {args.methods!r}: expected CATEGORICAL,HISTOGRAM with categorical in "
                         f"{CATEGORICAL_METHODS} and histogram in {hist} ({FUSED!r}: the fast path's fused "
                         f"kernel; the other engines then keep the backend's histogram)")
    result = run(quick=args.quick, methods=methods)
    print(_table(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
