"""Protocols: which pulse classes exist and how outcomes are sifted and counted."""

from qmc.protocols.bb84_decoy import DecoyBB84, BASES, OUTCOMES

__all__ = ["DecoyBB84", "BASES", "OUTCOMES"]
