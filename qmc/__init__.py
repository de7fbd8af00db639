"""qmc: GPU-accelerated Monte Carlo and exact analysis of QKD and quantum-network links.

Importing qmc enables float64 in JAX (analyses need it: decoy bounds cancel, probabilities are
tiny). Monte Carlo kernels choose their own explicit dtypes.
"""

import jax

jax.config.update("jax_enable_x64", True)

from qmc import analysis, channels, detectors, engines, protocols, sources, sweep  # noqa: E402
from qmc.analysis import (  # noqa: E402
    ANALYSES, PLOB, InfiniteDecoy, KeyRate, NoDecoy, SinglePhoton, VacuumWeak,
)
from qmc.engines import Observations  # noqa: E402
from qmc.channels import Attenuator, Fiber, Series  # noqa: E402
from qmc.detectors import ThresholdDetectors  # noqa: E402
from qmc.link import Link  # noqa: E402
from qmc.protocols import DecoyBB84  # noqa: E402
from qmc.sources import FockSource, SinglePhotonSource, WeakCoherentSource  # noqa: E402
from qmc.validation import ValidationError, is_valid, validate  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "analysis", "channels", "detectors", "engines", "protocols", "sources", "sweep", "ANALYSES", "PLOB",
    "InfiniteDecoy", "KeyRate", "NoDecoy", "Observations", "SinglePhoton", "VacuumWeak", "Attenuator",
    "Fiber", "Series", "ThresholdDetectors", "Link", "DecoyBB84", "FockSource", "SinglePhotonSource",
    "WeakCoherentSource", "ValidationError", "is_valid", "validate", "__version__",
]
