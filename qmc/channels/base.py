"""The channel interface: a lossy optical path between Alice and Bob.

Photon loss is a beam splitter of transmittance eta acting on every photon independently, so a
channel is summarized by its total loss in dB; channels in series add their losses in dB
(multiply their transmittances). A channel implements :meth:`AbstractChannel.loss_db`; the
engines read :meth:`AbstractChannel.transmittance`.
"""

from __future__ import annotations

import abc

import jax.numpy as jnp

__all__ = ["AbstractChannel", "db_to_transmittance"]


def db_to_transmittance(loss_db):
    """Transmittance 10^(-loss_db / 10)."""
    return 10.0 ** (-jnp.asarray(loss_db) / 10.0)


class AbstractChannel(abc.ABC):
    """An optical channel, described by its loss."""

    @abc.abstractmethod
    def loss_db(self):
        """Total loss of the channel in dB (traceable)."""

    def transmittance(self):
        """Probability that one photon entering the channel leaves it."""
        return db_to_transmittance(self.loss_db())

    def checks(self):
        """Range checks of the fields (:mod:`qmc.validation`)."""
        return []
