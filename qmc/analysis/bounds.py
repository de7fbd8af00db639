"""Fundamental limits of point-to-point key distribution."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.keyrate import finish
from qmc.validation import is_valid

__all__ = ["plob_bound", "PLOB"]


def plob_bound(transmittance):
    """PLOB bound -log2(1 - eta) secret bits per channel use (Pirandola, Laurenza, Ottaviani,
    Banchi, Nat. Commun. 8, 15043 (2017), Eq. (19)); +inf at eta = 1."""
    eta = jnp.asarray(transmittance)
    return jnp.where(eta < 1.0, -jnp.log1p(-jnp.minimum(eta, 1.0 - 1e-300)) / jnp.log(2.0), jnp.inf)


@pytree_dataclass
class PLOB(AbstractAnalysis):
    """The repeaterless bound for the link's channel transmittance only (detectors excluded)."""

    name: ClassVar[str] = "plob"
    parameters: ClassVar[tuple[str, ...]] = ()  # the channel's transmittance only

    def key_rate(self, link, protocol=None):
        bound = plob_bound(link.channel.transmittance())
        return finish(bound, valid=is_valid(link), detected=jnp.asarray(True), y1_positive=jnp.asarray(True))
