"""A free-space channel: a mean loss and a transmittance that fades around it.

The transmittance of a turbulent free-space link is T = T_mean X, with T_mean = 10^(-loss/10)
the mean channel loss (diffraction, extinction, pointing, fixed losses: :mod:`qmc.freespace.budget`)
and X >= 0 a random fading factor of mean 1 (:class:`qmc.freespace.fading.Fading`: log-normal,
Gamma-Gamma, beam wander). Every photon of a pulse sees the same T: fading is a random loss,
applied before the beam-splitter loss of each photon (Vasylyev, Semenov, Vogel, PRL 108, 220501
(2012), Eq. (1): the probability distribution of transmittance).

The exact engine averages the outcome probabilities of the fixed-transmittance link over X
(:meth:`FreeSpaceChannel.fading` quadrature; :func:`qmc.engines.exact.memoryless_table`); the
Monte Carlo engines draw X once per time slot and keep it for the slot's pulses
(:meth:`FreeSpaceChannel.frozen`). Without fading (law ``none``) the channel is the fixed loss,
bit for bit.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.channels.base import AbstractChannel, db_to_transmittance
from qmc.freespace.fading import Fading
from qmc.validation import Range

__all__ = ["FreeSpaceChannel", "has_fading"]


@pytree_dataclass
class FreeSpaceChannel(AbstractChannel):
    """A free-space channel of mean loss ``loss`` dB, fading by ``fading``.

    Args:
        loss: the mean channel loss from the transmitter to the receiver aperture's output, dB
            (detector efficiency apart).
        fading: the law of X (:class:`qmc.freespace.fading.Fading`); None or law ``none``: fixed.
        factor: one drawn value of X, frozen (:meth:`frozen`): transmittance 10^(-loss/10) factor.
    """

    loss: float = 30.0
    fading: object = None
    factor: float = 1.0

    def __post_init__(self):
        if self.fading is None:
            object.__setattr__(self, "fading", Fading())

    def checks(self):
        return [Range("loss", 0.0), Range("factor", 0.0)]

    def transmittance(self):
        """The mean transmittance times the frozen factor, at most 1 (the unbounded laws, log-normal
        and Gamma-Gamma, put some weight on T_mean X > 1 at low loss: a transmittance is at most 1,
        so those draws are capped; unfrozen, E[X] = 1 gives the mean)."""
        return jnp.minimum(db_to_transmittance(self.loss) * self.factor, 1.0)

    def loss_db(self):
        return -10.0 * jnp.log10(self.transmittance())

    def frozen(self, x) -> "FreeSpaceChannel":
        """The channel at one value X = ``x`` of its fading (fixed from then on)."""
        return dataclasses.replace(self, fading=Fading(), factor=self.factor * x)


def has_fading(channel) -> bool:
    """Whether ``channel`` fades (a static property: its law)."""
    fading = getattr(channel, "fading", None)
    return isinstance(fading, Fading) and fading.law != "none"
