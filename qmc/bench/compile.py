"""Compile options: ``python -m qmc.bench --compile [--runs 3] [--json]``.

The optimizer's host program (:func:`qmc.optimize.host._step`: loss, gradient, analysis output
and one BFGS step) for a finite-key (Lim et al. 2014, n_X = 1e9) and an asymptotic two-decoy
analysis on Lim's fiber system at 50 km, and the device loop's whole program
(:func:`qmc.optimize.continuation.solve`, 4 lanes, finite key), each compiled in a fresh process
with XLA's defaults and with qmc's options (:func:`qmc._compile.compiler_options`); the median of
``--runs`` compile times, and the time of one call of the host program.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from qmc.bench.timing import machine, machine_line

__all__ = ["run", "format_result"]

_SCRIPT = r"""
import json, sys, time
import numpy as np, jax, jax.numpy as jnp, qmc
from qmc import presets
from qmc._compile import compiler_options
from qmc.optimize import continuation, drivers, host
program, options = sys.argv[1], {} if sys.argv[2] == "default" else compiler_options()
start = qmc.DecoyBB84(intensities=(0.5, 0.1, 2e-4), probabilities=(0.7, 0.2, 0.1), p_z=0.9, key_basis="Z")
analysis = (qmc.AsymptoticTwoDecoy(f_ec=1.16) if program == "host_asymptotic"
            else qmc.FiniteLim2014(block_size=1e9, kappa=1e-15, eps_cor=1e-15))
space = start.parameter_space(analysis)
solver, driver = drivers._solver_and_driver("bfgs", {})
link = presets.lim2014_link(50.0)
theta = np.asarray(space.from_protocol(start, np))
if program == "device_solve":
    links = jax.tree_util.tree_map(lambda x: np.asarray(x)[None], link)
    pool = drivers._pool(start, space, 32, None, 0, 1)
    tree = {"link": None, "analysis": analysis, "protocol": start}
    fn = jax.jit(continuation._solve.__wrapped__, static_argnums=tuple(range(3, 12)))
    args = (tree, links, pool, None, space, solver, driver, 4, 1, 0, 1, False)
else:
    tree = jax.device_put({"link": None, "analysis": analysis, "protocol": start})
    item = jax.device_put(link)
    run = host._start(theta, np.eye(len(theta)), np.asarray(True), solver)
    fn = jax.jit(host._step.__wrapped__, static_argnums=(4, 5, 6, 7, 8))
    args = (tree, item, run, np.asarray(np.inf), None, space, solver, 160, 1e-7)
lowered = fn.lower(*args)
t0 = time.perf_counter()
compiled = lowered.compile(compiler_options=options) if options else lowered.compile()
seconds = time.perf_counter() - t0
call = None
if program != "device_solve":
    dynamic = args[:4]
    jax.block_until_ready(compiled(*dynamic))
    t1 = time.perf_counter()
    for _ in range(200):
        out = compiled(*dynamic)
    jax.block_until_ready(out)
    call = (time.perf_counter() - t1) / 200
print(json.dumps({"compile_s": seconds, "call_s": call}))
"""

PROGRAMS = ("host_finite", "host_asymptotic", "device_solve")


def _once(program: str, setting: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, program, setting], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{program} {setting}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(runs: int = 3) -> dict:
    """Median compile seconds (and host call seconds) per program and setting, alternating the
    settings so that a change of machine load hits both."""
    from qmc._compile import compiler_options

    out: dict = {**machine(), "runs": int(runs), "options": compiler_options(), "programs": {}}
    for program in PROGRAMS:
        samples: dict = {"default": [], "qmc": []}
        for _ in range(int(runs)):
            for setting in samples:
                samples[setting].append(_once(program, setting))
        row = {}
        for setting, values in samples.items():
            row[f"{setting}_compile_s"] = statistics.median(v["compile_s"] for v in values)
            calls = [v["call_s"] for v in values if v["call_s"] is not None]
            row[f"{setting}_call_s"] = statistics.median(calls) if calls else None
        row["compile_ratio"] = row["default_compile_s"] / row["qmc_compile_s"]
        out["programs"][program] = row
    return out


def format_result(r: dict) -> str:
    lines = [f"{machine_line(r)}; qmc's options {r['options'] or 'none (not a CPU, or not known to this jaxlib)'}; median of {r['runs']}",
             f"{'program':18s} {'default s':>10s} {'qmc s':>8s} {'ratio':>6s}   {'call default':>12s} {'call qmc':>10s}"]
    for name, p in r["programs"].items():
        def ms(x):
            return "-" if x is None else f"{x * 1e3:.3f} ms"
        lines.append(f"{name:18s} {p['default_compile_s']:10.2f} {p['qmc_compile_s']:8.2f} {p['compile_ratio']:6.2f}   "
                     f"{ms(p['default_call_s']):>12s} {ms(p['qmc_call_s']):>10s}")
    return "\n".join(lines)
