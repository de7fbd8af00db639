"""What every benchmark shares: the timer, the description of the machine, and the table layout."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Sequence

import jax

__all__ = ["median_time", "machine", "machine_line", "table"]


def median_time(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """(median wall seconds, median process CPU seconds) of ``fn()`` over ``reps`` runs.

    Wall-clock rates are the headline; CPU seconds of this process are given beside them because
    on a shared machine other processes take cores (the two agree on an idle machine running one
    thread)."""
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def load_average() -> float | None:
    """The 1-minute load average, where the platform has one."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine() -> dict:
    """The machine a benchmark ran on: JAX's default device, the local devices' count, CPU count,
    load, JAX and Python versions."""
    device = jax.devices()[0]
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "device_count": jax.local_device_count(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": load_average(),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }


def machine_line(r: dict) -> str:
    """One line describing the machine of a result (keys of :func:`machine`)."""
    count = r.get("device_count", 1)
    devices = f" (x{count} local)" if count > 1 else ""
    return f"device {r['device']}{devices}, {r['cpu_count']} CPUs, load {r['load_average_1min']}, jax {r['jax']}"


def table(header: Sequence[tuple[str, int]], rows: Sequence[Sequence[object]]) -> list[str]:
    """Fixed-width lines: ``header`` is (name, width) per column (negative width: left-aligned);
    a number is written in ``.3g``, anything else as text."""
    def cell(value, width):
        text = format(value, ".3g") if isinstance(value, float) else str(value)
        return text.ljust(-width) if width < 0 else text.rjust(width)

    lines = [" ".join(cell(name, width) for name, width in header)]
    lines += [" ".join(cell(v, width) for v, (_, width) in zip(row, header)).rstrip() for row in rows]
    return lines
