"""The key of a pass: the counts of all its time slots pooled into one analysis.

A satellite pass is one finite-key block whose pulses see a different channel in every slot
(:class:`qmc.freespace.pass_link.PassLink`). The expected counts of the block are the sums over
the slots, n[k, b] = sum_s N_s p_k P_b^2 Q_s[k, b] (the same for the errors), with Q_s the exact
engine's gains of slot s (fading averaged over its law); one analysis of Lim et al., PRA 89,
022307 (2014) (two decoys) or Rusca et al., APL 112, 171104 (2018) (one decoy) turns them into
the key of the pass. The decoy-state bounds hold for the pooled counts because every intensity
is sent with the same probability in every slot, so the pooled yields are the N_s-weighted means
of the slots' yields (the decoy relations are linear in the yields).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.counts import DecoyCounts
from qmc.engines import exact

__all__ = ["PooledSlots", "pooled_counts"]


def pooled_counts(pass_link, protocol) -> DecoyCounts:
    """Expected detections and errors of the whole pass (sums over the slots), and its pulses."""
    def per_slot(link):
        return DecoyCounts.per_pulse(exact.observations(link, protocol), protocol)

    per = jax.vmap(per_slot)(pass_link.links)
    n = jnp.asarray(pass_link.slot_pulses, jnp.float64)
    return DecoyCounts(jnp.einsum("s,skb->kb", n, per.detections), jnp.einsum("s,skb->kb", n, per.errors),
                       jnp.sum(n))


@pytree_dataclass
class PooledSlots(AbstractAnalysis):
    """``analysis`` (a finite-key analysis of :mod:`qmc.analysis.finite` or its asymptotic limit)
    of the pooled expected counts of a pass: ``key_rate(pass_link, protocol)`` is the key per
    pulse of the whole pass (its ``key_length`` the key of the pass). The optimizer maximizes it
    like any analysis (:func:`qmc.optimize.maximize` with the :class:`PassLink` as the link)."""

    analysis: object = None
    uses_observations: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return getattr(self.analysis, "name", "pooled")

    @property
    def finite(self) -> bool:
        return bool(getattr(self.analysis, "finite", False))

    def checks(self):
        return []

    def protocol_checks(self, protocol):
        return self.analysis.protocol_checks(protocol)

    def key_rate(self, pass_link, protocol):
        """The analysis of the pass's pooled expected counts."""
        return self.analysis.rate_from_counts(pooled_counts(pass_link, protocol), protocol)

    def key_rate_from_observations(self, obs, protocol, link=None):
        """Observed counts of a whole pass (a pooled tally's observations): the analysis itself."""
        return self.analysis.key_rate_from_observations(obs, protocol)
