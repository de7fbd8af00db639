"""Batches split over several devices give the single device's numbers bit for bit.

The device count is fixed when JAX starts, so the comparisons run in one subprocess with four
forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``): a sweep's chunks
(the exact engine), the block engine's sessions, the pulse engine's chunks and the optimizer's
chains, each on one device and on all four, and the devices each one's outputs lie on.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import qmc
    import qmc.sweep as sweep
    from qmc import optimize
    from qmc.engines import BlockEngine, PulseEngine
    from qmc.optimize import continuation
    import reference as ref

    def bits(tree):  # exact bits: every leaf as hex of its bytes
        return [np.asarray(leaf).tobytes().hex() for leaf in jax.tree_util.tree_leaves(tree)]

    def spread(tree):  # the devices the first leaf lies on
        return len(jax.tree_util.tree_leaves(tree)[0].sharding.device_set)

    placed = []  # the devices each compiled call's outputs lie on

    def spy(compiled):
        def call(*args, **kwargs):
            out = compiled(*args, **kwargs)
            placed.append(spread(out))
            return out
        return call

    sweep._evaluate_chunk = spy(sweep._evaluate_chunk)
    continuation._solve = spy(continuation._solve)
    link, protocol = ref.gys_link(0.0, "threshold"), ref.gys_protocol()
    tree = {"link": link, "protocol": protocol}
    analysis = qmc.InfiniteDecoy(f_ec=1.22)
    fn = lambda t: analysis.key_rate(t["link"], t["protocol"])
    g = sweep.grid({"link.channel.length_km": np.linspace(0.0, 160.0, 11)})
    report = {"local_devices": jax.local_device_count(), "sweep": {}, "block": {}, "pulse": {}, "optimize": {},
              "repeaters": {}}
    for name, devices, limit in (("one", 1, None), ("all", None, None), ("two", 2, None), ("limit_two", None, 2)):
        placed.clear()
        with qmc._devices.limit(limit):  # a run's engine.devices: what devices=None means inside it
            rows = [(i.start, i.stop, out) for i, _, out in sweep.run(fn, tree, g, chunk_size=5, devices=devices)]
        report["sweep"][name] = {
            "slices": [[a, b] for a, b, _ in rows],
            "placed": list(placed),
            "bits": [b for _, _, out in rows for b in bits(out)],
            "rate": np.concatenate([np.asarray(out.rate) for _, _, out in rows]).tolist(),
        }

    key = jax.random.PRNGKey(7)
    at_50km = ref.gys_link(50.0, "threshold")
    for name, devices in (("one", 1), ("all", None)):
        # 6 sessions: padded to 8 on four devices
        tally = BlockEngine(n_pulses=10**9, n_sessions=6, devices=devices).tally(key, at_50km, protocol)
        report["block"][name] = {"bits": bits(tally), "placed": spread(tally.counts),
                                 "shape": list(tally.counts.shape), "detected": int(tally.n_detected.sum())}
        # 6 chunks of one block: devices 0 and 1 run two, 2 and 3 one; the last block is partial
        engine = PulseEngine(n_pulses=5 * 2**14 + 123, chunk=2**14, block_pulses=2**14, devices=devices)
        tally = engine.tally(key, at_50km, protocol)
        report["pulse"][name] = {"bits": bits(tally), "placed": spread(tally.counts),
                                 "sent": int(tally.counts.sum())}
        placed.clear()
        opt = optimize.maximize_sweep(analysis, link, protocol, {"link.channel.length_km": np.linspace(0, 120, 5)},
                                      n_starts=2, n_pool=4, chain_length=2, continuation=2, loop="device",
                                      devices=devices)
        report["optimize"][name] = {"bits": bits(opt), "placed": list(placed),
                                    "rate": np.asarray(opt.rate.rate).tolist()}

    from qmc.repeaters import Chain, Memory, chains_vs

    chain = Chain(n_links=4, p_link=0.2, link_fidelity=0.97, swap_probability=0.5, length_km=100.0,
                  memories_per_node=2, purification="dejmps")
    memory = Memory(t_dephasing_s=0.05, cutoff_s=0.02)
    points = np.array([[100.0], [200.0], [300.0]])
    for name, devices in (("one", 1), ("all", None)):
        # 3 points x 5 lanes = 15 lanes: padded to 16 on four devices
        out = chains_vs(jax.random.key(3), {"chain": chain, "memory": memory}, ("chain.length_km",), points,
                        n_chains=40, lanes=5, devices=devices)
        report["repeaters"][name] = {"bits": bits(out), "placed": spread(out),
                                     "attempts": np.asarray(out["mean_attempts"]).tolist()}

    refused = []
    for make in (lambda: BlockEngine(devices=5), lambda: PulseEngine(devices=0)):
        try:
            qmc.validate(make(), "engine.")
        except qmc.ValidationError as e:
            refused.append(str(e))
    for call in (lambda: BlockEngine(n_sessions=4, devices=8).tally(key, at_50km, protocol),
                 lambda: optimize.maximize(analysis, link, protocol, devices=-1)):
        try:
            call()
        except qmc.ValidationError as e:
            refused.append(str(e))
    report["refused"] = refused
    print("REPORT " + json.dumps(report))
    """
)


@functools.lru_cache(maxsize=None)
def _run_on_four_devices() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=TESTS.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def test_sweep_over_four_devices_is_bit_identical_and_split():
    report = _run_on_four_devices()
    assert report["local_devices"] == 4
    one, four, two = (report["sweep"][k] for k in ("one", "all", "two"))
    assert one["slices"] == four["slices"] == two["slices"] == [[0, 5], [5, 10], [10, 11]]
    assert one["placed"] == [1, 1, 1]
    assert four["placed"] == [4, 4, 4]  # each chunk's points (5, padded to 8) split over the 4 devices
    assert two["placed"] == [2, 2, 2]
    assert report["sweep"]["limit_two"]["placed"] == [2, 2, 2]  # engine.devices=2 reaches a sweep's default
    assert four["bits"] == one["bits"] and two["bits"] == one["bits"] == report["sweep"]["limit_two"]["bits"]
    rate = one["rate"]
    assert len(rate) == 11 and rate[0] > rate[5] > 0


def test_block_sessions_over_four_devices_are_bit_identical_and_split():
    one, four = (_run_on_four_devices()["block"][k] for k in ("one", "all"))
    assert one["shape"] == four["shape"] == [6, 3, 2, 4]
    assert one["placed"] == 1 and four["placed"] == 4
    assert four["bits"] == one["bits"] and one["detected"] > 0


def test_pulse_chunks_over_four_devices_are_bit_identical():
    one, four = (_run_on_four_devices()["pulse"][k] for k in ("one", "all"))
    assert one["sent"] == 5 * 2**14 + 123  # every pulse tallied once: no chunk lost or run twice
    assert one["placed"] == 1 and four["placed"] == 4  # the devices' tallies summed on every device
    assert four["bits"] == one["bits"]


def test_optimizer_chains_over_four_devices_are_bit_identical_and_split():
    one, four = (_run_on_four_devices()["optimize"][k] for k in ("one", "all"))
    assert one["placed"] == [1] and four["placed"] == [4]  # 3 chains, padded to 4, one per device
    assert four["bits"] == one["bits"]
    assert len(one["rate"]) == 5 and all(r > 0 for r in one["rate"])


def test_repeater_lanes_over_four_devices_are_bit_identical():
    one, four = (_run_on_four_devices()["repeaters"][k] for k in ("one", "all"))
    assert four["bits"] == one["bits"]  # purification, a cutoff and failed swaps included
    assert len(one["attempts"]) == 3 and all(a > 1 for a in one["attempts"])


def test_a_device_count_beyond_the_local_devices_is_refused():
    refused = _run_on_four_devices()["refused"]
    assert refused == [
        "engine.devices = 5 is out of range: must be null (every local device) or a whole number from 1 to 4 "
        "(the local devices)",
        "engine.devices = 0 is out of range: must be null (every local device) or a whole number from 1 to 4 "
        "(the local devices)",
        "engine.devices = 8 is out of range: must be null (every local device) or a whole number from 1 to 4 "
        "(the local devices)",
        "devices = -1 is out of range: must be null (every local device) or a whole number from 1 to 4 "
        "(the local devices)",
    ]


def test_devices_must_be_a_local_count():
    import qmc
    from qmc.engines import BlockEngine, PulseEngine
    from qmc.sweep import sweep_devices

    assert len(sweep_devices()) == len(sweep_devices(None)) >= 1
    assert len(sweep_devices(1)) == 1
    for bad in (0, -1, 10_000, 1.5, "two"):
        with pytest.raises(ValueError, match="devices"):
            sweep_devices(bad)
        for engine in (BlockEngine(devices=bad), PulseEngine(devices=bad)):
            with pytest.raises(qmc.ValidationError, match=r"^engine\.devices = .* whole number from 1 to"):
                qmc.validate(engine, "engine.")
    qmc.validate(BlockEngine(devices=1), "engine.")
    qmc.validate(PulseEngine(devices=None), "engine.")
    from qmc._devices import limit, local_devices

    with pytest.raises(qmc.ValidationError, match=r"^engine\.devices = 10000 is out of range"):
        with limit(10_000):
            pass
    with limit(1):
        assert len(local_devices()) == 1
