"""Random numbers for the Monte Carlo engines: exact samplers on a counter-based generator.

* :mod:`qmc.random.philox`: Philox4x32-10 words for (key, counter), the same on every backend.
* :mod:`qmc.random.tables`: 64-bit threshold tables and exact alias tables (one word per draw).
* :mod:`qmc.random.binomial`: exact binomial and multinomial counts up to 2**53, Bernoulli positions.
* :mod:`qmc.random.poisson`: Poisson and negative-binomial counts up to means of about 1e15.
* :mod:`qmc.random.histogram`: tallies of cell indices, and the kernel methods per backend.
* :mod:`qmc.random.compact`: compaction of rare work (first True entries, sparse fix-ups).
"""

from qmc.random import binomial, compact, histogram, philox, poisson, tables

__all__ = ["binomial", "compact", "histogram", "philox", "poisson", "tables"]
