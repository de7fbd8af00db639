"""A heralded single-photon source: one photon of an SPDC pair detected locally, the other sent.

The pump pulse makes n pairs with the pair statistics of :mod:`qmc.entanglement.spdc` (mean mu,
the protocol's intensity): "thermal", the two-mode squeezed state of Ma, Fung, Lo, PRA 76, 012307
(2007), Eq. (5), P(n) = (n + 1) lambda^n / (1 + lambda)^(n + 2), lambda = mu / 2, generating
function G(s) = (1 + lambda (1 - s))^-2; or "poisson", G(s) = exp(-mu (1 - s)). Both arms hold
the same n. The idler arm goes to a local threshold detector of efficiency eta_h (coupling
included) and dark-count probability p_d per pulse, which fires with

    P(herald | n) = 1 - (1 - p_d) (1 - eta_h)^n,

and the signal arm is sent only when it fires (Pittman, Jacobs, Franson, Opt. Commun. 246, 545
(2005): the conditional photon number of a pulsed SPDC source heralded by a threshold detector).
Bayes: P(n | herald) = P(n) P(herald | n) / P_h, and with c = 1 - p_d, t = 1 - eta_h

    P_h    = 1 - c G(t),
    G_h(s) = E[s^n | herald] = [G(s) - c G(s t)] / P_h.

Everything the engines read follows from G_h (:mod:`qmc.sources.base`: the probability that no
photon survives efficiency x is G_h(1 - x)), so this is an :class:`AbstractSource` like the weak
coherent pulses, and the exact, block and pulse engines and the analyses that read
``photon_number_pmf`` (infinite decoys, no decoy) take it unchanged. The decoy-state bounds that
assume Poisson photon numbers (the vacuum + weak decoy and finite-key analyses) do not hold for it.

Conventions: ``mu`` (the protocol's intensity) is the pump's mean pair number; every per-pulse
quantity of an engine is per *heralded* pulse (Alice keeps only heralded slots); multiply by
:meth:`HeraldedSource.herald_probability` for per pump pulse. ``rep_rate_hz`` is the pump's rate.

The heralded g2(0) = <n (n - 1)> / <n>^2 = G_h''(1) / G_h'(1)^2 (Glauber's normalized
second-order correlation at zero delay of the signal arm's pulse; :meth:`heralded_g2`) is
P_h [G''(1) - c t^2 G''(t)] / [G'(1) - c t G'(t)]^2: about mu (2 - eta_h) (Poisson) or
(3/2) mu (2 - eta_h) (thermal) for a small mean pair number without dark counts, and the
unheralded value 1 (Poisson) or 3/2 (thermal: two thermal polarization modes, g2 = 1 + 1/2) when
the herald carries no information (eta_h -> 0 with dark counts, or a saturated herald).

Limit P_h = 0 (mu = 0 and no herald dark counts: nothing is ever heralded) is given the mu -> 0
limit, one photon, so that the functions are continuous there.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import xlog1py

from qmc._pytree import pytree_dataclass, static
from qmc.sources.base import AbstractSource, wavelength_check
from qmc.validation import Range, Rule

__all__ = ["HeraldedSource", "PAIR_STATISTICS"]

PAIR_STATISTICS = ("thermal", "poisson")  # as qmc.entanglement.spdc.STATISTICS (tested equal)


def _log_g_complement(statistics, mu, y):
    """log G(1 - y) of the pair statistics: thermal -2 log(1 + lambda y), poisson -mu y."""
    mu = jnp.asarray(mu, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    if statistics == "thermal":
        return -2.0 * jnp.log1p(0.5 * mu * y)
    if statistics == "poisson":
        return -mu * y
    raise ValueError(f"statistics = {statistics!r}: must be one of {', '.join(PAIR_STATISTICS)}")


def _thermal_both(lam, a, b):
    """1 - G(1 - a) - G(1 - b) + G(1 - a - b) for G(s) = (1 + lam (1 - s))^-2, as a ratio of
    polynomials with positive coefficients (no cancellation)."""
    u, v = lam * jnp.asarray(a, jnp.float64), lam * jnp.asarray(b, jnp.float64)
    poly = (6.0 + 12.0 * (u + v) + 18.0 * u * v + 8.0 * (u * u + v * v) + 8.0 * u * v * (u + v)
            + 2.0 * (u ** 3 + v ** 3) + 2.0 * u * u * v * v + u * v * (u * u + v * v))
    return u * v * poly / ((1.0 + u) ** 2 * (1.0 + v) ** 2 * (1.0 + u + v) ** 2)


def _one_minus_exp(log_x):
    """1 - exp(log_x) without cancellation."""
    return -jnp.expm1(log_x)


@pytree_dataclass
class HeraldedSource(AbstractSource):
    """SPDC pairs, one photon detected locally as a herald, the other sent (module docstring).

    Args:
        statistics: pair statistics, "thermal" (two-mode squeezed state, default) or "poisson".
        herald_efficiency: eta_h, the herald arm's detection efficiency (coupling and detector).
        herald_p_dark: p_d, the herald detector's dark-count probability per pulse.
        rep_rate_hz: the pump's pulse rate.
        wavelength_nm: the sent photon's wavelength.
    """

    statistics: str = static("thermal")
    herald_efficiency: float = 0.5
    herald_p_dark: float = 1e-6
    rep_rate_hz: float = 1e9
    wavelength_nm: float = 1550.0

    def _log_c(self):
        return jnp.log1p(-jnp.asarray(self.herald_p_dark, dtype=jnp.float64))

    def _log_t(self):
        return jnp.log1p(-jnp.asarray(self.herald_efficiency, dtype=jnp.float64))

    def herald_probability(self, mu):
        """P_h = 1 - (1 - p_d) G(1 - eta_h): the probability that a pump pulse is heralded."""
        return _one_minus_exp(self._log_c() + _log_g_complement(self.statistics, mu, self.herald_efficiency))

    def herald_given_n(self, n):
        """P(herald | n pairs) = 1 - (1 - p_d)(1 - eta_h)^n (a threshold detector)."""
        n = jnp.asarray(n, dtype=jnp.float64)
        return _one_minus_exp(self._log_c() + xlog1py(n, -jnp.asarray(self.herald_efficiency, jnp.float64)))

    def log_p_none(self, mu, x):
        """log G_h(1 - x) = log G(1 - x) + log(1 - c G((1 - x) t) / G(1 - x)) - log P_h, the ratio
        in closed form (thermal: (1 + lambda eta_h (1 - x) / (1 + lambda x))^-2; poisson:
        exp(-mu eta_h (1 - x))), so that nothing cancels at small mu."""
        x = jnp.asarray(x, dtype=jnp.float64)
        mu_ = jnp.asarray(mu, dtype=jnp.float64)
        eta = jnp.asarray(self.herald_efficiency, dtype=jnp.float64)
        if self.statistics == "thermal":
            log_ratio = -2.0 * jnp.log1p(0.5 * mu_ * eta * (1.0 - x) / (1.0 + 0.5 * mu_ * x))
        elif self.statistics == "poisson":
            log_ratio = -mu_ * eta * (1.0 - x)
        else:
            raise ValueError(f"statistics = {self.statistics!r}: must be one of {', '.join(PAIR_STATISTICS)}")
        p_h = self.herald_probability(mu)
        heralded = p_h > 0.0
        num = _one_minus_exp(self._log_c() + log_ratio)
        value = (_log_g_complement(self.statistics, mu, x) + jnp.log(jnp.where(heralded, num, 1.0))
                 - jnp.log(jnp.where(heralded, p_h, 1.0)))
        return jnp.where(heralded, value, jnp.log1p(-x))  # P_h = 0: the one-photon limit

    def p_both(self, mu, a, b):
        """P(photons reach both of two disjoint ports of efficiencies a and b | herald), without
        the cancellation of inclusion-exclusion: [B(mu) - c G(t) B(mu')] / P_h, where B is the
        pair statistics' own probability of photons at both ports and mu' = mu t (poisson) or
        lambda' = lambda t / (1 + lambda eta_h) (thermal) the statistics tilted by t^n (the herald
        arm lost entirely): E[t^n 1{both}] = G(t) B(mu'). Thermal B with u = lambda a,
        v = lambda b: u v (6 + 12 u + 12 v + 18 u v + ...) / ((1 + u)^2 (1 + v)^2 (1 + u + v)^2),
        every term positive."""
        mu = jnp.asarray(mu, dtype=jnp.float64)
        eta = jnp.asarray(self.herald_efficiency, dtype=jnp.float64)
        if self.statistics == "thermal":
            lam = 0.5 * mu
            tilted = lam * (1.0 - eta) / (1.0 + lam * eta)
            both, both_tilted = _thermal_both(lam, a, b), _thermal_both(tilted, a, b)
        else:
            both = jnp.expm1(-mu * a) * jnp.expm1(-mu * b)
            both_tilted = jnp.expm1(-mu * (1.0 - eta) * a) * jnp.expm1(-mu * (1.0 - eta) * b)
        c_g_t = jnp.exp(self._log_c() + _log_g_complement(self.statistics, mu, eta))
        p_h = self.herald_probability(mu)
        heralded = p_h > 0.0
        value = (both - c_g_t * both_tilted) / jnp.where(heralded, p_h, 1.0)
        return jnp.where(heralded, value, 0.0)  # one photon: never at both ports

    def photon_number_pmf(self, mu, n):
        """P(n | herald) = P(n) P(herald | n) / P_h."""
        # Imported here: qmc.entanglement.spdc imports qmc.sources (a cycle at import time).
        from qmc.entanglement.spdc import pair_number_pmf

        p_h = self.herald_probability(mu)
        heralded = p_h > 0.0
        joint = pair_number_pmf(mu, n, self.statistics) * self.herald_given_n(n)
        value = joint / jnp.where(heralded, p_h, 1.0)
        return jnp.where(heralded, value, jnp.where(jnp.asarray(n) == 1, 1.0, 0.0))

    def _derivative_factors(self, mu):
        """(P_h, d1, d2) with G_h'(1) = G'(1) d1 / P_h and G_h''(1) = G''(1) d2 / P_h:
        d_k = 1 - c t^k G^(k)(t) / G^(k)(1), G^(k)(t) / G^(k)(1) = (1 + lambda eta_h)^-(k + 2)
        (thermal) or exp(-mu eta_h) (poisson)."""
        mu = jnp.asarray(mu, dtype=jnp.float64)
        eta = jnp.asarray(self.herald_efficiency, dtype=jnp.float64)
        log_c, log_t = self._log_c(), self._log_t()
        if self.statistics == "thermal":
            log_shift = [-(k + 2.0) * jnp.log1p(0.5 * mu * eta) for k in (1, 2)]
        else:
            log_shift = [_log_g_complement("poisson", mu, eta)] * 2
        d1 = _one_minus_exp(log_c + log_t + log_shift[0])
        d2 = _one_minus_exp(log_c + 2.0 * log_t + log_shift[1])
        return self.herald_probability(mu), d1, d2

    def mean_photon_number(self, mu):
        """<n | herald> = G_h'(1); G'(1) = mu for both statistics."""
        p_h, d1, _ = self._derivative_factors(mu)
        mu = jnp.asarray(mu, dtype=jnp.float64)
        return jnp.where(p_h > 0.0, mu * d1 / jnp.where(p_h > 0.0, p_h, 1.0), 1.0)

    def heralded_g2(self, mu):
        """g2(0) of the heralded pulse, <n (n - 1)> / <n>^2 (module docstring):
        g2_pairs P_h d2 / d1^2, g2_pairs = G''(1) / G'(1)^2 = 3/2 (thermal) or 1 (poisson)."""
        p_h, d1, d2 = self._derivative_factors(mu)
        g2_pairs = 1.5 if self.statistics == "thermal" else 1.0
        return g2_pairs * p_h * d2 / (d1 * d1)

    def checks(self):
        return [
            Rule("statistics", lambda s, xp: xp.asarray(s.statistics in PAIR_STATISTICS),
                 f"must be one of {', '.join(PAIR_STATISTICS)}"),
            Range("herald_efficiency", 0.0, 1.0),
            Range("herald_p_dark", 0.0, 1.0),
            Rule("herald_efficiency,herald_p_dark",
                 lambda s, xp: (xp.asarray(s.herald_efficiency) > 0) | (xp.asarray(s.herald_p_dark) > 0),
                 "a herald must be possible: herald_efficiency > 0 or herald_p_dark > 0"),
            Range("rep_rate_hz", 0.0, lo_open=True),
            wavelength_check(),
        ]
