"""Repeater chains: elementary links, quantum memories and entanglement swapping, simulated over
attempt rounds (not pulses) and batched over chains and parameter points with ``jit(vmap)``.

- :mod:`~qmc.repeaters.chain`: :class:`Chain` and :class:`Memory` (the ``chain.*`` and ``memory.*``
  config groups), the elementary link's success probability and fidelity;
- :mod:`~qmc.repeaters.states`: Bell-diagonal pairs, swapping, memory decay, key per pair;
- :mod:`~qmc.repeaters.purification`: BBPSSW and DEJMPS, two pairs into one, with their success
  probabilities (what an elementary link applies with ``chain.purification``);
- :mod:`~qmc.repeaters.montecarlo`: the Monte Carlo (:func:`sample_chains`);
- :mod:`~qmc.repeaters.estimate`: aggregates (waiting time, rate, fidelity, key rate, PLOB) and
  the sweep (:func:`chains_vs`);
- :mod:`~qmc.repeaters.closed_forms`: the exact results the tests check the Monte Carlo against;
- :mod:`~qmc.repeaters.reference`: the same model in plain numpy (tests and benchmark).
"""

from qmc.repeaters.chain import C_FIBER_KM_PER_S, POLICIES, PURIFICATIONS, Chain, Memory
from qmc.repeaters.estimate import chains_vs, estimate_chains, summarize
from qmc.repeaters.montecarlo import ChainSamples, sample_chains

__all__ = ["Chain", "Memory", "POLICIES", "PURIFICATIONS", "C_FIBER_KM_PER_S", "ChainSamples", "sample_chains",
           "summarize", "estimate_chains", "chains_vs"]
