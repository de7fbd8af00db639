"""Finite-key security of decoy-state BB84 with composable security (epsilon_sec, epsilon_cor).

Two analyses, one structure (key length l = vacuum bits + single-photon bits after privacy
amplification - error-correction leakage - security terms; rate R = l / N bits per emitted pulse):

* :class:`FiniteLim2014`, ``"finite_lim2014"``: two decoys, Lim, Curty, Walenta, Xu, Zbinden,
  "Concise security bounds for practical decoy-state quantum key distribution", PRA 89, 022307
  (2014), arXiv:1311.7129, Eqs. (1)-(5) and Appendix A.
* :class:`FiniteRusca2018`, ``"finite_rusca2018"``: one decoy, Rusca, Boaron, Grunenfelder,
  Martin, Zbinden, "Finite-key analysis for the 1-decoy state QKD protocol", APL 112, 171104
  (2018), arXiv:1801.03443, Eqs. (1)-(5) (Appendix A, Eqs. (A1)-(A25)).

and their limits without finite-size terms (Hoeffding deviations, the sampling term gamma and the
security terms set to 0): :class:`AsymptoticTwoDecoy` (``"asymptotic_two_decoy"``, the dashed
curve of Lim's Fig. 1) and :class:`AsymptoticOneDecoy` (``"asymptotic_one_decoy"``).

Basis convention. Lim and Rusca call the key basis X (Lim) or Z (Rusca); qmc's key basis is always
Z (``DecoyBB84.key_basis == "Z"``) and X is the test basis. Lim's q_x (probability of the key basis,
for Alice and for Bob) is qmc's ``p_z``; Lim's s_X,1, n_X, phi_X are written here s_key1, n_key,
phi, and Lim's s_Z,1, v_Z,1 (test-basis quantities) s_test1, v_test1.

Block size. ``block_size`` is n_X of Lim (n_Z of Rusca): the number of key-basis detections summed
over all intensities (the post-processing block). With expected counts, the number of emitted
pulses is N = n_X / P(key-basis detection per pulse), P = sum_k p_k p_z^2 Q_k,Z, and every other
count is its expectation after N pulses. With observed counts (a Monte Carlo Tally or an
experiment) the counts are used as they are, and N is the number of pulses actually sent.

Security parameters. eps_sec is split into 21 equal terms for Lim (Eq. (B4)) and 19 for Rusca
(Eq. (A24)); each Hoeffding deviation delta(n, eps) = sqrt(n/2 ln(1/eps)) and the sampling term
gamma use eps = eps_sec/21 (resp. /19). Lim's Fig. 1 does not fix eps_sec: it sets
eps_sec = kappa * l with kappa = 1e-15 (Sec. IV); ``kappa > 0`` reproduces that convention by a
fixed-point iteration (started above the solution, so it descends to the largest consistent l).

Guards. Every square root and logarithm has a guarded argument with the double-``where`` pattern,
so neither the value nor its gradient is NaN for any input. A rate that is not positive is 0 with
a reason (:data:`qmc.analysis.REASONS`): a non-positive single-photon bound, a phase-error
sampling term whose logarithm argument is below 1 (``"phase-error bound undefined"``; Eq. (5)
is then not defined and no key is claimed; this needs both a large eps and huge counts, e.g.
eps_sec = kappa l > 1e-3 at n_X > 1e12), or finite-size terms that exceed a key that would be
positive asymptotically (``"finite-size terms exceed the key"``). The key length is not rounded
down (Eq. (1) floors it) so that the rate stays differentiable; the floor changes l by < 1 bit.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from qmc._pytree import pytree_dataclass, static
from qmc.analysis.keyrate import INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, NOT_FINITE, NOT_POSITIVE
from qmc.analysis.keyrate import OK, REASONS, KeyRate, h2
from qmc.analysis.base import AbstractAnalysis
from qmc.analysis import kappa as _kappa
from qmc.analysis.counts import DecoyCounts
from qmc.analysis.decoy_bounds import lim2014_bounds, phase_error_upper, rusca2018_bounds, safe_div, tau
from qmc.engines import exact
from qmc.engines.observations import Observations
from qmc.validation import Range, Rule

__all__ = [
    "DecoyCounts", "FiniteKeyRate", "FiniteLim2014", "FiniteRusca2018", "AsymptoticTwoDecoy",
    "AsymptoticOneDecoy", "FINITE",
]

PHASE_UNDEFINED = REASONS.index("phase-error bound undefined (logarithm argument below 1)")
FINITE_SIZE = REASONS.index("finite-size terms exceed the key: key length not positive")
NOT_CONVERGED = REASONS.index("eps_sec = kappa l did not converge: no key claimed")

_LN2 = math.log(2.0)


# ----------------------------------------------------------------------------------------------
# Building blocks shared by both papers
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class FiniteKeyRate(KeyRate):
    """A :class:`KeyRate` with the finite-key quantities behind it.

    ``rate`` = key_length / n_pulses (secret bits per emitted pulse, Lim's R = l/N); ``y1`` is the
    single-photon yield bound s_key1 / (N p_z^2 tau_1), ``e1`` the phase-error bound phi, ``gain``
    the signal gain in Z and ``qber`` the key-basis error rate e_obs used for lambda_EC.

    Attributes:
        key_length: l of Eq. (1), not floored (bits); negative when no key can be extracted.
        n_pulses: N, pulses emitted (for expected counts, those needed to fill the block).
        n_key: detections in the key basis over all intensities (n_X of Lim: the block size).
        s0, s1: lower bounds on vacuum and single-photon detections in the key basis.
        s1_test, v1_test: single-photon detections (lower) and errors (upper) in the test basis.
        phase_error: upper bound phi on the single-photon phase-error rate (Eq. (5)).
        leak_ec: lambda_EC = f_EC n_key h(e_obs) (bits).
        eps_sec: the secrecy parameter used (kappa * l when ``kappa > 0``).
        key_length_asymptotic: l with the same counts but no finite-size terms (diagnostic).
    """

    key_length: object = 0.0
    n_pulses: object = 0.0
    n_key: object = 0.0
    s0: object = 0.0
    s1: object = 0.0
    s1_test: object = 0.0
    v1_test: object = 0.0
    phase_error: object = 0.0
    leak_ec: object = 0.0
    eps_sec: object = 0.0
    key_length_asymptotic: object = 0.0


def _clean(x):
    return jnp.nan_to_num(jnp.asarray(x, jnp.float64), nan=0.0, posinf=jnp.inf, neginf=-jnp.inf)


# ----------------------------------------------------------------------------------------------
# Analyses
# ----------------------------------------------------------------------------------------------


def _mu(p, xp, i):
    return xp.asarray(p.intensities)[i]


class _FiniteBase(AbstractAnalysis):
    """Shared machinery: counts -> bounds -> key length -> FiniteKeyRate."""

    n_intensities: ClassVar[int]
    eps_split: ClassVar[float]  # eps_sec = eps_split * eps (Lim 21, Rusca 19)
    finite: ClassVar[bool] = True
    uses_observations: ClassVar[bool] = True

    # -- validation ---------------------------------------------------------------------------
    def checks(self):
        out = [Range("f_ec", 1.0)]
        if self.finite:
            out += [
                Range("eps_sec", 0.0, 1.0, lo_open=True, hi_open=True),
                Range("eps_cor", 0.0, 1.0, lo_open=True, hi_open=True),
                Range("block_size", 0.0, lo_open=True),
                Range("kappa", 0.0, 1.0, hi_open=True),
            ]
            if getattr(self, "n_pulses", None) is not None:
                out.append(Range("n_pulses", 0.0, lo_open=True))
        return out

    def _common_protocol_checks(self):
        k = self.n_intensities
        name = self.name
        example = "(0.5, 0.1, 2e-4) with probabilities (0.7, 0.2, 0.1)" if k == 3 else "(0.5, 0.1) with probabilities (0.7, 0.3)"
        return [
            Rule("key_basis", lambda p, xp: xp.asarray(p.key_basis == "Z"),
                 f"{name} needs key_basis 'Z' (X is the test basis for the phase error): set key_basis='Z'"),
            Rule("intensities", lambda p, xp: xp.asarray(xp.size(p.intensities) == k),
                 f"{name} needs {k} intensities: set intensities, e.g. {example}"),
            Rule("probabilities", lambda p, xp: xp.all(xp.asarray(p.probabilities) > 0.0),
                 f"{name} needs every intensity probability > 0 (each is used in the decoy bounds): set "
                 f"probabilities, e.g. {example.split(' with probabilities ')[1]}"),
            Rule("p_z", lambda p, xp: (xp.asarray(p.p_z) > 0.0) & (xp.asarray(p.p_z) < 1.0),
                 f"{name} needs 0 < p_z < 1 (both bases are measured): set p_z, e.g. 0.9"),
        ]

    # -- the analysis ---------------------------------------------------------------------------
    def _bounds(self, det, err, mu, p, log_inv_eps, finite):
        raise NotImplementedError

    def _eps_sec(self):
        # Out-of-range values only occur at invalid sweep points (rate 0, reason "invalid");
        # replace them so that no logarithm of 0 or of a negative number is ever taken.
        eps = jnp.asarray(getattr(self, "eps_sec", 0.5), jnp.float64)
        return jnp.where((eps > 0.0) & (eps < 1.0), eps, 0.5)

    def _eps_cor(self):
        eps = jnp.asarray(self.eps_cor, jnp.float64)
        return jnp.where((eps > 0.0) & (eps < 1.0), eps, 0.5)

    def _key_length(self, counts: DecoyCounts, mu, p, eps_sec, finite: bool):
        """Eq. (1) for given eps_sec: (l, diagnostics dict, phase_ok)."""
        log_inv_eps = jnp.log(self.eps_split) - jnp.log(eps_sec)  # ln(1/eps), eps = eps_sec/split
        det, err = counts.detections, counts.errors
        s0k, s1k, _ = self._bounds(det[:, 0], err[:, 0], mu, p, log_inv_eps, finite)
        _, s1t, v1t = self._bounds(det[:, 1], err[:, 1], mu, p, log_inv_eps, finite)
        # Lower bounds cannot exceed what was detected (s0 + s1 <= n per basis; capping them there
        # keeps them valid). Where the bounds lose all precision (mu1 -> mu2 + mu3 cancels the
        # denominator of Eq. (3); p_k -> 0 inflates e^k/p_k (n_k +- delta)) they can be rounding
        # noise of any size, and a huge s1 would otherwise claim a key where there is none.
        # Elsewhere the caps never bind, so the papers' formulas are unchanged.
        n_key_basis = jnp.sum(det[:, 0])
        s0k = jnp.minimum(s0k, n_key_basis)
        s1k = jnp.minimum(s1k, n_key_basis - jnp.maximum(s0k, 0.0))
        s1t = jnp.minimum(s1t, jnp.sum(det[:, 1]))
        phi, phase_ok = phase_error_upper(v1t, s1t, s1k, log_inv_eps / _LN2, finite)
        n_key = jnp.sum(det[:, 0])
        e_obs = safe_div(jnp.sum(err[:, 0]), n_key)
        leak = self.f_ec * n_key * h2(e_obs)
        penalty = 0.0
        if finite:
            eps_cor = self._eps_cor()
            penalty = 6.0 * (jnp.log2(self.eps_split) - jnp.log2(eps_sec)) + 1.0 - jnp.log2(eps_cor)
        s1k_pos = jnp.maximum(s1k, 0.0)
        vacuum = jnp.maximum(s0k, 0.0) if self.vacuum_term else 0.0
        length = vacuum + s1k_pos * (1.0 - h2(phi)) - leak - penalty
        diag = dict(s0=s0k, s1=s1k, s1_test=s1t, v1_test=v1t, phase_error=phi, leak_ec=leak,
                    n_key=n_key, e_obs=e_obs)
        return length, diag, phase_ok

    def rate_from_counts(self, counts: DecoyCounts, protocol, link=None) -> FiniteKeyRate:
        """Key length and rate from counts (expected or observed)."""
        mu = jnp.asarray(protocol.intensities, jnp.float64)
        p_raw = jnp.asarray(protocol.probabilities, jnp.float64)
        p = jnp.where(p_raw > 0.0, p_raw, 1.0)  # invalid points still compute finite numbers
        finite = self.finite
        eps_sec = self._eps_sec() if finite else jnp.asarray(1.0)

        def at(eps, counts=counts, mu=mu, p=p):  # Eq. (1) at eps_sec = eps: (l, (diagnostics, phase_ok))
            length, diag, phase_ok = self._key_length(counts, mu, p, eps, finite)
            return length, (diag, phase_ok)

        if finite:
            # eps_sec = kappa l (kappa > 0): the largest consistent l; else the given eps_sec (the
            # same iteration, converged at once). qmc.analysis.kappa.
            kappa = jnp.asarray(self.kappa, jnp.float64)
            use_kappa = (kappa > 0.0) & (kappa < 1.0)
            eps_of = _kappa.proportional(jnp.where(use_kappa, kappa, 1e-15), self._eps_sec(), use_kappa)
            values = jax.lax.stop_gradient((counts, mu, p))
            length, eps_sec, converged, (diag, phase_ok) = _kappa.solve(
                at, eps_of, jnp.sum(counts.detections[:, 0]),
                values_of=lambda eps: at(eps, *values))
        else:
            length, (diag, phase_ok) = at(eps_sec)
            converged = jnp.asarray(True)
        length_inf, _, _ = self._key_length(counts, mu, p, eps_sec, False)

        n_pulses = counts.n_pulses
        rate_raw = safe_div(length, n_pulses)
        valid = self._valid(protocol, link)
        detected = (diag["n_key"] > 0.0) & (n_pulses > 0.0) & jnp.isfinite(n_pulses)
        singles = (diag["s1"] > 0.0) & (diag["s1_test"] > 0.0)
        reason = jnp.select(
            [~valid, ~detected, ~singles, ~phase_ok, jnp.isnan(rate_raw), ~converged,
             ~(rate_raw > 0.0) & (length_inf > 0.0), ~(rate_raw > 0.0)],
            [INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, PHASE_UNDEFINED, NOT_FINITE, NOT_CONVERGED, FINITE_SIZE,
             NOT_POSITIVE],
            OK,
        ).astype(jnp.int32)
        # the same as reason == OK, without the asymptotic length (which only names a reason)
        good = valid & detected & singles & phase_ok & converged & jnp.isfinite(rate_raw) & (rate_raw > 0.0)
        rate = jnp.where(good, rate_raw, 0.0)
        pz = jnp.asarray(protocol.p_z, jnp.float64)
        y1 = safe_div(diag["s1"], n_pulses * pz**2 * tau(mu, p, 1))
        signal_gain = safe_div(counts.detections[0, 0], n_pulses * p[0] * pz**2)
        return FiniteKeyRate(
            rate=rate, reason=reason, y1=_clean(y1), e1=_clean(diag["phase_error"]),
            gain=_clean(signal_gain), qber=_clean(diag["e_obs"]), key_length=_clean(length),
            n_pulses=_clean(n_pulses), n_key=_clean(diag["n_key"]), s0=_clean(diag["s0"]),
            s1=_clean(diag["s1"]), s1_test=_clean(diag["s1_test"]), v1_test=_clean(diag["v1_test"]),
            phase_error=_clean(diag["phase_error"]), leak_ec=_clean(diag["leak_ec"]),
            eps_sec=_clean(eps_sec), key_length_asymptotic=_clean(length_inf),
        )

    def counts(self, obs: Observations, protocol) -> DecoyCounts:
        """Counts this analysis reads: expected at ``block_size`` (or after ``n_pulses`` pulses, when
        that is given) when ``obs`` holds probabilities (``n_sent`` is None), else the observed
        counts."""
        if obs.n_sent is not None:
            return DecoyCounts.observed(obs, protocol)
        if self.finite and self.n_pulses is not None:
            return DecoyCounts.for_pulses(obs, protocol, self.n_pulses)
        if self.finite:
            return DecoyCounts.expected(obs, protocol, self.block_size)
        return DecoyCounts.per_pulse(obs, protocol)

    def key_rate_from_observations(self, obs: Observations, protocol, link=None) -> FiniteKeyRate:
        """Key rate from :class:`Observations`.

        Expected probabilities (``Observations.from_table``, ``n_sent`` None) are scaled to the
        block size; observed counts (``Observations.from_counts``, a Tally's ``observations()``)
        are used as they are, with ``obs.n_pulses`` the pulses sent (estimated from ``n_sent``
        when None). ``link`` only adds its validity check.
        """
        return self.rate_from_counts(self.counts(obs, protocol), protocol, link)

    def key_rate(self, link, protocol) -> FiniteKeyRate:
        """Key rate from the exact engine's expected counts for ``link`` (block of ``block_size``)."""
        return self.key_rate_from_observations(exact.observations(link, protocol), protocol, link)


def _lim_rules(name):
    return [
        Rule("intensities", lambda p, xp: xp.asarray(_mu(p, xp, 0) > _mu(p, xp, 1) + _mu(p, xp, 2))
             if xp.size(p.intensities) == 3 else xp.asarray(False),
             f"{name} needs mu1 > mu2 + mu3 (Lim et al. 2014, Sec. II)"),
        Rule("intensities", lambda p, xp: xp.asarray((_mu(p, xp, 1) > _mu(p, xp, 2)) & (_mu(p, xp, 2) >= 0.0))
             if xp.size(p.intensities) == 3 else xp.asarray(False),
             f"{name} needs mu2 > mu3 >= 0 (Lim et al. 2014, Sec. II)"),
    ]


def _rusca_rules(name):
    return [
        Rule("intensities", lambda p, xp: xp.asarray((_mu(p, xp, 0) > _mu(p, xp, 1)) & (_mu(p, xp, 1) > 0.0))
             if xp.size(p.intensities) == 2 else xp.asarray(False),
             f"{name} needs mu1 > mu2 > 0 (Rusca et al. 2018: signal and one non-vacuum decoy)"),
    ]


@pytree_dataclass
class FiniteLim2014(_FiniteBase):
    """Two-decoy finite-key rate of Lim et al., PRA 89, 022307 (2014), Eqs. (1)-(5).

        l = s_X,0 + s_X,1 (1 - h(phi_X)) - lambda_EC - 6 log2(21/eps_sec) - log2(2/eps_cor)   (1)

    with the bounds of :func:`lim2014_bounds` in both bases, the phase error of
    :func:`phase_error_upper` and lambda_EC = f_EC n_X h(e_obs) (Sec. IV; e_obs the error rate of
    the key basis over all intensities). Intensities (mu1, mu2, mu3) with mu1 > mu2 + mu3 and
    mu2 > mu3 >= 0; all intensities give key (Sec. II, step 4). R = l / N per emitted pulse.

    Args:
        f_ec: error-correction inefficiency (Lim: 1.16).
        eps_sec, eps_cor: secrecy and correctness parameters (Lim: eps_cor = 1e-15).
        block_size: n_X, key-basis detections over all intensities.
        kappa: if > 0, eps_sec = kappa * l (Lim's Fig. 1 uses kappa = 1e-15) and ``eps_sec`` is
            ignored.
        n_pulses: N, the pulses of a block, when the block is fixed by its pulses rather than by
            n_X (None: ``block_size`` is used); n_X = N P(key-basis detection) follows.
        vacuum_term: count the vacuum detections s_X,0 in l (Eq. (1), the default); False leaves
            them out (the convention of the asymptotic rates of Lo, Ma, Chen 2005).
    """

    f_ec: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    block_size: float = 1e9
    kappa: float = 0.0
    n_pulses: float | None = None
    vacuum_term: bool = static(True)
    name: ClassVar[str] = "finite_lim2014"
    n_intensities: ClassVar[int] = 3
    eps_split: ClassVar[float] = 21.0

    def protocol_checks(self, protocol):
        return self._common_protocol_checks() + _lim_rules(self.name)

    def _bounds(self, det, err, mu, p, log_inv_eps, finite):
        return lim2014_bounds(det, err, mu, p, log_inv_eps, finite)


@pytree_dataclass
class FiniteRusca2018(_FiniteBase):
    """One-decoy finite-key rate of Rusca et al., APL 112, 171104 (2018), Eq. (A25).

        l = s_Z,0^l + s_Z,1^l (1 - h(phi_Z^u)) - lambda_EC - 6 log2(19/eps_sec) - log2(2/eps_cor)

    with the bounds of :func:`rusca2018_bounds` (no vacuum decoy: s_Z,0 is bounded from above by
    the decoy's errors), the phase error of Lim's Eq. (5) with eps = eps_sec/19 and
    lambda_EC = f_EC n_Z h(e_obs). Intensities (mu1, mu2) with mu1 > mu2 > 0.

    Args:
        f_ec, eps_sec, eps_cor, block_size, kappa, n_pulses, vacuum_term: as in
            :class:`FiniteLim2014` (block_size is Rusca's n_Z, the key-basis detections).
    """

    f_ec: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    block_size: float = 1e9
    kappa: float = 0.0
    n_pulses: float | None = None
    vacuum_term: bool = static(True)
    name: ClassVar[str] = "finite_rusca2018"
    n_intensities: ClassVar[int] = 2
    eps_split: ClassVar[float] = 19.0

    def protocol_checks(self, protocol):
        return self._common_protocol_checks() + _rusca_rules(self.name)

    def _bounds(self, det, err, mu, p, log_inv_eps, finite):
        return rusca2018_bounds(det, err, mu, p, log_inv_eps, finite)


@pytree_dataclass
class AsymptoticTwoDecoy(_FiniteBase):
    """Lim's two-decoy bounds without finite-size terms: the dashed curve of Lim's Fig. 1.

    Same Eqs. (1)-(5) with delta = 0, gamma = 0 and no security terms, so l / N does not depend on
    the block size; three intensities are still used (Lim, Fig. 1 caption). Rate per emitted pulse.
    """

    f_ec: float = 1.16
    vacuum_term: bool = static(True)
    name: ClassVar[str] = "asymptotic_two_decoy"
    n_intensities: ClassVar[int] = 3
    eps_split: ClassVar[float] = 21.0
    finite: ClassVar[bool] = False

    def protocol_checks(self, protocol):
        return self._common_protocol_checks() + _lim_rules(self.name)

    def _bounds(self, det, err, mu, p, log_inv_eps, finite):
        return lim2014_bounds(det, err, mu, p, log_inv_eps, finite)


@pytree_dataclass
class AsymptoticOneDecoy(_FiniteBase):
    """Rusca's one-decoy bounds without finite-size terms (the large-block limit of
    :class:`FiniteRusca2018`). Rate per emitted pulse."""

    f_ec: float = 1.16
    vacuum_term: bool = static(True)
    name: ClassVar[str] = "asymptotic_one_decoy"
    n_intensities: ClassVar[int] = 2
    eps_split: ClassVar[float] = 19.0
    finite: ClassVar[bool] = False

    def protocol_checks(self, protocol):
        return self._common_protocol_checks() + _rusca_rules(self.name)

    def _bounds(self, det, err, mu, p, log_inv_eps, finite):
        return rusca2018_bounds(det, err, mu, p, log_inv_eps, finite)


FINITE = {cls.name: cls for cls in (FiniteLim2014, FiniteRusca2018, AsymptoticTwoDecoy, AsymptoticOneDecoy)}
