"""Where a GPU's fast-path tally departs from the CPU's (diagnostic; one line per fiber length).

For each length: the GPU's default kernels (the fused one) against its XLA tally, the GPU's XLA
tally against the CPU's, and whether the two backends built the same alias table (its cuts come
from float64 probabilities, which they may round differently). Run on a GPU machine:

    python -m qmc.bench.gpu.crosscheck
"""
import jax
import jax.numpy as jnp
import numpy as np

import qmc  # noqa: F401
from qmc._pytree import replace_path
from qmc.engines import exact
from qmc.random import tables
from qmc.engines.pulse import simulate
from qmc.presets import decoy_protocol, gys_link

PROTO = decoy_protocol()
cpu = jax.devices("cpu")[0]
block, key, n = 2**16, jax.random.key(12), jnp.int64(5 * 2**16 + 999)
for length in (0.0, 25.0, 100.0):
    link = replace_path(gys_link(0.0), "channel.length_km", length)
    go = lambda m: np.asarray(simulate(key, link, PROTO, n, path="fast", chunk=4 * block, block_pulses=block,  # noqa: E731
                                       methods=m).counts)
    table = lambda: [np.asarray(a) for a in tables.alias_table(  # noqa: E731
        (PROTO.class_probabilities()[..., None] * exact.outcome_table(link, PROTO)).ravel())]
    g_fused, g_xla, g_tab = go(None), go(("search_top", "onehot8")), table()
    with jax.default_device(cpu):
        c_xla, c_tab = go(("compare", "scatter")), table()
    print(f"{length:6.1f} km: gpu fused == gpu xla {np.array_equal(g_fused, g_xla)}, gpu == cpu "
          f"{np.array_equal(g_xla, c_xla)} (|diff| {np.abs(g_xla - c_xla).sum()}), alias tables equal "
          f"{all(np.array_equal(a, b) for a, b in zip(g_tab, c_tab))}", flush=True)
