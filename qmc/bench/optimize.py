"""Optimizer benchmark: ``python -m qmc.bench --optimize [--quick] [--json]``.

Two 100-point optimized distance sweeps (0 to 200 km) on the fiber system of Lim et al.
(PRA 89, 022307 (2014), Sec. IV: 0.2 dB/km, eta_Bob = 10 %, p_dc = 6e-7, e_mis = 5e-3, qmc's
exact engine, no afterpulsing), with Lim's security settings (f_EC = 1.16, eps_cor = 1e-15,
eps_sec = kappa l with kappa = 1e-15, the ``analysis=finite_lim2014`` config):

* ``asymptotic_two_decoy``: Lim's two-decoy bounds without finite-size terms, from mu2 = 0.05,
  mu3 = 2e-4, p = (0.9, 0.05, 0.05), p_z = 0.9, everything the analysis reads free but mu3 (its
  rate rises as the decoy probabilities shrink: they go to the reparameterization's floors).
* ``finite_lim2014`` at block size n_X = 1e9: mu1, mu2, their three probabilities and p_z free
  (five dimensions), mu3 = 2e-4 fixed as in the paper.

qmc: :func:`qmc.optimize.maximize_sweep` (BFGS with forward-mode gradients, in one compiled
call for all 100 points), timed end to end (inputs to numpy results) after a first call that
compiles, the median of 15 runs (five around each of the three scipy runs, interleaved so that
a change of machine load hits both), in two settings:

* ``warm`` (the headline, the same strategy as scipy's): one start per point, the previous
  point's optimum (extrapolated, with its inverse Hessian), plus up to four continuation passes
  that restart each point from its neighbours' optima where that is better;
* ``default``: the defaults, which add a second start every eighth point from the best of 32
  spread-out starts (multi-start insurance against a change of basin along the sweep).

Both run the loops on the device (``loop="device"``: one compiled program). ``host``: the
defaults with ``loop="host"`` (Python around one compiled loss, the CPU's default), which
compiles in a fraction of the time and then pays a dispatch per evaluation: its first call and
its time per point after compilation are reported beside.

On the finite-key sweep only (unless ``--no-optax``), ``optax``: the same ``warm`` sweep through
:func:`qmc.optimize.maximize_sweep` with ``solver="optax"`` (``optax.lbfgs()`` with its zoom line
search instead of qmc's BFGS: same loss, starts, warm starts and continuation, the points vmapped
as two chains side by side), timed the same way (its first call compiles about 30 s more).

scipy: ``scipy.optimize.minimize(method="L-BFGS-B")`` with default tolerances and
finite-difference gradients, on the same jitted objective (-ln R of the same reparameterization;
one jitted function of (theta, length), so no point recompiles), point by point in order of
length, each point warm-started from the previous point's optimum (the first from the user's
protocol), plus one rate evaluation at its optimum; compiled before timing. scipy gets one BLAS
thread (``OPENBLAS_NUM_THREADS=1`` before it loads its OpenBLAS, unless set otherwise): L-BFGS-B
calls BLAS on vectors of at most 6 numbers, where threads only synchronize, and on the loaded
2-core machine, beside XLA's threads, the default threads made scipy's sweeps about 6x slower,
which would flatter qmc.

Rates are compared point by point where either exceeds 1e-12 bits per pulse; the ratio is
qmc / scipy (inf where only qmc finds a key). scipy is imported here only (a test dependency).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

import jax
import numpy as np

import qmc  # noqa: F401  (float64)
from qmc import optimize
from qmc._pytree import replace_path
from qmc.analysis.finite import AsymptoticTwoDecoy, FiniteLim2014
from qmc.bench.timing import machine, median_time
from qmc.presets import LIM2014, lim2014_link
from qmc.protocols import DecoyBB84

__all__ = ["main", "run", "cases", "scipy_sweep"]

RATE_FLOOR = 1e-12  # points where neither rate exceeds this are not compared


def _scipy_blas_threads() -> str | None:
    """One OpenBLAS thread for scipy, if scipy has not loaded its BLAS yet (a value set in the
    environment wins). Returns the setting scipy runs with (None: its default, all cores)."""
    loaded = any(m.split(".")[:2] in (["scipy", "linalg"], ["scipy", "optimize"], ["scipy", "sparse"])
                 for m in sys.modules)
    if not loaded:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return os.environ.get("OPENBLAS_NUM_THREADS")


def cases(n_points: int = 100):
    """The two benchmark sweeps: name -> (analysis, link, protocol, space, lengths_km)."""
    link = lim2014_link(0.0)
    lengths = np.linspace(0.0, 200.0, n_points)
    asym = AsymptoticTwoDecoy(f_ec=LIM2014["f_ec"])
    asym_protocol = DecoyBB84(intensities=(0.5, 0.05, 2e-4), probabilities=(0.9, 0.05, 0.05), p_z=0.9,
                              key_basis="Z")
    finite = FiniteLim2014(f_ec=LIM2014["f_ec"], eps_cor=LIM2014["eps_cor"], kappa=LIM2014["kappa"],
                           block_size=1e9)
    finite_protocol = DecoyBB84(intensities=(0.5, 0.1, 2e-4), probabilities=(0.7, 0.2, 0.1), p_z=0.9,
                                key_basis="Z")
    return {
        "asymptotic_two_decoy": (asym, link, asym_protocol, asym_protocol.parameter_space(asym), lengths),
        "finite_lim2014_1e9": (finite, link, finite_protocol, finite_protocol.parameter_space(finite), lengths),
    }


SETTINGS = {"warm": dict(n_starts=1, loop="device"), "default": dict(loop="device"), "host": dict(loop="host")}
OPTAX_SETTING = dict(n_starts=1, solver="optax", loop="device")  # the warm strategy with optax's L-BFGS
OPTAX_SWEEPS = ("finite_lim2014_1e9",)


def qmc_sweep(analysis, link, protocol, space, lengths, **settings):
    """qmc's optimized sweep: rates (P,) and the Optimum (numpy leaves)."""
    opt = optimize.maximize_sweep(analysis, link, protocol, {"link.channel.length_km": lengths}, space,
                                  **settings)
    opt = jax.tree_util.tree_map(np.asarray, opt)
    return opt.rate.rate, opt


def scipy_sweep(analysis, link, protocol, space, lengths, functions=None):
    """scipy's L-BFGS-B point by point, warm-started; returns (rates (P,), thetas (P, d), nfev (P,)).

    ``functions`` = (loss, rate), jitted functions of (theta, length_km); made here if None.
    """
    from scipy.optimize import minimize

    loss, rate = _scipy_functions(analysis, link, protocol, space) if functions is None else functions
    theta = np.asarray(space.from_protocol(protocol, np), np.float64)
    rates, thetas, nfev = [], [], []
    for length in np.asarray(lengths, np.float64):
        res = minimize(lambda x, length=length: float(loss(x, length)), theta, method="L-BFGS-B")
        theta = res.x
        rates.append(float(rate(theta, length)))
        thetas.append(theta)
        nfev.append(res.nfev)
    return np.asarray(rates), np.asarray(thetas), np.asarray(nfev)


def _scipy_functions(analysis, link, protocol, space):
    def at(length):
        return replace_path(link, "channel.length_km", length)

    loss = jax.jit(lambda x, length: optimize.objective(x, at(length), protocol, analysis, space))
    rate = jax.jit(lambda x, length: analysis.key_rate(at(length), space.to_protocol(x, protocol)).rate)
    return loss, rate


def compare(rates_qmc, rates_scipy, floor: float = RATE_FLOOR) -> dict:
    """Point-by-point ratio qmc / scipy where either rate exceeds ``floor``."""
    q, s = np.asarray(rates_qmc), np.asarray(rates_scipy)
    counted = (q > floor) | (s > floor)
    ratio = np.where(s > 0, q / np.where(s > 0, s, 1.0), np.inf)
    worst = int(np.argmin(np.where(counted, ratio, np.inf))) if counted.any() else -1
    return {
        "points_compared": int(counted.sum()),
        "min_rate_ratio_qmc_over_scipy": float(ratio[worst]) if worst >= 0 else None,
        "worst_point": worst,
        "points_qmc_better": int(np.sum(counted & (q > s * (1 + 1e-9)))),
        "points_scipy_better_by_0.1%": int(np.sum(counted & (q < s * (1 - 1e-3)))),
        "points_with_key_qmc": int(np.sum(q > 0)),
        "points_with_key_scipy": int(np.sum(s > 0)),
    }


def run(quick: bool = False, n_points: int = 100, with_optax: bool = True) -> dict:
    """Run both sweeps; returns the numbers (seconds per point, ratios, rates)."""
    reps_qmc = 3 if quick else 5  # qmc runs around each scipy run (median of all)
    reps_scipy = 1 if quick else 3
    out: dict = {
        **machine(),
        "n_points": n_points,
        "quick": quick,
        "scipy_openblas_threads": _scipy_blas_threads(),
        "sweeps": {},
    }
    total_qmc = total_scipy = total_default = 0.0
    ratios, speedups = [], []
    for name, (analysis, link, protocol, space, lengths) in cases(n_points).items():
        settings = dict(SETTINGS, **({"optax": OPTAX_SETTING} if with_optax and name in OPTAX_SWEEPS else {}))
        runs = {setting: functools.partial(qmc_sweep, analysis, link, protocol, space, lengths, **kwargs)
                for setting, kwargs in settings.items()}
        first, results = {}, {}
        for setting, go in runs.items():
            t0 = time.perf_counter()
            results[setting] = go()
            first[setting] = time.perf_counter() - t0
        functions = _scipy_functions(analysis, link, protocol, space)
        x0 = np.asarray(space.from_protocol(protocol))
        length0 = np.float64(lengths[0])  # the dtype the sweep passes: no retrace while timed
        functions[0](x0, length0).block_until_ready(), functions[1](x0, length0).block_until_ready()  # compile
        scipy_result = {}

        def go_scipy():
            scipy_result["out"] = scipy_sweep(analysis, link, protocol, space, lengths, functions)

        go_scipy()  # warm-up (first calls through scipy and JAX's dispatch)
        # Interleaved: each scipy run sits between qmc runs, so a change of machine load hits both.
        times = {"scipy": [], **{s: [] for s in runs}}
        for _ in range(reps_scipy):
            for setting, go in runs.items():
                times[setting] += [median_time(go, 1) for _ in range(reps_qmc)]
            times["scipy"].append(median_time(go_scipy, 1))
        t_qmc, t_default, t_scipy = (statistics.median(w for w, _ in times[k]) for k in ("warm", "default", "scipy"))
        cpu_qmc, cpu_scipy = (statistics.median(c for _, c in times[k]) for k in ("warm", "scipy"))
        rates_qmc, opt = results["warm"]
        rates_default, _ = results["default"]
        first_calls = first
        first, first_default = first["warm"], first["default"]
        rates_scipy, _, nfev = scipy_result["out"]
        stats = compare(rates_qmc, rates_scipy)
        stats_default = compare(rates_default, rates_scipy)
        per = {
            "analysis": analysis.name,
            "free": list(space.names(int(np.shape(protocol.intensities)[0]))),
            "qmc_seconds_per_point": t_qmc / n_points,
            "scipy_seconds_per_point": t_scipy / n_points,
            "speedup": t_scipy / t_qmc,
            "qmc_cpu_seconds_per_point": cpu_qmc / n_points,
            "scipy_cpu_seconds_per_point": cpu_scipy / n_points,
            "speedup_cpu": cpu_scipy / cpu_qmc,
            "qmc_first_call_s": first,
            "qmc_evaluations_per_point_median": float(np.median(opt.n_eval)),
            "scipy_evaluations_per_point_median": float(np.median(nfev)),
            **stats,
            "qmc_default_seconds_per_point": t_default / n_points,
            "speedup_default": t_scipy / t_default,
            "qmc_default_first_call_s": first_default,
            "min_rate_ratio_default_over_scipy": stats_default["min_rate_ratio_qmc_over_scipy"],
            "qmc_host_seconds_per_point": statistics.median(w for w, _ in times["host"]) / n_points,
            "qmc_host_first_call_s": first_calls["host"],
            "min_rate_ratio_host_over_default": compare(results["host"][0], rates_default)[
                "min_rate_ratio_qmc_over_scipy"],
            "lengths_km": [float(x) for x in lengths],
            "rates_qmc": [float(x) for x in rates_qmc],
            "rates_qmc_default": [float(x) for x in rates_default],
            "rates_scipy": [float(x) for x in rates_scipy],
        }
        if "optax" in runs:
            t_optax = statistics.median(w for w, _ in times["optax"])
            rates_optax, opt_optax = results["optax"]
            stats_optax = compare(rates_optax, rates_scipy)
            vs_qmc = compare(rates_optax, rates_qmc)  # "qmc" in the keys: optax here, qmc's BFGS as "scipy"
            per.update({
                "optax_mode": ("maximize_sweep(solver='optax', n_starts=1): warm starts + continuation, "
                               "2 chains vmapped"),
                "optax_seconds_per_point": t_optax / n_points,
                "optax_cpu_seconds_per_point": statistics.median(c for _, c in times["optax"]) / n_points,
                "optax_time_over_qmc": t_optax / t_qmc,
                "speedup_optax_over_scipy": t_scipy / t_optax,
                "optax_first_call_s": first_calls["optax"],
                "optax_evaluations_per_point_median": float(np.median(opt_optax.n_eval)),
                "min_rate_ratio_optax_over_scipy": stats_optax["min_rate_ratio_qmc_over_scipy"],
                "min_rate_ratio_optax_over_qmc": vs_qmc["min_rate_ratio_qmc_over_scipy"],
                "worst_point_optax_over_qmc": vs_qmc["worst_point"],
                "points_qmc_better_than_optax_by_1e-6": int(np.sum((rates_qmc > RATE_FLOOR)
                                                                   & (rates_optax < rates_qmc * (1 - 1e-6)))),
                "points_with_key_optax": stats_optax["points_with_key_qmc"],
                "rates_optax": [float(x) for x in rates_optax],
            })
        out["sweeps"][name] = per
        total_qmc += t_qmc
        total_scipy += t_scipy
        total_default += t_default
        speedups.append(per["speedup"])
        for s in (stats, stats_default):  # the worst point of either setting
            if s["min_rate_ratio_qmc_over_scipy"] is not None:
                ratios.append(s["min_rate_ratio_qmc_over_scipy"])
    out["load_average_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    n_total = n_points * len(out["sweeps"])
    out["qmc_seconds_per_point"] = total_qmc / n_total
    out["scipy_seconds_per_point"] = total_scipy / n_total
    out["qmc_default_seconds_per_point"] = total_default / n_total
    out["speedup_min"] = min(speedups)
    out["min_rate_ratio_qmc_over_scipy"] = min(ratios) if ratios else None
    out["finite_sweep_seconds"] = out["sweeps"]["finite_lim2014_1e9"]["qmc_seconds_per_point"] * n_points
    out["finite_sweep_seconds_default"] = out["sweeps"]["finite_lim2014_1e9"]["qmc_default_seconds_per_point"] * n_points
    return out


def table(r: dict) -> str:
    """The benchmark as a plain-text table."""
    load = " -> ".join("n/a" if r.get(k) is None else f"{r[k]:.2f}"
                       for k in ("load_average_1min", "load_average_1min_end"))
    lines = [
        f"device {r['device']}, {r['cpu_count']} CPUs, load {load}, jax {r['jax']}, scipy "
        f"BLAS threads {r.get('scipy_openblas_threads') or 'default'}; {r['n_points']}-point sweeps 0-200 km, "
        "Lim et al. 2014 fiber system",
        f"{'sweep':22s} {'free':28s} {'qmc s/pt':>9s} {'scipy s/pt':>10s} {'speedup':>7s} {'min ratio':>10s} "
        f"{'evals/pt q|s':>12s} {'keys q|s':>8s}   {'default s/pt':>12s} {'speedup':>7s} {'min ratio':>10s}",
    ]
    for name, s in r["sweeps"].items():
        def fmt(x):
            return "-" if x is None else format(x, ".6f")
        lines.append(
            f"{name:22s} {','.join(s['free']):28s} {s['qmc_seconds_per_point']:9.2e} "
            f"{s['scipy_seconds_per_point']:10.2e} {s['speedup']:7.1f} {fmt(s['min_rate_ratio_qmc_over_scipy']):>10s} "
            f"{s['qmc_evaluations_per_point_median']:5.0f}|{s['scipy_evaluations_per_point_median']:<6.0f} "
            f"{s['points_with_key_qmc']:4d}|{s['points_with_key_scipy']:<3d}   "
            f"{s['qmc_default_seconds_per_point']:12.2e} {s['speedup_default']:7.1f} "
            f"{fmt(s['min_rate_ratio_default_over_scipy']):>10s}"
        )
    lines.append(
        f"qmc (warm start + continuation) {r['qmc_seconds_per_point']:.2e} s/pt, scipy {r['scipy_seconds_per_point']:.2e} "
        f"s/pt: worst-sweep speedup {r['speedup_min']:.1f}x; min rate ratio qmc/scipy (both settings) "
        f"{r['min_rate_ratio_qmc_over_scipy']:.6f}; finite-key sweep {r['finite_sweep_seconds']:.3f} s "
        f"({r['finite_sweep_seconds_default']:.3f} s with the defaults) after compilation"
    )
    lines.append("CPU seconds of this process (less sensitive to other processes): " + "; ".join(
        f"{name} qmc {s['qmc_cpu_seconds_per_point']:.2e} s/pt, scipy {s['scipy_cpu_seconds_per_point']:.2e} s/pt, "
        f"{s['speedup_cpu']:.1f}x" for name, s in r["sweeps"].items()))
    for name, s in r["sweeps"].items():
        if "optax_seconds_per_point" in s:
            worst = s["worst_point_optax_over_qmc"]
            lines.append(
                f"{name} with optax.lbfgs (zoom line search; {s['optax_mode']}): "
                f"{s['optax_seconds_per_point']:.2e} s/pt, {s['optax_time_over_qmc']:.1f}x qmc's time, "
                f"{s['speedup_optax_over_scipy']:.1f}x faster than scipy; "
                f"{s['optax_evaluations_per_point_median']:.0f} evals/pt; min rate ratio optax/scipy "
                f"{s['min_rate_ratio_optax_over_scipy']:.6f}, optax/qmc {s['min_rate_ratio_optax_over_qmc']:.6f}"
                + (f" (at {s['lengths_km'][worst]:.1f} km)" if worst >= 0 else "")
                + f", {s['points_qmc_better_than_optax_by_1e-6']} points where qmc is higher by 1e-6; "
                f"first call {s['optax_first_call_s']:.1f} s")
    for name, s in r["sweeps"].items():
        worst = f"worst point {s['lengths_km'][s['worst_point']]:.1f} km" if s["worst_point"] >= 0 else "no key"
        lines.append(f"{name}: first call (compile + run) {s['qmc_first_call_s']:.1f} s (defaults "
                     f"{s['qmc_default_first_call_s']:.1f} s); {worst}; loop=host (defaults): first call "
                     f"{s['qmc_host_first_call_s']:.1f} s, then {s['qmc_host_seconds_per_point']:.2e} s/pt, "
                     f"min rate ratio host/device {s['min_rate_ratio_host_over_default']:.9f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qmc.bench --optimize",
                                     description="qmc's optimizer against scipy L-BFGS-B on two 100-point sweeps.")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (scipy once)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--points", type=int, default=100, help="points per sweep (default 100)")
    parser.add_argument("--no-optax", action="store_true",
                        help="skip the finite-key sweep with solver='optax' (saves its ~30 s compilation)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, n_points=args.points, with_optax=not args.no_optax)
    print(table(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
