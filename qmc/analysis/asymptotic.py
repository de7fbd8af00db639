"""Asymptotic secret-key rates of decoy-state BB84 (GLLP with decoy-state estimates).

All rates follow GLLP (Gottesman, Lo, Lutkenhaus, Preskill, QIC 4, 325 (2004)) as used by
Lo, Ma, Chen, PRL 94, 230504 (2005), Eq. (1):

    R = q { -Q_mu f H2(E_mu) + Q_1 [1 - H2(e_1)] },

evaluated per key basis b and summed: R = sum_b P(signal) P_A(b) P_B(b) max(r_b, 0), where the
phase error of the single photons in basis b is their bit error in the other basis. With
``probabilities = (1, 0, ...)``, ``p_z = 1/2`` and ``key_basis = "both"`` this is Lo-Ma-Chen's
rate per signal pulse with q = 1/2. Rates are bits per emitted pulse; never NaN (0 with a reason).

The vacuum term. Lo, Ma, Chen's Eq. (1) leaves out the key of the vacuum pulses; GLLP's rate, and
the finite-key analyses of Lim et al. (2014) and Rusca et al. (2018) with their asymptotic limits,
count it: + Q_0 = Y_0 P(0 | mu), whose phase error is 1/2 by symmetry and which leaks nothing to
Eve. ``vacuum_term=False`` (the default here, Lo-Ma-Chen's published curves) leaves it out;
``vacuum_term=True`` adds it. The finite-key analyses (:mod:`qmc.analysis.finite`) include it by
default (their papers' form) and take the same option.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass, static
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis.keyrate import KeyRate, finish, h2
from qmc.engines.observations import Observations
from qmc.sources import WeakCoherentSource
from qmc.engines import exact
from qmc.validation import Range, Rule

__all__ = ["InfiniteDecoy", "VacuumWeak", "NoDecoy", "SinglePhoton", "ASYMPTOTIC"]


def _safe_div(num, den):
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.inf)


def gllp_rate(protocol, q1, e1, gain, qber, f_ec, q0=0.0):
    """Sum over key bases of P(signal) P_A(b) P_B(b) max(q0_b + q1_b (1 - H2(e1_b')) - f Q_b H2(E_b), 0).

    Args:
        q1, e1, gain, qber: per basis (Z, X), shape (2,). ``e1`` is each basis' single-photon bit
            error; the phase error for a key in basis b is ``e1`` of the other basis.
        q0: the vacuum pulses' gain per basis, Y_0 P(0 | mu) (0: the vacuum term left out).
    Returns:
        (rate, raw) where raw is the unclipped sum (for the reason code).
    """
    phase = e1[::-1]
    per_basis = q0 + q1 * (1.0 - h2(phase)) - f_ec * gain * h2(qber)
    pb = protocol.basis_probabilities()
    weight = jnp.asarray(protocol.probabilities)[0] * pb**2 * protocol.key_basis_mask()
    weighted = weight * per_basis
    return jnp.sum(jnp.maximum(weighted, 0.0)), jnp.max(jnp.where(weight > 0, weighted, -jnp.inf))


class _Analysis(AbstractAnalysis):
    def checks(self):
        return [Range("f_ec", 1.0)]


def _signal(obs: Observations):
    return obs.gain[0], obs.qber[0]


@pytree_dataclass
class InfiniteDecoy(_Analysis):
    """Infinitely many decoys: Y_1 and e_1 known exactly (Lo, Ma, Chen 2005, the upper curve).

    Y_1 and e_1 come from the same link with a single-photon source; Q_1 = Y_1 P_1(mu). With
    ``vacuum_term`` the vacuum pulses' Q_0 = Y_0 P_0(mu) is added (see the module docstring).

    Args:
        f_ec: error-correction inefficiency (>= 1).
        vacuum_term: add the vacuum pulses' key (False: Lo, Ma, Chen's Eq. (1) as published).
    """

    f_ec: float = 1.16
    vacuum_term: bool = static(False)
    name: ClassVar[str] = "infinite_decoy"
    parameters: ClassVar[tuple[str, ...]] = ("signal", "probabilities", "p_z")  # no decoy is read

    def key_rate(self, link, protocol) -> KeyRate:
        mu = jnp.asarray(protocol.intensities)[0]
        gain, qber = _signal(exact.observations(link, protocol))
        single = exact.photon_number_observations(link, protocol, 1)
        y1, e1 = single.gain[0], single.qber[0]
        q1 = y1 * link.source.photon_number_pmf(mu, 1)
        q0 = 0.0
        if self.vacuum_term:
            q0 = exact.photon_number_observations(link, protocol, 0).gain[0] * link.source.photon_number_pmf(mu, 0)
        rate, raw = gllp_rate(protocol, q1, e1, gain, qber, self.f_ec, q0)
        return finish(
            rate, unclipped=raw, valid=self._valid(protocol, link), detected=gain[0] > 0,
            y1_positive=y1[0] > 0, y1=y1[0], e1=e1[1], gain=gain[0], qber=qber[0],
        )


@pytree_dataclass
class VacuumWeak(_Analysis):
    """Vacuum + weak decoy bounds of Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005), Eqs. (34), (37).

        Y_1 >= mu / (mu nu - nu^2) [Q_nu e^nu - Q_mu e^mu nu^2/mu^2 - (mu^2 - nu^2)/mu^2 Y_0]
        e_1 <= (E_nu Q_nu e^nu - e_0 Y_0) / (Y_1^L nu)

    with Y_0 the vacuum gain and e_0 Y_0 the vacuum error gain (both observed). Intensities are
    (mu, nu, 0): signal, weak decoy (0.05 by default in the GYS study), vacuum. The bound cancels
    nearly exactly at small nu and needs float64. Valid for Poisson (weak coherent) sources. With
    ``vacuum_term`` the vacuum pulses' Q_0 = Y_0 e^-mu is added (see the module docstring).

    Args:
        f_ec: error-correction inefficiency (>= 1).
        vacuum_term: add the vacuum pulses' key (False: Ma et al.'s rate as published).
    """

    f_ec: float = 1.16
    vacuum_term: bool = static(False)
    name: ClassVar[str] = "vacuum_weak"
    uses_observations: ClassVar[bool] = True

    def protocol_checks(self, protocol):
        return [
            Rule("intensities", lambda p, xp: xp.asarray(xp.size(p.intensities) == 3),
                 "vacuum_weak needs three intensities (signal mu, weak nu, vacuum 0)"),
            Rule("intensities", lambda p, xp: xp.asarray(p.intensities)[-1] == 0.0,
                 "vacuum_weak needs the last intensity to be 0 (vacuum decoy)"),
            Rule("intensities", lambda p, xp: xp.asarray(p.intensities)[1] > 0.0,
                 "vacuum_weak needs a weak decoy intensity nu > 0"),
        ]

    def bounds(self, obs: Observations, protocol):
        """(Y_1^L, e_1^U) per basis, shape (2,) each."""
        mu_all = jnp.asarray(protocol.intensities)
        mu, nu = mu_all[0], mu_all[1]
        q_mu, q_nu, y0 = obs.gain[0], obs.gain[1], obs.gain[-1]
        eq_nu, eq_0 = obs.error_gain[1], obs.error_gain[-1]
        y1 = mu / (mu * nu - nu**2) * (
            q_nu * jnp.exp(nu) - q_mu * jnp.exp(mu) * nu**2 / mu**2 - (mu**2 - nu**2) / mu**2 * y0
        )
        e1 = _safe_div(eq_nu * jnp.exp(nu) - eq_0, y1 * nu)
        return y1, e1

    def key_rate_from_observations(self, obs: Observations, protocol, link=None) -> KeyRate:
        """Key rate from observed (or expected) gains; ``link`` only adds its validity check."""
        mu = jnp.asarray(protocol.intensities)[0]
        y1, e1 = self.bounds(obs, protocol)
        y1_ok = y1 > 0
        q1 = jnp.where(y1_ok, y1, 0.0) * mu * jnp.exp(-mu)
        q0 = obs.gain[-1] * jnp.exp(-mu) if self.vacuum_term else 0.0
        gain, qber = _signal(obs)
        rate, raw = gllp_rate(protocol, q1, jnp.where(y1_ok, e1, 0.5), gain, qber, self.f_ec, q0)
        return finish(
            rate, unclipped=raw, valid=self._valid(protocol, link) & (mu > jnp.asarray(protocol.intensities)[1]),
            detected=gain[0] > 0, y1_positive=y1_ok[0], y1=y1[0], e1=e1[1], gain=gain[0], qber=qber[0],
        )

    def key_rate(self, link, protocol) -> KeyRate:
        return self.key_rate_from_observations(exact.observations(link, protocol), protocol, link)


@pytree_dataclass
class NoDecoy(_Analysis):
    """No decoys: GLLP's worst case, every multi-photon pulse detected (GLLP 2004).

    The untagged pulses (vacuum and single photons) have gain Q_0 + Q_1 >= Q_mu - P(n >= 2) and
    error rate <= E_mu Q_mu / (Q_mu - P(n >= 2)), i.e. R = q{-Q f H(E) + Q (1 - Delta)
    [1 - H(E / (1 - Delta))]} with Delta = P(n >= 2) / Q_mu (Lo, Ma, Chen 2005, Eq. (1) and text).
    The reported ``y1`` is that untagged gain bound divided by P(1) (it bounds Y_1 + Y_0 P(0)/P(1),
    not Y_1 alone), ``e1`` the untagged error-rate bound.
    """

    f_ec: float = 1.16
    name: ClassVar[str] = "no_decoy"
    parameters: ClassVar[tuple[str, ...]] = ("signal", "p_z")
    uses_observations: ClassVar[bool] = True

    def key_rate_from_observations(self, obs: Observations, protocol, link=None) -> KeyRate:
        """Key rate from observed (or expected) gains; the multi-photon probability is that of
        ``link.source`` (weak coherent pulses without a link)."""
        source = WeakCoherentSource() if link is None else link.source
        mu = jnp.asarray(protocol.intensities)[0]
        p_multi = source.p_multi(mu)
        gain, qber = _signal(obs)
        q1 = gain - p_multi
        q1_ok = q1 > 0
        e1 = _safe_div(obs.error_gain[0], q1)
        rate, raw = gllp_rate(protocol, jnp.where(q1_ok, q1, 0.0), jnp.where(q1_ok, e1, 0.5), gain, qber, self.f_ec)
        return finish(
            rate, unclipped=raw, valid=self._valid(protocol, link), detected=gain[0] > 0, y1_positive=q1_ok[0],
            y1=q1[0] / jnp.maximum(source.photon_number_pmf(mu, 1), 1e-300), e1=e1[1], gain=gain[0], qber=qber[0],
        )

    def key_rate(self, link, protocol) -> KeyRate:
        return self.key_rate_from_observations(exact.observations(link, protocol), protocol, link)


@pytree_dataclass
class SinglePhoton(_Analysis):
    """An ideal single-photon source on the same channel and detectors (Lo, Ma, Chen 2005, Fig. 1).

    Every detected pulse is a single photon: R = q Y_1 [1 - H2(e_1) - f H2(e_1)].
    """

    f_ec: float = 1.16
    name: ClassVar[str] = "single_photon"
    parameters: ClassVar[tuple[str, ...]] = ("probabilities", "p_z")  # the source sends one photon

    def key_rate(self, link, protocol) -> KeyRate:
        single = exact.photon_number_observations(link, protocol, 1)
        y1, e1 = single.gain[0], single.qber[0]
        rate, raw = gllp_rate(protocol, y1, e1, y1, e1, self.f_ec)
        return finish(
            rate, unclipped=raw, valid=self._valid(protocol, link), detected=y1[0] > 0, y1_positive=y1[0] > 0,
            y1=y1[0], e1=e1[1], gain=y1[0], qber=e1[0],
        )


ASYMPTOTIC = {cls.name: cls for cls in (InfiniteDecoy, VacuumWeak, NoDecoy, SinglePhoton)}
