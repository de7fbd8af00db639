"""Optimized HLO of the engines on an accelerator, for reading offline.

Writes the compiled HLO text of the fast path (per histogram method), the stream engine and the
block engine under DIR, and prints how many fusions (one GPU kernel each, roughly) and loops each
has: where the fused kernels recompute the generator or materialize a one-hot, the text shows it.

    python -m qmc.bench.gpu.hlo DIR [--smoke]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re

import jax
import jax.numpy as jnp

import qmc  # noqa: F401  (float64)
from qmc.bench.streams import correlated_detector
from qmc.engines.block import sample_sessions
from qmc.engines.pulse import simulate
from qmc.engines.streams import simulate_streams
from qmc.presets import decoy_protocol, gys_link


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--smoke", action="store_true", help="small chunks (CPU)")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    chunk = 2**20 if args.smoke else 2**24
    key, n = jax.random.key(0), jnp.int64(2**30)
    link, protocol = gys_link(50.0), decoy_protocol()
    slink = dataclasses.replace(link, detector=correlated_detector(link.detector))
    programs = {f"fast_{h}": (simulate, (key, link, protocol, n),
                              dict(path="fast", chunk=chunk, methods=("search_top", h)))
                for h in ("onehot8", "split", "split_rows", "matmul")}
    programs["streams"] = (simulate_streams, (key, slink, protocol, n),
                           dict(n_streams=2**18 // (256 if args.smoke else 1), chunk_gates=64, burn_in_gates=1024))
    programs["block"] = (jax.jit(lambda k: sample_sessions(k, link, protocol, 10**9, 2**22 // (64 if args.smoke else 1),
                                                           True)), (key,), {})
    for name, (fn, fargs, kwargs) in programs.items():
        try:
            text = fn.lower(*fargs, **kwargs).compile().as_text()
        except Exception as e:  # noqa: BLE001  (one failure must not stop the others)
            print(f"{name}: failed {repr(e)[:200]}", flush=True)
            continue
        with open(os.path.join(args.out_dir, f"{name}.hlo.txt"), "w") as f:
            f.write(text)
        fusions = len(re.findall(r"^\s*\S+ = \S+ fusion\(", text, re.M))
        loops = len(re.findall(r"\bwhile\(", text))
        print(f"{name:16s} {len(text):>9d} chars  {fusions:4d} fusions  {loops:3d} while loops", flush=True)


if __name__ == "__main__":
    main()
