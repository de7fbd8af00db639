"""Optical channels between Alice and Bob (interface: :mod:`qmc.channels.base`)."""

from qmc.channels.base import AbstractChannel, db_to_transmittance
from qmc.channels.fiber import Fiber
from qmc.channels.lumped import Attenuator, Series

__all__ = ["AbstractChannel", "Fiber", "Attenuator", "Series", "db_to_transmittance"]
