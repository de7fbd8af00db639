"""Security analyses: pure functions of (observations or link, protocol) -> KeyRate."""

from qmc.engines.observations import Observations
from qmc.analysis.keyrate import KeyRate, REASONS, h2, reason_text
from qmc.analysis.asymptotic import ASYMPTOTIC, InfiniteDecoy, NoDecoy, SinglePhoton, VacuumWeak
from qmc.analysis.bounds import PLOB, plob_bound
from qmc.analysis.finite import (
    FINITE, AsymptoticOneDecoy, AsymptoticTwoDecoy, FiniteKeyRate, FiniteLim2014, FiniteRusca2018,
)

ANALYSES = {**ASYMPTOTIC, PLOB.name: PLOB}
ANALYSES.update(FINITE)  # finite_lim2014, finite_rusca2018, asymptotic_two_decoy, asymptotic_one_decoy

__all__ = [
    "Observations", "KeyRate", "REASONS", "h2", "reason_text", "InfiniteDecoy", "VacuumWeak",
    "NoDecoy", "SinglePhoton", "PLOB", "plob_bound", "ANALYSES",
    "FiniteLim2014", "FiniteRusca2018", "AsymptoticTwoDecoy", "AsymptoticOneDecoy", "FiniteKeyRate",
]
