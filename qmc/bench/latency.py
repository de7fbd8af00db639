"""Time to a first answer: ``python -m qmc.bench --latency [--json] [--runs 3]``.

Every target runs in a fresh Python process with JAX's persistent compilation cache off
(``QMC_CACHE_DIR=`` and no ``JAX_COMPILATION_CACHE_DIR``), timed from the process's start to its
end, import and compilation included; the median of ``--runs`` runs is reported:

* ``finite_point``: one optimized finite-key point, Lim et al. (2014) on their fiber system at
  50 km, n_X = 1e9, every intensity but mu3, the probabilities and p_z free;
* ``asymptotic_point``: one optimized asymptotic two-decoy point, the same link, everything free;
* ``optimize_link_point``: the first as a command, ``qmc experiment=optimize_link
  sweep.length_km.values=[50] check.n_sessions=0`` (Hydra, the table, the figure);
* ``finite_sweep_100``: a 100-point optimized finite-key sweep, 0-200 km;
* ``default_study``: the command ``qmc`` (the default study);
* ``finite_lim2014_study``: ``qmc experiment=finite_lim2014``;
* ``default_study_100001``: ``qmc sweep.length_km.step=0.002``: the default study on 100,001
  lengths (six analyses, the signal intensity optimized at each), its table and figure.

When TNO's ``tno.quantum.communication.qkd_key_rate`` is importable, its finite-key and two-decoy
optimizations of one point (BB84, its own detector model at the same loss) are timed the same way
(``tno_finite_point``, ``tno_two_decoy_point``): the time a user waits for the same question
with that package.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

from qmc.bench.timing import machine, machine_line

__all__ = ["run", "format_result", "TARGETS", "SCRIPTS"]

_LIM = """
import qmc
from qmc import presets
start = qmc.DecoyBB84(intensities=(0.5, 0.1, 2e-4), probabilities=(0.7, 0.2, 0.1), p_z=0.9, key_basis="Z")
"""

SCRIPTS = {
    "finite_point": _LIM + """
analysis = qmc.FiniteLim2014(block_size=1e9, kappa=1e-15, eps_cor=1e-15)
opt = qmc.maximize(analysis, presets.lim2014_link(50.0), start)
print(float(opt.rate.rate))
""",
    "asymptotic_point": _LIM + """
opt = qmc.maximize(qmc.AsymptoticTwoDecoy(f_ec=1.16), presets.lim2014_link(50.0), start)
print(float(opt.rate.rate))
""",
    "finite_sweep_100": _LIM + """
import numpy as np
analysis = qmc.FiniteLim2014(block_size=1e9, kappa=1e-15, eps_cor=1e-15)
opt = qmc.maximize_sweep(analysis, presets.lim2014_link(0.0), start, {"link.channel.length_km": np.linspace(0, 200, 100)})
print(float(opt.rate.rate[50]))
""",
    "tno_finite_point": """
from tno.quantum.communication.qkd_key_rate.quantum import standard_detector
from tno.quantum.communication.qkd_key_rate.quantum.bb84 import BB84FiniteKeyRateEstimate
estimate = BB84FiniteKeyRateEstimate(detector=standard_detector, number_of_pulses=1e12)
x, rate = estimate.optimize_rate(attenuation=10.0)
print(rate)
""",
    "tno_two_decoy_point": """
from tno.quantum.communication.qkd_key_rate.quantum import standard_detector
from tno.quantum.communication.qkd_key_rate.quantum.bb84 import BB84AsymptoticKeyRateEstimate
estimate = BB84AsymptoticKeyRateEstimate(detector=standard_detector, number_of_decoy=2)
x, rate = estimate.optimize_rate(attenuation=10.0)
print(rate)
""",
}

COMMANDS = {
    "optimize_link_point": ["experiment=optimize_link", "sweep.length_km.values=[50]", "check.n_sessions=0"],
    "default_study": [],
    "finite_lim2014_study": ["experiment=finite_lim2014"],
    "default_study_100001": ["sweep.length_km.step=0.002"],
}

TARGETS = {  # seconds, on the 2-core CPU
    "finite_point": 5.0, "optimize_link_point": 5.0, "asymptotic_point": 3.0, "finite_sweep_100": 10.0, "default_study": 10.0,
    "finite_lim2014_study": 20.0, "default_study_100001": 60.0,
}


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["QMC_CACHE_DIR"] = ""
    return env


def _time_once(name: str, folder: str) -> float:
    if name in SCRIPTS:
        command = [sys.executable, "-c", SCRIPTS[name]]
    else:
        command = [sys.executable, "-m", "qmc.cli", *COMMANDS[name], f"hydra.run.dir={folder}/{name}"]
    start = time.perf_counter()
    done = subprocess.run(command, env=_environment(), cwd=folder, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def run(runs: int = 3, names=None) -> dict:
    """Median wall seconds of every target (and TNO's, when installed) over ``runs`` fresh processes."""
    names = list(names or [*SCRIPTS, *COMMANDS])
    if importlib.util.find_spec("tno") is None or importlib.util.find_spec("tno.quantum.communication.qkd_key_rate") is None:
        names = [n for n in names if not n.startswith("tno_")]
    out: dict = {**machine(), "runs": int(runs), "targets_s": TARGETS, "seconds": {}, "all_seconds": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            times = [_time_once(name, folder) for _ in range(int(runs))]
            out["all_seconds"][name] = times
            out["seconds"][name] = statistics.median(times)
    s = out["seconds"]
    if "tno_finite_point" in s and "finite_point" in s:
        out["finite_point_over_tno"] = s["finite_point"] / s["tno_finite_point"]
    if "tno_two_decoy_point" in s and "asymptotic_point" in s:
        out["asymptotic_point_over_tno"] = s["asymptotic_point"] / s["tno_two_decoy_point"]
    out["met"] = {name: s[name] < target for name, target in TARGETS.items() if name in s}
    if "finite_point_over_tno" in out:
        out["met"]["finite_point_under_half_of_tno"] = out["finite_point_over_tno"] < 0.5
    return out


def format_result(r: dict) -> str:
    """The latency benchmark as a plain-text table."""
    lines = [f"{machine_line(r)}; fresh processes, persistent cache off, median of {r['runs']}",
             f"{'target':24s} {'seconds':>8s} {'target s':>9s} {'met':>4s}   runs"]
    for name, seconds in r["seconds"].items():
        target = r["targets_s"].get(name)
        met = "-" if target is None else ("yes" if seconds < target else "NO")
        runs = " ".join(f"{t:.1f}" for t in r["all_seconds"][name])
        lines.append(f"{name:24s} {seconds:8.2f} {'-' if target is None else f'{target:.0f}':>9s} {met:>4s}   {runs}")
    for key in ("finite_point_over_tno", "asymptotic_point_over_tno"):
        if key in r:
            lines.append(f"{key}: {r[key]:.2f}")
    return "\n".join(lines)
