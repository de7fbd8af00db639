"""Phase-randomized weak coherent pulses: the attenuated laser of decoy-state QKD."""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, xlogy

from qmc._pytree import pytree_dataclass
from qmc.sources.base import AbstractSource, wavelength_check
from qmc.validation import Range

__all__ = ["WeakCoherentSource"]


@pytree_dataclass
class WeakCoherentSource(AbstractSource):
    """Phase-randomized weak coherent pulses (attenuated laser): Poisson photon number.

    P(n) = exp(-mu) mu^n / n!, G(s) = exp(-mu (1 - s)). A coherent state split by a beam splitter
    gives independent coherent states at the outputs, so photons at disjoint ports are independent
    Poisson variables (Lo, Ma, Chen, PRL 94, 230504 (2005); Ma et al., PRA 72, 012326 (2005)).

    Args:
        rep_rate_hz: pulse repetition rate, to turn bits per pulse into bits per second.
        wavelength_nm: lambda_q, the quantum signal's wavelength in nm (1550: the C band). Only
            the noise from classical traffic in the fiber depends on it (``Link.classical``).
    """

    rep_rate_hz: float = 1e9
    wavelength_nm: float = 1550.0

    def log_p_none(self, mu, x):
        return -mu * x

    def p_both(self, mu, a, b):
        # Independent Poisson ports: exact product, no cancellation for tiny a, b.
        return jnp.expm1(-mu * a) * jnp.expm1(-mu * b)

    def photon_number_pmf(self, mu, n):
        n = jnp.asarray(n, dtype=jnp.float64)
        return jnp.exp(xlogy(n, mu) - mu - gammaln(n + 1.0))

    def p_multi(self, mu):
        # 1 - e^-mu (1 + mu) as the regularized incomplete gamma function P(2, mu): the
        # subtraction from 1 keeps only an absolute precision of 1e-16, i.e. a relative error
        # eps / (mu^2 / 2) at small mu (2e-8 at mu = 1e-4).
        return gammainc(2.0, jnp.asarray(mu, dtype=jnp.float64))

    def checks(self):
        return [Range("rep_rate_hz", 0.0, lo_open=True), wavelength_check()]
