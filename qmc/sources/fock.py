"""Fock-state sources: exactly n photons per pulse (the ideal single-photon source is n = 1)."""

from __future__ import annotations

import math

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass, static
from qmc.sources.base import AbstractSource, wavelength_check
from qmc.validation import Range

__all__ = ["FockSource", "SinglePhotonSource"]


@pytree_dataclass
class FockSource(AbstractSource):
    """A pulse with exactly ``n_photons`` photons (an ideal n-photon source): G(s) = s^n.

    Used for the yields Y_n and error rates e_n of n-photon states that decoy-state analysis
    estimates (Lo, Ma, Chen 2005); ``n_photons = 1`` is the ideal single-photon source.
    """

    n_photons: int = static(1)
    rep_rate_hz: float = 1e9
    wavelength_nm: float = 1550.0  # lambda_q in nm, as WeakCoherentSource's (noise from classical traffic)

    def log_p_none(self, mu, x):
        if self.n_photons == 0:  # the vacuum: 0 * log(0) would be NaN at x = 1
            return jnp.zeros_like(jnp.asarray(x, dtype=jnp.float64))
        return self.n_photons * jnp.log1p(-x)

    def p_both(self, mu, a, b):
        # A sum of positive multinomial terms (i >= 1 photons at port a, j >= 1 at port b, the
        # rest lost) instead of inclusion-exclusion, which cancels: it gave a single photon a
        # double-click probability of order 1e-17, sometimes negative. n is static and small.
        # Terms (i, j) and (j, i) are added in pairs so that swapping the ports is exact.
        n = self.n_photons
        lost = jnp.maximum(1.0 - (a + b), 0.0)  # a + b <= 1, up to rounding
        total = jnp.zeros(jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b)))
        for i in range(1, n):
            for j in range(i, n - i + 1):
                weight = math.comb(n, i) * math.comb(n - i, j)
                pair = a**i * b**j if i == j else a**i * b**j + a**j * b**i
                total = total + weight * pair * lost ** (n - i - j)
        return total

    def photon_number_pmf(self, mu, n):
        return jnp.where(jnp.asarray(n) == self.n_photons, 1.0, 0.0)

    def checks(self):
        return [Range("rep_rate_hz", 0.0, lo_open=True), wavelength_check()]


def SinglePhotonSource(rep_rate_hz: float = 1e9, wavelength_nm: float = 1550.0) -> FockSource:
    """Ideal single-photon source (one photon per pulse)."""
    return FockSource(n_photons=1, rep_rate_hz=rep_rate_hz, wavelength_nm=wavelength_nm)
