"""The asymptotic key rate of BBM92 (entanglement-based BB84) from gains and QBERs.

Ma, Fung, Lo, PRA 76, 012307 (2007): the pair source is basis-independent (Koashi-Preskill: the
squashed measurement of the source's output, whatever it is, is a qubit), so no decoy states are
needed and the key of matched basis b is Q_b [1 - f H2(E_b) - H2(E_b')], the phase error being
the other basis' bit error (Shor-Preskill). With key from both bases measured with probabilities
(p_z, 1 - p_z) on each side,

    R = sum_b p_b^2 Q_b [1 - f H2(E_b) - H2(E_b')],

which is Ma-Fung-Lo's R = q Q [1 - f H2(E) - H2(E)] with q = 1/2 for symmetric bases (p_b = 1/2,
equal gains and errors). Key from Z only (``key_basis`` "Z"): the b = Z term.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.keyrate import finish, h2
from qmc.engines import exact
from qmc.validation import Range

__all__ = ["BBM92Asymptotic"]


@pytree_dataclass
class BBM92Asymptotic(AbstractAnalysis):
    """Ma-Fung-Lo's asymptotic BBM92 rate per pulse (module docstring); observations with one
    class (k = 1) from :class:`qmc.protocols.BBM92`'s cells, expected or counted."""

    f_ec: float = 1.16
    name: ClassVar[str] = "bbm92"
    uses_observations: ClassVar[bool] = True
    # the rate rises as p_z -> 0 or 1 (p_z^2 + (1 - p_z)^2 of the coincidences sifted): a basis
    # bias is only worth freeing for a finite key, so only the mean pair number is free by default
    parameters: ClassVar[tuple[str, ...]] = ("mean_pair_number",)

    def checks(self):
        return [Range("f_ec", 1.0)]

    def protocol_checks(self, protocol):
        return []

    def key_rate(self, link, protocol):
        return self.key_rate_from_observations(exact.observations(link, protocol), protocol, link)

    def key_rate_from_observations(self, obs, protocol, link=None):
        gain = jnp.asarray(obs.gain, jnp.float64)[..., 0, :]
        error_gain = jnp.asarray(obs.error_gain, jnp.float64)[..., 0, :]
        detected = gain > 0
        qber = jnp.where(detected, error_gain / jnp.where(detected, gain, 1.0), 0.5)
        pb = protocol.basis_probabilities()
        per_basis = pb**2 * gain * (1.0 - self.f_ec * h2(qber) - h2(qber[..., ::-1]))
        raw = jnp.sum(per_basis * protocol.key_basis_mask(), axis=-1)
        return finish(jnp.maximum(raw, 0.0), valid=jnp.asarray(True), detected=jnp.any(detected, axis=-1),
                      y1_positive=jnp.asarray(True), unclipped=raw, gain=gain[..., 0], qber=qber[..., 0])
