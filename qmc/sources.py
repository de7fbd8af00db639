"""Photon sources: the photon-number statistics of one emitted pulse.

A source is described by what a detector can see of it: the probability that *no* photon of the
pulse survives a lossy path of total efficiency ``x`` (``p_none``), i.e. its probability
generating function G(s) = E[s^n] at s = 1 - x, since every photon survives independently
(beam-splitter model of loss). The exact engine needs nothing else, so a new source only
implements :meth:`log_p_none` (and optionally :meth:`p_both` for precision).

The mean photon number ``mu`` of a pulse belongs to the protocol's pulse class (intensity), not to
the source; Fock sources ignore it.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, xlogy

from qmc._pytree import pytree_dataclass, static
from qmc.validation import Range

__all__ = ["WeakCoherentSource", "SinglePhotonSource", "FockSource"]


class _Source:
    def log_p_none(self, mu, x):
        """log P(no photon survives a path of efficiency ``x``) = log G(1 - x)."""
        raise NotImplementedError

    def p_any(self, mu, x):
        """P(at least one photon survives efficiency ``x``) = 1 - G(1 - x), without cancellation."""
        return -jnp.expm1(self.log_p_none(mu, x))

    def p_both(self, mu, a, b):
        """P(photons reach both of two disjoint output ports of efficiencies ``a`` and ``b``).

        Inclusion-exclusion on the generating function: 1 - G(1-a) - G(1-b) + G(1-a-b).
        """
        return self.p_any(mu, a) + self.p_any(mu, b) - self.p_any(mu, a + b)

    def photon_number_pmf(self, mu, n):
        """P(n photons in the pulse)."""
        raise NotImplementedError

    def p_multi(self, mu):
        """P(n >= 2): the multi-photon probability (GLLP's tagged pulses)."""
        return 1.0 - self.photon_number_pmf(mu, 0) - self.photon_number_pmf(mu, 1)

    def checks(self):
        return []


@pytree_dataclass
class WeakCoherentSource(_Source):
    """Phase-randomized weak coherent pulses (attenuated laser): Poisson photon number.

    P(n) = exp(-mu) mu^n / n!, G(s) = exp(-mu (1 - s)). A coherent state split by a beam splitter
    gives independent coherent states at the outputs, so photons at disjoint ports are independent
    Poisson variables (Lo, Ma, Chen, PRL 94, 230504 (2005); Ma et al., PRA 72, 012326 (2005)).

    Args:
        rep_rate_hz: pulse repetition rate, to turn bits per pulse into bits per second.
    """

    rep_rate_hz: float = 1e9

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
        return [Range("rep_rate_hz", 0.0, lo_open=True)]


@pytree_dataclass
class FockSource(_Source):
    """A pulse with exactly ``n_photons`` photons (an ideal n-photon source): G(s) = s^n.

    Used for the yields Y_n and error rates e_n of n-photon states that decoy-state analysis
    estimates (Lo, Ma, Chen 2005); ``n_photons = 1`` is the ideal single-photon source.
    """

    n_photons: int = static(1)
    rep_rate_hz: float = 1e9

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
        return [Range("rep_rate_hz", 0.0, lo_open=True)]


def SinglePhotonSource(rep_rate_hz: float = 1e9) -> FockSource:
    """Ideal single-photon source (one photon per pulse)."""
    return FockSource(n_photons=1, rep_rate_hz=rep_rate_hz)
