"""Protocols: which pulse classes exist, how outcomes are sifted, and which parameters are free
(interface: :mod:`qmc.protocols.base`)."""

from qmc.protocols.base import AbstractProtocol
from qmc.protocols.bb84_decoy import BASES, KEY_BASES, OUTCOMES, DecoyBB84
from qmc.protocols.bbm92 import BBM92
from qmc.protocols.decoy_space import DecoySpace

__all__ = ["AbstractProtocol", "DecoyBB84", "BBM92", "DecoySpace", "BASES", "KEY_BASES", "OUTCOMES"]
