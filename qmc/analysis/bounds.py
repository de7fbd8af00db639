"""Fundamental limits of point-to-point key distribution over a pure-loss channel, in secret bits
per channel use, for the link's channel transmittance only (detectors excluded): PLOB and TGW."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.keyrate import finish
from qmc.validation import is_valid

__all__ = ["plob_bound", "tgw_bound", "ChannelBound", "PLOB", "TGW"]


def plob_bound(transmittance):
    """PLOB bound -log2(1 - eta) secret bits per channel use (Pirandola, Laurenza, Ottaviani,
    Banchi, Nat. Commun. 8, 15043 (2017), Eq. (19)); +inf at eta = 1."""
    eta = jnp.asarray(transmittance)
    return jnp.where(eta < 1.0, -jnp.log1p(-jnp.minimum(eta, 1.0 - 1e-300)) / jnp.log(2.0), jnp.inf)


def tgw_bound(transmittance):
    """TGW bound log2((1 + eta) / (1 - eta)) secret bits per channel use: the squashed-entanglement
    bound of the pure-loss channel (Takeoka, Guha, Wilde, Nat. Commun. 5, 5235 (2014)); about
    2 eta / ln 2 for small eta (twice PLOB's eta / ln 2), +inf at eta = 1."""
    eta = jnp.minimum(jnp.asarray(transmittance), 1.0 - 1e-300)
    value = (jnp.log1p(eta) - jnp.log1p(-eta)) / jnp.log(2.0)
    return jnp.where(jnp.asarray(transmittance) < 1.0, value, jnp.inf)


class ChannelBound(AbstractAnalysis):
    """A bound of the channel alone: no protocol parameter changes it."""

    parameters: ClassVar[tuple[str, ...]] = ()  # the channel's transmittance only

    @staticmethod
    def bound(transmittance):
        raise NotImplementedError

    def key_rate(self, link, protocol=None):
        bound = self.bound(link.channel.transmittance())
        return finish(bound, valid=is_valid(link), detected=jnp.asarray(True), y1_positive=jnp.asarray(True))


@pytree_dataclass
class PLOB(ChannelBound):
    """The repeaterless (PLOB) bound for the link's channel transmittance (:func:`plob_bound`)."""

    name: ClassVar[str] = "plob"
    bound = staticmethod(plob_bound)


@pytree_dataclass
class TGW(ChannelBound):
    """The TGW bound for the link's channel transmittance (:func:`tgw_bound`); above PLOB at
    every transmittance."""

    name: ClassVar[str] = "tgw"
    bound = staticmethod(tgw_bound)
