"""The closed-form system model of Lim et al. (2014), Sec. IV, afterpulsing included, as an engine.

Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV:

    D_k = 1 - (1 - 2 p_dc) exp(-eta_sys k),   R_k = D_k (1 + p_ap),
    e_k = p_dc + e_mis [1 - exp(-eta_sys k)] + p_ap D_k / 2

with eta_sys = eta_ch eta_Bob, the same in both bases. The paper prints eta_ch in e_k; that is a
misprint: with eta_ch the optical error would be e_mis / eta_Bob = 5 % of the detections and none
of the paper's numbers is reproduced (``as_printed=True`` keeps it, to show that). With
``p_afterpulse = 0`` the model agrees with the exact engine to first order in p_dc (the exact
engine keeps double clicks and the product (1 - p_dc)^2). The afterpulse term is the exact
engine's (:func:`qmc.engines.exact.afterpulse_observations`), one definition for both. With
classical traffic in the fiber p_dc is the background per detector of
:meth:`qmc.Link.background_click_probability` (dark counts or noise), as in the exact engine.
"""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass, static
from qmc.engines import exact
from qmc.engines.base import AbstractEngine, ExactEngine
from qmc.engines.observations import Observations
from qmc.validation import Range

__all__ = ["Lim2014Model", "MODELS", "system_model"]

MODELS = ("exact", "lim2014", "lim2014_as_printed")


@pytree_dataclass
class Lim2014Model(AbstractEngine):
    """Expected observations of Lim's system model (see the module docstring).

    Args:
        p_afterpulse: p_ap, the afterpulse probability (Lim: 4 %).
        as_printed: use the misprinted eta_ch in the error term.
    """

    p_afterpulse: float = 0.04
    as_printed: bool = static(False)

    @property
    def name(self) -> str:
        return "lim2014_as_printed" if self.as_printed else "lim2014"

    def checks(self):
        return [Range("p_afterpulse", 0.0, 1.0, hi_open=True)]

    def observations(self, key, link, protocol) -> Observations:
        """Gain R_k and error gain e_k per intensity, the same in both bases (the key is unused)."""
        del key
        det = link.detector
        eta = link.transmittance()
        mu = jnp.asarray(protocol.intensities, jnp.float64)
        eta_error = link.channel.transmittance() if self.as_printed else eta
        photon = -jnp.expm1(-eta_error * mu)
        p_dc = link.background_click_probability()  # p_dark, plus the noise of classical traffic if any
        d = 1.0 - (1.0 - 2.0 * p_dc) * jnp.exp(-eta * mu)
        gain, error_gain = exact.afterpulse_observations(d, p_dc + det.misalignment * photon, self.p_afterpulse)
        return Observations(jnp.stack([gain, gain], axis=1), jnp.stack([error_gain, error_gain], axis=1))

    def sifted_probabilities(self, link, protocol):
        """P(matched class (k, basis)) (k, 2) and P(outcome | class) (k, 2, 4) over (no click,
        correct, error, double click) as (1 - Q, Q - EQ, EQ, 0): the model has no double clicks."""
        obs = self.observations(None, link, protocol)
        q, eq = obs.gain, obs.error_gain
        p_outcome = jnp.stack([1.0 - q, q - eq, eq, jnp.zeros_like(q)], axis=-1)
        pb = protocol.basis_probabilities()
        p_class = jnp.asarray(protocol.probabilities)[:, None] * (pb**2)[None, :]
        return p_class, p_outcome


def system_model(name: str, p_afterpulse: float = 0.0):
    """The engine of a model name: ``"exact"`` (:class:`qmc.engines.ExactEngine`, which reads no
    ``p_afterpulse``: give the link's detector its own), ``"lim2014"`` or ``"lim2014_as_printed"``."""
    if name not in MODELS:
        raise ValueError(f"model = {name!r}: must be one of {', '.join(MODELS)}")
    if name == "exact":
        if float(p_afterpulse) != 0.0:
            raise ValueError("model 'exact' reads no p_afterpulse (give the link's detector its own afterpulsing, or "
                             "use model='lim2014')")
        return ExactEngine()
    return Lim2014Model(p_afterpulse, as_printed=name == "lim2014_as_printed")
