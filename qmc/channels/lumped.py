"""Lumped losses and channels in series."""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.channels.base import AbstractChannel
from qmc.validation import Range

__all__ = ["Attenuator", "Series"]


@pytree_dataclass
class Attenuator(AbstractChannel):
    """A fixed loss in dB (a variable optical attenuator, a lumped free-space loss)."""

    loss: float = 0.0

    def loss_db(self):
        return self.loss

    def checks(self):
        return [Range("loss", 0.0)]


@pytree_dataclass
class Series(AbstractChannel):
    """Channels in series: their losses add in dB. ``channels`` is a tuple of channels."""

    channels: tuple = ()

    def loss_db(self):
        return sum((c.loss_db() for c in self.channels), jnp.asarray(0.0))
