"""qmc: GPU-accelerated Monte Carlo and exact analysis of QKD and quantum-network links.

Importing qmc enables float64 in JAX (analyses need it: decoy bounds cancel, probabilities are
tiny). Monte Carlo kernels choose their own explicit dtypes.

The names a user needs are here: the components (``Link``, ``Fiber``, ``ThresholdDetectors``,
``WeakCoherentSource``, ``DecoyBB84``), the analyses (``InfiniteDecoy``, ``VacuumWeak``,
``FiniteLim2014``, ``FiniteRusca2018``, ``PLOB``, ``TGW``, ...), the engines (``ExactEngine``,
``BlockEngine``, ``PulseEngine``, ``StreamEngine``), the optimizer (``maximize``,
``maximize_sweep``, the module ``optimize``), the studies (``studies``), published systems
(``presets``) and validation (``validate``, ``ValidationError``).
"""

import jax

jax.config.update("jax_enable_x64", True)

from qmc import analysis, channels, detectors, engines, optimize, presets, protocols, sources, studies  # noqa: E402
from qmc import sweep  # noqa: E402
from qmc.analysis import (  # noqa: E402
    ANALYSES, PLOB, TGW, AsymptoticOneDecoy, AsymptoticTwoDecoy, FiniteKeyRate, FiniteLim2014, FiniteRusca2018,
    InfiniteDecoy, KeyRate, NoDecoy, SinglePhoton, VacuumWeak,
)
from qmc.channels import Attenuator, Fiber, Series  # noqa: E402
from qmc.detectors import ThresholdDetectors  # noqa: E402
from qmc.engines import (  # noqa: E402
    BlockEngine, ExactEngine, Observations, PulseEngine, SiftedTally, StreamEngine, Tally,
)
from qmc.link import Link  # noqa: E402
from qmc.optimize import maximize, maximize_sweep  # noqa: E402
from qmc.protocols import DecoyBB84  # noqa: E402
from qmc.sources import FockSource, SinglePhotonSource, WeakCoherentSource  # noqa: E402
from qmc.validation import ValidationError, is_valid, validate  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "analysis", "channels", "detectors", "engines", "optimize", "presets", "protocols", "sources", "studies",
    "sweep", "ANALYSES", "PLOB", "TGW", "InfiniteDecoy", "VacuumWeak", "NoDecoy", "SinglePhoton", "FiniteLim2014",
    "FiniteRusca2018", "AsymptoticTwoDecoy", "AsymptoticOneDecoy", "KeyRate", "FiniteKeyRate", "Observations",
    "ExactEngine", "BlockEngine", "PulseEngine", "StreamEngine", "Tally", "SiftedTally", "maximize",
    "maximize_sweep", "Attenuator", "Fiber", "Series", "ThresholdDetectors", "Link", "DecoyBB84", "FockSource",
    "SinglePhotonSource", "WeakCoherentSource", "ValidationError", "is_valid", "validate", "__version__",
]
