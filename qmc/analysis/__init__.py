"""Security analyses: pure functions of (observations or link, protocol) -> KeyRate
(interface: :mod:`qmc.analysis.base`)."""

from qmc.analysis.asymptotic import ASYMPTOTIC, InfiniteDecoy, NoDecoy, SinglePhoton, VacuumWeak
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.bbm92 import BBM92Asymptotic
from qmc.analysis.bbm92_finite import BBM92Finite, BBM92FiniteKeyRate
from qmc.analysis.bounds import PLOB, TGW, ChannelBound, plob_bound, tgw_bound
from qmc.analysis.finite import (
    FINITE, AsymptoticOneDecoy, AsymptoticTwoDecoy, FiniteKeyRate, FiniteLim2014, FiniteRusca2018,
)
from qmc.analysis.keyrate import REASONS, KeyRate, h2, reason_text
from qmc.analysis.model import ModelAnalysis
from qmc.engines.observations import Observations

ANALYSES = {**ASYMPTOTIC, PLOB.name: PLOB, TGW.name: TGW, **FINITE, BBM92Asymptotic.name: BBM92Asymptotic,
            BBM92Finite.name: BBM92Finite}

__all__ = [
    "AbstractAnalysis", "ModelAnalysis", "Observations", "KeyRate", "REASONS", "h2", "reason_text",
    "InfiniteDecoy", "VacuumWeak", "NoDecoy", "SinglePhoton", "PLOB", "plob_bound", "TGW", "tgw_bound", "ChannelBound", "ANALYSES", "FiniteLim2014",
    "FiniteRusca2018", "AsymptoticTwoDecoy", "AsymptoticOneDecoy", "FiniteKeyRate", "BBM92Asymptotic",
    "BBM92Finite", "BBM92FiniteKeyRate",
]
