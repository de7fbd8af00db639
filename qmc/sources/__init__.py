"""Photon sources: the photon-number statistics of one emitted pulse (interface: :mod:`qmc.sources.base`)."""

from qmc.sources.base import AbstractSource
from qmc.sources.coherent import WeakCoherentSource
from qmc.sources.fock import FockSource, SinglePhotonSource
from qmc.sources.heralded import HeraldedSource

__all__ = ["AbstractSource", "WeakCoherentSource", "FockSource", "SinglePhotonSource", "HeraldedSource"]
