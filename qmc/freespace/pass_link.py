"""A pass as a link per time slot: what the engines and the pooled key of a pass read.

A pass (:class:`qmc.freespace.geometry.Pass`) is cut into slots; in slot s the channel has its
own mean loss and fading (:class:`qmc.freespace.channel.FreeSpaceChannel`: the turbulence of the
slot's elevation), the detectors their dark counts plus the sky background, and Alice sends
N_s = rep rate x slot length pulses. :class:`PassLink` holds one :class:`qmc.Link` per slot as
one PyTree whose leaves have a leading slot axis (S,), beside N_s, so that engines and analyses
vmap over the slots; a slot with N_s = 0 (cut by an elevation or time window) adds nothing.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.detectors.threshold import noise_click_probability, with_background
from qmc.freespace.channel import FreeSpaceChannel
from qmc.freespace.fading import Fading
from qmc.link import Link

__all__ = ["PassLink", "pass_link"]


@pytree_dataclass
class PassLink:
    """The slots of a pass: ``links`` (a :class:`qmc.Link` with leaves of leading axis S) and
    ``slot_pulses`` (S,), the pulses Alice sends in each slot (0: the slot is not used)."""

    links: object
    slot_pulses: object

    @property
    def n_slots(self) -> int:
        return int(jnp.shape(self.slot_pulses)[-1])

    def slot(self, s: int) -> Link:
        """The link of slot ``s``."""
        return jax.tree_util.tree_map(lambda x: x[s], self.links)

    def masked(self, keep) -> "PassLink":
        """The pass with only the slots where ``keep`` is true (the others send no pulses)."""
        return dataclasses.replace(self, slot_pulses=jnp.where(keep, self.slot_pulses, 0.0))


def pass_link(source, detector, loss_db, slot_s, fading: Fading | None = None, rytov_variance=None,
              background_photons_per_gate=0.0) -> PassLink:
    """One link per slot of a pass.

    Args:
        source: Alice's source (its ``rep_rate_hz`` sets the pulses per slot).
        detector: Bob's detectors; their dark-count probability per gate becomes
            1 - (1 - p_dark)(1 - p_sky) with the sky background's
            (:func:`qmc.detectors.threshold.noise_click_probability`: unpolarized, Poisson).
        loss_db: the mean channel loss of each slot, dB, shape (S,).
        slot_s: each slot's length, s, shape (S,) (0 for slots not used).
        fading: the fading law of every slot (None: none); its ``rytov_variance`` is replaced by
            the slot's ``rytov_variance`` (S,) when given.
        background_photons_per_gate: mean sky photons per gate at the receiver, scalar or (S,).

    Returns:
        :class:`PassLink`.
    """
    loss_db = jnp.asarray(loss_db, jnp.float64)
    shape = jnp.shape(loss_db)
    fading = Fading() if fading is None else fading
    rytov = jnp.broadcast_to(jnp.asarray(fading.rytov_variance if rytov_variance is None else rytov_variance,
                                         jnp.float64), shape)
    sky = jnp.broadcast_to(jnp.asarray(background_photons_per_gate, jnp.float64), shape)

    def one(loss, sigma2, n_sky):
        p_dark = with_background(detector.p_dark, noise_click_probability(n_sky, detector.efficiency))
        return Link(source, FreeSpaceChannel(loss, dataclasses.replace(fading, rytov_variance=sigma2)),
                    dataclasses.replace(detector, p_dark=p_dark))

    links = jax.vmap(one)(loss_db, rytov, sky)
    pulses = jnp.round(jnp.asarray(slot_s, jnp.float64) * source.rep_rate_hz)
    return PassLink(links, jnp.broadcast_to(pulses, shape))
