"""Block engine on an accelerator: sessions per second for two sizes of the BTRS rejection buffer
(1/8 and 1/32 of the batch; the counts are identical), 2**22 and 2**23 sessions of 1e9 pulses."""

import statistics
import time

import jax
import numpy as np

import qmc  # noqa: F401
from qmc.random import binomial
from qmc.engines.block import sample_sessions
from qmc.presets import decoy_protocol, gys_link

link, protocol = gys_link(50.0), decoy_protocol()
print(jax.devices()[0].device_kind, jax.__version__, flush=True)
ref = {}
for fraction in (8, 32, 128):  # noqa: B007
    binomial._FINISH_FRACTION = fraction
    jax.clear_caches()
    for s in (2**22, 2**23):
        f = lambda k, s=s: jax.block_until_ready(sample_sessions(k, link, protocol, 10**9, s, True))
        first = np.asarray(f(jax.random.key(0)).counts)
        same = bool(np.array_equal(first, ref.setdefault(s, first)))
        walls = []
        for i in range(3):
            t = time.perf_counter()
            f(jax.random.key(i + 1))
            walls.append(time.perf_counter() - t)
        print(f"buffer 1/{fraction:<4d} sessions {s:>8d}  {s / statistics.median(walls):.3g} sessions/s  same={same}",
              flush=True)
