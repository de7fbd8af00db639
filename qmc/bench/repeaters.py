"""Repeater chains per second: the JAX Monte Carlo beside the same model in plain numpy.

Three chains, from a simple one to the full model: two links with perfect memories and swaps;
four links with swaps that succeed half the time (memory efficiency 0.9), a cutoff of 40 rounds
and dephasing memories; eight links by nested doubling with a cutoff of 100 rounds. Each is
timed with :func:`qmc.repeaters.sample_chains` (per chain: attempts and memory time) and with
:func:`qmc.repeaters.reference.numpy_chains` twice: the same event-by-event algorithm vectorized
over chains (``numpy events``), and the model stepped round by round (``numpy rounds``, one
uniform per waiting link per round). Same outputs per chain in all three.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from qmc.bench.timing import median_time
from qmc.repeaters import Chain, Memory, sample_chains
from qmc.repeaters.montecarlo import chain_parameters
from qmc.repeaters.reference import numpy_chains

__all__ = ["CASES", "run_repeaters", "repeaters_rows"]

CASES = {  # name: (chain, cutoff in rounds or None, memory without the cutoff)
    "2 links": (Chain(n_links=2, p_link=0.01, link_fidelity=0.98, length_km=100.0), None, Memory()),
    "4 links, swap 1/2, cutoff": (Chain(n_links=4, p_link=0.05, link_fidelity=0.98, swap_probability=0.5,
                                        length_km=200.0), 40, Memory(t_dephasing_s=0.1, efficiency=0.9)),
    "8 links nested, cutoff": (Chain(n_links=8, p_link=0.05, link_fidelity=0.98, policy="nested",
                                     length_km=400.0), 100, Memory(t_depolarizing_s=1.0)),
}


def _memory(chain, cut, memory):
    if cut is None:
        return memory
    return dataclasses.replace(memory, cutoff_s=(cut + 0.5) * float(chain.attempt_time_s()))


def run_repeaters(quick: bool, reps: int) -> dict:
    """Chains per second (wall and process CPU) of JAX and both numpy versions for each case."""
    key = jax.random.key(0)
    big = jax.default_backend() != "cpu"
    n = 2**22 if big else (2**16 if quick else 2**18)
    n_events, n_rounds = (2**13, 2**11) if quick else (2**15, 2**13)
    out: dict = {"repeaters_chains": n, "repeaters_numpy_event_chains": n_events,
                 "repeaters_numpy_round_chains": n_rounds}
    for name, (chain, cut, memory) in CASES.items():
        tag = name.split(",")[0].replace(" ", "_")
        memory = _memory(chain, cut, memory)
        p, _, q = (float(x) for x in chain_parameters(chain, memory))

        def go(chain=chain, memory=memory):
            return jax.block_until_ready(sample_chains(key, chain, memory, n))

        t0 = time.perf_counter()
        go()
        out[f"repeaters_{tag}_first_call_s"] = time.perf_counter() - t0
        wall, cpu = median_time(go, reps)
        out[f"repeaters_{tag}_chains_per_s"], out[f"repeaters_{tag}_chains_per_cpu_s"] = n / wall, n / cpu
        for kind, m, by_round in (("event", n_events, False), ("round", n_rounds, True)):
            rng = np.random.default_rng(0)
            def go_numpy(rng=rng, m=m, chain=chain, p=p, q=q, cut=cut, by_round=by_round):
                return numpy_chains(rng, m, chain.n_links, p, q, cut, chain.policy, by_round=by_round)

            wall, cpu = median_time(go_numpy, reps)
            out[f"repeaters_numpy_{kind}_{tag}_chains_per_s"] = m / wall
            out[f"repeaters_numpy_{kind}_{tag}_chains_per_cpu_s"] = m / cpu
            out[f"ratio_repeaters_{tag}_to_numpy_{kind}"] = out[f"repeaters_{tag}_chains_per_s"] / (m / wall)
    return out


def repeaters_rows(r: dict) -> list[tuple]:
    """Rows (what, unit, per wall second, per CPU second) of the engine benchmark's table."""
    rows = []
    for name in CASES:
        tag = name.split(",")[0].replace(" ", "_")
        rows.append((f"repeaters, {name}", "chains/s", r[f"repeaters_{tag}_chains_per_s"],
                     r[f"repeaters_{tag}_chains_per_cpu_s"]))
        for kind in ("event", "round"):
            rows.append((f"numpy {kind}s, {name}", "chains/s", r[f"repeaters_numpy_{kind}_{tag}_chains_per_s"],
                         r[f"repeaters_numpy_{kind}_{tag}_chains_per_cpu_s"]))
    for name in CASES:
        tag = name.split(",")[0].replace(" ", "_")
        for kind in ("event", "round"):
            rows.append((f"repeaters / numpy {kind}s, {name}", "ratio", r[f"ratio_repeaters_{tag}_to_numpy_{kind}"], ""))
    return rows


if __name__ == "__main__":
    import argparse
    import json

    from qmc.bench.timing import machine, machine_line, table

    parser = argparse.ArgumentParser(prog="python -m qmc.bench.repeaters")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    result = {**machine(), **run_repeaters(args.quick, args.reps)}
    print(machine_line(result))
    print("\n".join(table([("what", -48), ("unit", -9), ("per s", 10), ("per CPU s", 10)], repeaters_rows(result))))
    print(json.dumps(result))
