"""Readable names of analyses for legends (the rows carry the registry names)."""

from __future__ import annotations

__all__ = ["ANALYSIS_NAMES", "analysis_name"]

ANALYSIS_NAMES = {
    "infinite_decoy": "Infinite decoy states",
    "vacuum_weak": "Vacuum + weak decoy",
    "no_decoy": "No decoy (GLLP)",
    "single_photon": "Ideal single-photon source",
    "plob": "PLOB bound (repeaterless)",
    "tgw": "TGW bound",
    "asymptotic_two_decoy": "Asymptotic, two decoys",
    "asymptotic_one_decoy": "Asymptotic, one decoy",
    "finite_lim2014": "Finite key (Lim 2014)",
    "finite_rusca2018": "Finite key, one decoy (Rusca 2018)",
}


def analysis_name(name: str) -> str:
    """The legend name of analysis ``name``; an unknown one is its own name, underscores as spaces."""
    return ANALYSIS_NAMES.get(name, str(name).replace("_", " "))
