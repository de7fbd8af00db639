"""Kernel variants of the Monte Carlo engines on an accelerator, timed and checked in one run.

For a GPU session with little device time: every variant must give the same tally as
the reference variant (bit for bit: the methods never change the numbers), and is timed as the
median of a few runs after a warm-up that compiles; the run size is scaled so that one run takes
about half a second. Prints a table; with ``--json PATH`` writes the numbers; the best fast-path
methods are printed last as ``best_methods=CATEGORICAL,HISTOGRAM`` for the benchmark that follows.

    python -m qmc.bench.gpu.variants [--budget-s 240] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import qmc  # noqa: F401  (float64)
from qmc._pytree import replace_path
from qmc.bench.streams import correlated_detector
from qmc.engines import fused
from qmc.random import binomial, philox
from qmc.engines.block import sample_sessions
from qmc.engines.pulse import simulate
from qmc.engines.streams import simulate_streams
from qmc.presets import decoy_protocol, gys_link

T0 = time.perf_counter()


def timed(fn, n0: int, n_max: int, target_s: float = 0.5, reps: int = 3):
    """(first call s, result at n0, median s per run at n, n): n scaled so a run takes ~target_s."""
    t = time.perf_counter()
    first = jax.block_until_ready(fn(n0))
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(fn(n0))
    per = max(time.perf_counter() - t, 1e-6) / n0
    n = int(min(n_max, max(n0, target_s / per)))
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(n))
        walls.append(time.perf_counter() - t)
    return first_s, first, statistics.median(walls), n


@contextlib.contextmanager
def patched(module, values: dict):
    """Module constants set to ``values`` for the block (they are read when tracing, so the caches
    are cleared on the way in and out), then restored."""
    saved = {name: getattr(module, name) for name in values}
    try:
        for name, value in values.items():
            setattr(module, name, value)
        jax.clear_caches()
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
        jax.clear_caches()


def generator_ceiling(n_words: int = 2**32, chunk: int = 2**24, impl: str = "philox"):
    """Words per second of a bare generator (a sum of all words, so nothing is stored).

    ``impl="philox"``: the engines' own Philox-4x32 (:func:`qmc.random.philox.words`);
    ``"rbg"``: XLA's RngBitGenerator through ``jax.random.key(..., impl="rbg")``. The engines keep
    Philox whatever this shows: JAX documents rbg's stream as
    not identical across CPU/GPU/TPU and not exact under ``vmap`` over keys (the ``jax.random``
    module docstring, "Advanced RNG configuration"), and qmc's GPU tally equals the CPU's bit for
    bit, links batched by vmap included. The number says how far the generator is from being the
    bottleneck.
    """
    pkey = jnp.asarray([1, 2], jnp.uint32)
    rkey = jax.random.key(1, impl="rbg") if impl == "rbg" else None

    @jax.jit
    def run(n):
        def body(c, acc):
            if impl == "rbg":
                w = jax.random.bits(jax.random.fold_in(rkey, c), (chunk,), jnp.uint32)
            else:
                w = philox.words(pkey, chunk, c.astype(jnp.uint32))
            return acc ^ jnp.bitwise_xor.reduce(w)
        return jax.lax.fori_loop(0, n // chunk, body, jnp.uint32(0))

    jax.block_until_ready(run(chunk))
    t = time.perf_counter()
    jax.block_until_ready(run(n_words))
    return n_words / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=240.0, help="skip variants after this many seconds")
    parser.add_argument("--json", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script itself (CPU)")
    args = parser.parse_args()
    shrink = 2**8 if args.smoke else 1
    dev = jax.devices()[0]
    print(f"device {dev.platform}:{dev.device_kind}, jax {jax.__version__}", flush=True)
    key = jax.random.key(0)
    link, protocol = gys_link(50.0), decoy_protocol()
    rows, out = [], {"device": f"{dev.platform}:{dev.device_kind}", "jax": jax.__version__}

    def over_budget():
        return time.perf_counter() - T0 > args.budget_s

    for impl in ("philox", "rbg"):
        try:
            out[f"{impl}_words_per_s"] = generator_ceiling(2**32 // shrink, 2**24 // shrink, impl)
            rows.append((f"{impl} words (ceiling)", "-", "-", out[f"{impl}_words_per_s"], 0.0, True))
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001  (a variant that fails must not stop the others)
            print(impl, "ceiling failed:", repr(e)[:300], flush=True)

    # The fast path draws by alias lookup: only the histogram method varies. onehot8 first (the
    # reference tally: the other engines' GPU choice), then the others: "fused", the fast path's
    # GPU default (pulse.fast_methods), draws and tallies in one Pallas (Triton) kernel,
    # qmc.engines.fused (on a CPU it runs in Pallas's interpreter, far too slowly for these
    # chunks: --smoke leaves it out).
    fast = [(("search_top", h), 2**24) for h in ("onehot8", "fused", "split", "split_rows", "onehot_rows", "matmul")]
    fast += [(("search_top", "fused"), 2**26), (("search_top", "split"), 2**26), (("search_top", "onehot"), 2**24)]
    if args.smoke:
        fast = [(m, c) for m, c in fast if m[1] != "fused"]
    ref, best, best_xla = None, (0.0, None), (0.0, None)
    for methods, chunk in fast:
        if over_budget():
            print("budget: skipping", methods, chunk, flush=True)
            continue
        try:
            fn = lambda n, m=methods, c=chunk: simulate(key, link, protocol, jnp.int64(n), path="fast", chunk=c, methods=m)  # noqa: E731
            first_s, t0, wall, n = timed(fn, 2**26 // shrink, 2**34 // shrink)
            counts = np.asarray(t0.counts)
            same = ref is None or np.array_equal(counts, ref)
            ref = counts if ref is None else ref
            rate = n / wall
            rows.append(("fast path", "/".join(methods), chunk, rate, first_s, same))
            out[f"fast_{'_'.join(methods)}_{chunk}"] = rate
            if same and rate > best[0]:
                best = (rate, methods, chunk)
            if same and rate > best_xla[0] and methods[1] != "fused":
                best_xla = (rate, methods, chunk)
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print("fast", methods, chunk, "failed:", repr(e)[:300], flush=True)
    # The fused kernel's shape (speed only: every shape must give the reference tally): more work
    # per program, 2 or 4 lanes per thread (independent work for each thread between memory
    # reads), 8 warps, more programs per chunk.
    shapes = [("fused, 4096 counters", {"_COUNTERS": 4096}),
              ("fused, 1024 counters", {"_COUNTERS": 1024}),
              ("fused, 2 lanes/thread", {"_STEP": 256, "_COUNTERS": 4096}),
              ("fused, 4 lanes/thread", {"_STEP": 512, "_COUNTERS": 8192}),
              ("fused, 8 warps", {"_STEP": 256, "_WARPS": 8, "_COUNTERS": 4096})]
    for what, patch in [] if args.smoke else shapes:
        if over_budget():
            continue
        try:
            with patched(fused, patch):
                fn = lambda n: simulate(key, link, protocol, jnp.int64(n), path="fast", chunk=2**24,  # noqa: E731
                                        methods=("search_top", "fused"))
                first_s, t0, wall, n = timed(fn, 2**26, 2**34)
            same = ref is not None and np.array_equal(np.asarray(t0.counts), ref)
            rows.append((what, "search_top/fused", 2**24, n / wall, first_s, same))
            out[what.replace(" ", "_").replace(",", "").replace("/", "_per_")] = n / wall
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print(what, "failed:", repr(e)[:300], flush=True)

    cheap = best[1] or ("search_top", "onehot8")
    cheap_xla = best_xla[1] or ("search_top", "onehot8")  # the other engines have no fused kernel

    # The same at a high click rate (0 km, 90 % efficient detectors: ~40 % of pulses click),
    # where scatters meet contention.
    hot = dataclasses.replace(gys_link(0.0), detector=dataclasses.replace(link.detector, efficiency=0.9))
    for methods in [("search_top", h) for h in ("onehot8", "fused", "split", "split_rows", "matmul")]:
        if over_budget() or (args.smoke and methods[1] == "fused"):
            continue
        try:
            fn = lambda n, m=methods: simulate(key, hot, protocol, jnp.int64(n), path="fast", chunk=2**24, methods=m)  # noqa: E731
            first_s, t0, wall, n = timed(fn, 2**26 // shrink, 2**34 // shrink)
            rows.append(("fast path, 0 km eff 0.9", "/".join(methods), 2**24, n / wall, first_s, True))
            out[f"fast_hot_{'_'.join(methods)}"] = n / wall
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print("hot", methods, "failed:", repr(e)[:300], flush=True)

    # With photon-number bins (288 cells, 72 packed groups in the fused kernel), and a sweep of
    # four lengths under vmap (the fused kernel's batching rule adds a grid axis): the fast path's
    # GPU default (pulse.fast_methods) must hold there too.
    lengths = jnp.asarray([10.0, 50.0, 100.0, 150.0])

    def sweep(n, m):
        one = lambda length: simulate(key, replace_path(link, "channel.length_km", length), protocol,  # noqa: E731
                                      jnp.int64(n), path="fast", chunk=2**24, methods=m).counts
        return jax.vmap(one)(lengths)

    for what, make in (("photon counts", lambda m: lambda n: simulate(
                            key, link, protocol, jnp.int64(n), path="fast", chunk=2**24, photon_counts=True,
                            methods=m).photon_counts),
                       ("vmap 4 lengths", lambda m: lambda n: sweep(n, m))):
        ref_x = None
        for methods in [] if args.smoke else [("search_top", h) for h in ("onehot8", "split_rows", "fused")]:
            if over_budget():
                continue
            try:
                first_s, t0, wall, n = timed(make(methods), 2**26, 2**34)
                got = np.asarray(t0)
                same = ref_x is None or np.array_equal(got, ref_x)
                ref_x = got if ref_x is None else ref_x
                scale = len(lengths) if what.startswith("vmap") else 1  # pulses of all the points
                rows.append((f"fast path, {what}", "/".join(methods), 2**24, scale * n / wall, first_s, same))
                out[f"fast_{what.replace(' ', '_')}_{'_'.join(methods)}"] = scale * n / wall
                print(rows[-1], flush=True)
            except Exception as e:  # noqa: BLE001
                print(what, methods, "failed:", repr(e)[:300], flush=True)

    ref = None
    for methods in [("search_top", "onehot8"), cheap_xla]:
        if over_budget():
            continue
        try:
            fn = lambda n, m=methods: simulate(key, link, protocol, jnp.int64(n), path="physical", chunk=2**24, methods=m)  # noqa: E731
            first_s, t0, wall, n = timed(fn, 2**25 // shrink, 2**32 // shrink)
            counts = np.asarray(t0.counts)
            same = ref is None or np.array_equal(counts, ref)
            ref = counts if ref is None else ref
            rows.append(("physical path", "/".join(methods), 2**24, n / wall, first_s, same))
            out[f"physical_{'_'.join(methods)}"] = n / wall
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print("physical", methods, "failed:", repr(e)[:300], flush=True)

    slink = dataclasses.replace(link, detector=correlated_detector(link.detector))
    for n_streams, methods in [(2**18 // shrink, ("search_top", "onehot8")), (2**18 // shrink, cheap_xla)]:
        if over_budget():
            continue
        try:
            gates = max(1, 2**24 // n_streams)
            fn = lambda n, s=n_streams, m=methods, g=gates: simulate_streams(  # noqa: E731
                key, slink, protocol, jnp.int64(n), n_streams=s, chunk_gates=g, burn_in_gates=1024, methods=m)
            first_s, t0, wall, n = timed(fn, 2**28 // shrink, 2**34 // shrink)
            work = n + n_streams * 1024
            rows.append((f"streams {n_streams}", "/".join(methods), gates, work / wall, first_s, True))
            out[f"streams_{n_streams}_{'_'.join(methods)}"] = work / wall
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print("streams", n_streams, methods, "failed:", repr(e)[:300], flush=True)

    # Block engine: as it is (8 inversion steps and 1 BTRS finish try per loop iteration), then
    # variants with the same counts: jnp.nonzero's scatter-add compaction, one step per iteration,
    # 4 tries per iteration (the GPU's choice until an H100 and an H200 timed 1 no slower).
    block_ref = {}
    nonzero = lambda mask, size, fill: jnp.nonzero(mask, size=size, fill_value=fill)[0]  # noqa: E731
    variants = [("block sessions", 2**22, {}), ("block sessions", 2**23, {}),
                ("block, jnp.nonzero", 2**22, {"first_true": nonzero}),
                ("block, 1 step/iteration", 2**22, {"_INVERSION_STEPS": 1}),
                ("block, 4 finish tries", 2**22, {"_FINISH_TRIES": 4})]
    for what, n_sessions, patch in variants:
        n_sessions //= shrink
        if over_budget():
            continue
        try:
            with patched(binomial, patch):
                fn = jax.jit(lambda k, s=n_sessions: sample_sessions(k, link, protocol, 10**9, s, True))
                t = time.perf_counter()
                first = jax.block_until_ready(fn(key))
                first_s = time.perf_counter() - t
                walls = []
                for i in range(3):
                    t = time.perf_counter()
                    jax.block_until_ready(fn(jax.random.key(i + 1)))
                    walls.append(time.perf_counter() - t)
            rate = n_sessions / statistics.median(walls)
            counts = np.asarray(first.counts)
            same = bool(np.array_equal(counts, block_ref.setdefault(n_sessions, counts)))
            rows.append((what, "-", n_sessions, rate, first_s, same))
            out[f"{what.replace(' ', '_')}_{n_sessions}"] = rate
            print(rows[-1], flush=True)
        except Exception as e:  # noqa: BLE001
            print(what, n_sessions, "failed:", repr(e)[:300], flush=True)

    print(f"\n{'what':24s} {'methods':16s} {'chunk':>10s} {'per s':>10s} {'first s':>8s} same")
    for what, m, c, rate, first_s, same in rows:
        print(f"{what:24s} {m:16s} {str(c):>10s} {rate:10.3g} {first_s:8.1f} {same}")
    out["best_fast"] = {"rate": best[0], "methods": best[1], "chunk": best[2]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
    print(f"elapsed {time.perf_counter() - T0:.0f} s")
    print(f"best_methods={','.join(cheap)}")


if __name__ == "__main__":
    main()
