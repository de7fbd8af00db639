"""Studies: whole computations (sweeps, optimizations, Monte Carlo) as plain Python yielding rows.

:mod:`qmc.studies.registry` holds the registry (the ``study`` key of a config), and
:mod:`qmc.studies.run_folder` writes a study's chunks into a run folder; one module per study:

* :mod:`qmc.studies.key_rate`: ``key_rate_vs_distance``;
* :mod:`qmc.studies.decoy_mc`: ``decoy_bb84_mc``, the Monte Carlo engines beside the exact one;
* :mod:`qmc.studies.finite_key`: ``finite_lim2014``, optimized finite-key rate versus distance;
* :mod:`qmc.studies.one_vs_two_decoy`: ``one_vs_two_decoy``;
* :mod:`qmc.studies.finite_key_mc`: ``finite_key_mc``, Monte Carlo sessions beside the bound;
* :mod:`qmc.studies.optimize_link`: ``optimize_link``, the optimal protocol for a link;
* :mod:`qmc.studies.afterpulsing`: ``afterpulsing``, the closed form against the stream engine;
* :mod:`qmc.studies.wdm`: ``wdm_coexistence``, key rate versus distance beside classical traffic.
* :mod:`qmc.studies.wdm_plan`: ``wdm_band_plan`` (O band against C band) and ``wdm_power_budget``
  (the largest classical launch power with a key).
"""

from qmc.studies.key_rate import KEY_RATE_COLUMNS, key_rate_vs_distance, protocol_for
from qmc.studies.registry import STUDIES, STUDY_MODULES, Chunk, Study, get, names, register
from qmc.studies.plan import ChunkPlan, wants
from qmc.studies.run_folder import Interrupted, execute, finished_chunks, resumable
from qmc.studies.settings import axis_values

__all__ = [
    "Chunk", "Study", "STUDIES", "STUDY_MODULES", "register", "get", "names", "execute", "Interrupted", "axis_values",
    "key_rate_vs_distance", "KEY_RATE_COLUMNS", "protocol_for", "ChunkPlan", "wants", "finished_chunks", "resumable",
]
