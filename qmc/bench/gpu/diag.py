"""Where the fast path's time goes on an accelerator.

Times, on 2**24-pulse chunks of the benchmark's link: the bare generator, generator + categorical
search (int64 and uint32 tables), the histogram methods alone on fixed cells, the full fast path
per method, the stream engine per scan unroll, and the block engine per batch size. Every full
variant is checked against the reference tally. ``python -m qmc.bench.gpu.diag [--smoke]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import qmc  # noqa: F401
from qmc.bench.streams import correlated_detector
from qmc.engines import exact
from qmc.random import histogram, philox, tables
from qmc.engines.block import sample_sessions
from qmc.engines.pulse import simulate
from qmc.engines.streams import simulate_streams
from qmc.presets import decoy_protocol, gys_link


def med(fn, reps=5):
    jax.block_until_ready(fn())
    ws = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ws.append(time.perf_counter() - t)
    return statistics.median(ws)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    sh = 2**8 if args.smoke else 1
    print(f"device {jax.devices()[0].device_kind}, jax {jax.__version__}", flush=True)
    key = jax.random.key(0)
    link, protocol = gys_link(50.0), decoy_protocol()
    joint = protocol.class_probabilities()[..., None] * exact.outcome_table(link, protocol)
    t_hi, _ = tables.thresholds64(joint.ravel())
    alias_entry, _ = tables.alias_table(joint.ravel())
    n_cells = joint.size
    chunk = 2**24 // sh
    reps_in = 16  # chunks per timed call (a fori_loop), so launches and syncs are amortized
    pkey = jnp.asarray([1, 2], jnp.uint32)
    rows = []

    def loop(body):
        @jax.jit
        def f(t):
            return jax.lax.fori_loop(0, reps_in, lambda c, acc: acc + body(c, t), jnp.zeros(n_cells, jnp.int32))
        return f

    def words(c):
        return philox.words(pkey, chunk, c.astype(jnp.uint32))

    for name, body in [
        ("philox only", lambda c, t: jnp.zeros(n_cells, jnp.int32).at[0].set(
            jnp.bitwise_xor.reduce(words(c)).astype(jnp.int32))),
        ("philox+search64 (sum)", lambda c, t: jnp.zeros(n_cells, jnp.int32).at[0].set(
            jnp.sum(tables.categorical(words(c), t, "search64")[0]))),
        ("philox+search32 (sum)", lambda c, t: jnp.zeros(n_cells, jnp.int32).at[0].set(
            jnp.sum(tables.categorical(words(c), t, "search")[0]))),
        ("philox+alias (sum)", lambda c, t: jnp.zeros(n_cells, jnp.int32).at[0].set(
            jnp.sum(tables.alias_draw(words(c), alias_entry)[0]))),
        ("philox+cumulative (no cells)", lambda c, t: jnp.concatenate([jnp.sum(
            lax_barrier(words(c))[:, None] >= jnp.minimum(t, 0xFFFFFFFF).astype(jnp.uint32)[None, :],
            axis=0, dtype=jnp.int32), jnp.zeros(1, jnp.int32)])),
    ]:
        try:
            f = loop(body)
            w = med(lambda: f(t_hi))
            rows.append((name, reps_in * chunk / w))
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print(name, "failed", repr(e)[:300], flush=True)

    cells = jax.random.randint(jax.random.key(1), (chunk,), 0, n_cells + 1).astype(jnp.int32)
    for m in histogram.HISTOGRAM_METHODS[1:]:
        try:
            f = loop(lambda c, t, m=m: histogram.histogram(cells + (c % 2) * 0, n_cells, m))
            w = med(lambda: f(t_hi))
            rows.append((f"histogram {m} alone", reps_in * chunk / w))
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print(m, "failed", repr(e)[:300], flush=True)

    ref = None
    for methods in [("search", "onehot8"), ("search", "split"), ("search", "matmul")]:  # alias + histogram
        try:
            n = 2**33 // sh
            f = lambda m=methods: simulate(key, link, protocol, jnp.int64(n), path="fast", chunk=2**24 // sh,  # noqa: E731
                                           block_pulses=min(2**20, 2**24 // sh), methods=m)
            counts = np.asarray(f().counts)
            same = ref is None or np.array_equal(counts, ref)
            ref = counts if ref is None else ref
            rows.append((f"fast path {'/'.join(methods)} same={same}", n / med(f, 3)))
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print(methods, "failed", repr(e)[:300], flush=True)

    slink = dataclasses.replace(link, detector=correlated_detector(link.detector))
    ref = None
    for n_streams, unroll in [(2**18, 1), (2**18, 4), (2**18, 16), (2**20, 4)]:
        try:
            n_streams //= sh
            n = 2**32 // sh
            f = lambda s=n_streams, u=unroll: simulate_streams(  # noqa: E731
                key, slink, protocol, jnp.int64(n), n_streams=s, chunk_gates=max(1, 2**24 // sh // s),
                burn_in_gates=1024, methods=("search", "onehot8"), unroll=u)
            counts = np.asarray(f().counts)
            same = n_streams != 2**18 // sh or ref is None or np.array_equal(counts, ref)
            if n_streams == 2**18 // sh and ref is None:
                ref = counts
            rows.append((f"streams {n_streams} unroll {unroll} same={same}", (n + n_streams * 1024) / med(f, 3)))
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print("streams", n_streams, unroll, "failed", repr(e)[:300], flush=True)

    for s in (2**22, 2**23, 2**24):
        try:
            s //= sh
            f = lambda s=s: sample_sessions(key, link, protocol, 10**9, s, True)  # noqa: E731
            rows.append((f"block sessions {s}", s / med(f, 3)))
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print("block", s, "failed", repr(e)[:300], flush=True)
    print()
    for name, rate in rows:
        print(f"{name:44s} {rate:10.3g} /s")


def lax_barrier(x):
    return jax.lax.optimization_barrier(x)


if __name__ == "__main__":
    main()
