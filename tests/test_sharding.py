"""A sweep's chunks split over several devices give the single device's numbers bit for bit.

The device count is fixed when JAX starts, so the comparison runs in a subprocess with four
forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import qmc
    import qmc.sweep as sweep
    import reference as ref

    placed = []  # the devices each chunk's outputs lie on
    compiled = sweep._evaluate_chunk

    def spy(fn, paths, tree, points):
        out = compiled(fn, paths, tree, points)
        placed.append(len(jax.tree_util.tree_leaves(out)[0].sharding.device_set))
        return out

    sweep._evaluate_chunk = spy
    tree = {"link": ref.gys_link(0.0, "threshold"), "protocol": ref.gys_protocol()}
    analysis = qmc.InfiniteDecoy(f_ec=1.22)
    fn = lambda t: analysis.key_rate(t["link"], t["protocol"])
    g = sweep.grid({"link.channel.length_km": np.linspace(0.0, 160.0, 11)})
    report = {"local_devices": jax.local_device_count()}
    for name, devices in (("one", 1), ("all", None), ("two", 2)):
        placed.clear()
        rows = [(i.start, i.stop, out) for i, _, out in sweep.run(fn, tree, g, chunk_size=5, devices=devices)]
        report[name] = {
            "slices": [[a, b] for a, b, _ in rows],
            "placed": list(placed),
            # exact bits: every leaf of every chunk as hex of its float64 bytes
            "bits": [np.asarray(leaf, dtype=np.float64).tobytes().hex()
                     for _, _, out in rows for leaf in jax.tree_util.tree_leaves(out)],
            "rate": np.concatenate([np.asarray(out.rate) for _, _, out in rows]).tolist(),
        }
    print("REPORT " + json.dumps(report))
    """
)


def _run_on_four_devices() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=TESTS.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def test_sweep_over_four_devices_is_bit_identical_and_split():
    report = _run_on_four_devices()
    assert report["local_devices"] == 4
    one, four, two = report["one"], report["all"], report["two"]
    assert one["slices"] == four["slices"] == two["slices"] == [[0, 5], [5, 10], [10, 11]]
    assert one["placed"] == [1, 1, 1]
    assert four["placed"] == [4, 4, 4]  # each chunk's points (5, padded to 8) split over the 4 devices
    assert two["placed"] == [2, 2, 2]
    assert four["bits"] == one["bits"] and two["bits"] == one["bits"]
    rate = one["rate"]
    assert len(rate) == 11 and rate[0] > rate[5] > 0


def test_devices_must_be_a_local_count():
    import pytest

    from qmc.sweep import sweep_devices

    assert len(sweep_devices()) == len(sweep_devices(None)) >= 1
    assert len(sweep_devices(1)) == 1
    for bad in (0, -1, 10_000):
        with pytest.raises(ValueError, match="devices"):
            sweep_devices(bad)
