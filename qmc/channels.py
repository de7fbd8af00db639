"""Optical channels between Alice and Bob, described by their loss.

Photon loss is a beam splitter of transmittance eta acting on every photon independently, so a
channel is summarized by its total loss in dB; channels in series add their losses in dB
(multiply their transmittances).
"""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.validation import Range

__all__ = ["Fiber", "Attenuator", "Series", "db_to_transmittance"]


def db_to_transmittance(loss_db):
    """Transmittance 10^(-loss_db / 10)."""
    return 10.0 ** (-jnp.asarray(loss_db) / 10.0)


class _Channel:
    def loss_db(self):
        raise NotImplementedError

    def transmittance(self):
        """Probability that one photon entering the channel leaves it."""
        return db_to_transmittance(self.loss_db())


@pytree_dataclass
class Fiber(_Channel):
    """Single-mode fiber span: loss = loss_db_per_km * length_km + insertion_loss_db.

    Args:
        length_km: fiber length in km.
        loss_db_per_km: attenuation coefficient (0.21 dB/km in Gobby, Yuan, Shields, APL 84, 3762
            (2004); about 0.2 dB/km for standard SMF-28 at 1550 nm).
        insertion_loss_db: fixed extra loss (connectors, splices, filters) in dB.
    """

    length_km: float = 50.0
    loss_db_per_km: float = 0.2
    insertion_loss_db: float = 0.0

    def loss_db(self):
        return self.loss_db_per_km * self.length_km + self.insertion_loss_db

    def checks(self):
        return [
            Range("length_km", 0.0),
            Range("loss_db_per_km", 0.0),
            Range("insertion_loss_db", 0.0),
        ]


@pytree_dataclass
class Attenuator(_Channel):
    """A fixed loss in dB (a variable optical attenuator, a lumped free-space loss)."""

    loss: float = 0.0

    def loss_db(self):
        return self.loss

    def checks(self):
        return [Range("loss", 0.0)]


@pytree_dataclass
class Series(_Channel):
    """Channels in series: their losses add in dB. ``channels`` is a tuple of channels."""

    channels: tuple = ()

    def loss_db(self):
        return sum((c.loss_db() for c in self.channels), jnp.asarray(0.0))
