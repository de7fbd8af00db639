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

Formulas checked against the papers. Lim: against the published PRA text (Eqs. (1)-(5), (A1)-(A10),
(B2)-(B4), Sec. IV). Rusca: the printed text was not available to us; the formulas follow a public
transcription of its Appendix A, checked by re-deriving Eqs. (A10), (A16), (A17) and (A22) from
Lim's Appendix A with two intensities (see :func:`rusca2018_bounds`).

* Lim's gamma. Main text Eq. (5) writes gamma(eps_sec, ...) with the factor 21^2/a^2 inside the
  logarithm; Appendix B, Eq. (B2), writes gamma(alpha_1, ...) with 1/a^2 and alpha_1 = eps_sec/21.
  Both are the same number; here gamma takes a = eps_sec/21 and 1/a^2 (writing
  "gamma(eps_sec/21, ...) with 21^2/a^2" would count the 21 twice). "log 2" in gamma's prefactor
  is the natural logarithm of 2.
* Lim's system model (Sec. IV; :func:`qmc.finite_study.lim2014_observations`) prints the
  misalignment error as e_mis [1 - exp(-eta_ch k)] with the channel transmittance eta_ch, while
  the detection rate uses eta_sys = eta_ch eta_Bob. This is a misprint: with eta_ch the optical
  error is e_mis / eta_Bob = 5 % of the detections instead of 0.5 %, the n_X = 1e4 curve stops
  near 16 km (the text says 135 km) and the n_X = 1e9 one near 149 km. With eta_sys, qmc gives
  130 km (135 km with a fixed eps_sec = 1e-10) and a 1e9 / 1e7 rate ratio at 100 km of 1.79
  (text: "about 1.75").
* Rusca's Hoeffding counts. Eq. (A18) as transcribed omits the factor e^k / p_k of Lim's n^+-;
  without it Eq. (A17) does not follow from Eq. (A10), so n^+-_k = e^k/p_k (n_k +- delta) is used.
  Eq. (A16) writes delta(m_Z, eps_1) for the error deviation that Eq. (A4) calls eps_2; with all
  terms equal (eps_sec = 19 eps) the two coincide. The transcribed gamma (A21) reads "2^21/a^2";
  gamma here is Lim's with a = eps_sec/19, consistent with Rusca's composition Eq. (A24).

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

from qmc._pytree import pytree_dataclass
from qmc.analysis.keyrate import INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, NOT_FINITE, NOT_POSITIVE
from qmc.analysis.keyrate import OK, REASONS, KeyRate, h2
from qmc.engines.observations import Observations
from qmc.engines import exact
from qmc.validation import Range, Rule, ValidationError, is_valid

__all__ = [
    "DecoyCounts", "FiniteKeyRate", "FiniteLim2014", "FiniteRusca2018", "AsymptoticTwoDecoy",
    "AsymptoticOneDecoy", "FINITE", "hoeffding_delta", "phase_error_upper", "lim2014_bounds",
    "rusca2018_bounds",
]

PHASE_UNDEFINED = REASONS.index("phase-error bound undefined (logarithm argument below 1)")
FINITE_SIZE = REASONS.index("finite-size terms exceed the key: key length not positive")

_LN2 = math.log(2.0)
_KAPPA_STEPS = 4  # fixed-point steps for eps_sec = kappa * l


# ----------------------------------------------------------------------------------------------
# Guarded elementary functions (value and gradient finite everywhere)
# ----------------------------------------------------------------------------------------------


def _safe_sqrt(x):
    ok = x > 0.0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, x, 1.0)), 0.0)


def _safe_div(num, den, fallback=0.0):
    ok = den != 0.0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fallback)


def _safe_log2(x):
    ok = x > 0.0
    return jnp.where(ok, jnp.log2(jnp.where(ok, x, 1.0)), -jnp.inf)


# ----------------------------------------------------------------------------------------------
# Counts
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class DecoyCounts:
    """Detections and errors per intensity and basis, and the number of emitted pulses.

    Attributes:
        detections: n[k, b], detections of intensity k in matched basis b (0 = key Z, 1 = test X),
            shape (k, 2). Expected values or observed counts (float64).
        errors: m[k, b], bit errors among them (double clicks count 1/2), shape (k, 2).
        n_pulses: N, pulses emitted by Alice (all classes, mismatched bases included), scalar.
    """

    detections: object
    errors: object
    n_pulses: object

    @classmethod
    def expected(cls, obs: Observations, protocol, block_size) -> "DecoyCounts":
        """Expected counts when the key basis has collected ``block_size`` detections.

        N = n_X / P(key-basis detection per pulse) with P = sum_k p_k p_z^2 Q[k, Z]; each count is
        N times its class probability p_k P_b^2 times the gain (error gain) of that class.
        """
        weight = jnp.asarray(protocol.probabilities)[:, None] * protocol.basis_probabilities()[None, :] ** 2
        per_pulse_det = weight * obs.gain  # (k, 2) detections per emitted pulse
        per_pulse_err = weight * obs.error_gain
        p_key = jnp.sum(per_pulse_det[:, 0])
        n_pulses = _safe_div(jnp.asarray(block_size, jnp.float64), p_key)
        return cls(n_pulses * per_pulse_det, n_pulses * per_pulse_err, n_pulses)

    @classmethod
    def per_pulse(cls, obs: Observations, protocol) -> "DecoyCounts":
        """Expected counts per emitted pulse (N = 1): what asymptotic analyses need."""
        weight = jnp.asarray(protocol.probabilities)[:, None] * protocol.basis_probabilities()[None, :] ** 2
        return cls(weight * obs.gain, weight * obs.error_gain, jnp.asarray(1.0))

    @classmethod
    def observed(cls, obs: Observations, protocol, n_pulses=None) -> "DecoyCounts":
        """Observed counts from :class:`Observations` built with ``from_counts`` (``n_sent`` set).

        Args:
            obs: observations with ``n_sent`` (pulses sent per intensity and matched basis).
            protocol: the protocol (gives p_z when ``n_pulses`` is not known).
            n_pulses: pulses emitted in total (all basis pairs); a Tally knows it. When None it is
                estimated as sum(n_sent) / (p_z^2 + (1 - p_z)^2), its expectation given the
                matched-basis pulses.
        """
        if obs.n_sent is None:
            raise ValueError("observed counts need Observations.from_counts (n_sent is None)")
        sent = jnp.asarray(obs.n_sent, jnp.float64)
        detections = sent * obs.gain
        errors = sent * obs.error_gain
        if n_pulses is None:
            pb = protocol.basis_probabilities()
            n_pulses = jnp.sum(sent) / jnp.sum(pb**2)
        return cls(detections, errors, jnp.asarray(n_pulses, jnp.float64))


# ----------------------------------------------------------------------------------------------
# Building blocks shared by both papers
# ----------------------------------------------------------------------------------------------


def hoeffding_delta(n, log_inv_eps):
    """delta(n, eps) = sqrt(n / 2 ln(1/eps)) (Lim 2014, Eq. (A1)); ``log_inv_eps`` = ln(1/eps)."""
    return _safe_sqrt(jnp.maximum(n, 0.0) / 2.0 * log_inv_eps)


def _tau(mu, p, n: int):
    """tau_n = sum_k p_k e^-k k^n / n!: probability that Alice sends n photons (Lim Eq. (2))."""
    return jnp.sum(p * jnp.exp(-mu) * mu**n) / math.factorial(n)


def _hoeffding_counts(counts, mu, p_safe, delta):
    """(e^k/p_k (n_k - delta), e^k/p_k (n_k + delta)) for every intensity k: Lim's n^-+_k."""
    w = jnp.exp(mu) / p_safe
    return w * (counts - delta), w * (counts + delta)


def phase_error_upper(v, s_test, s_key, log2_inv_a, finite: bool = True):
    """Upper bound on the single-photon phase-error rate of the key basis (Lim Eq. (5)).

        phi <= b + gamma(a, b, c, d),  b = v / c,
        gamma = sqrt((c + d)(1 - b) b / (c d ln 2) * log2((c + d) / (c d (1 - b) b) / a^2))

    with c = s_test (single photons in the test basis), d = s_key (in the key basis) and
    a = eps_sec / 21 (Lim) or / 19 (Rusca), passed as ``log2_inv_a`` = log2(1/a).
    b is clipped to [0, 1/2] (an error rate above 1/2 gives H = 1 anyway); at b = 0, gamma = 0
    (its limit). The bound needs c, d > 0 and a logarithm argument above 1.

    Returns:
        (phi, ok): the bound, and whether it is defined.
    """
    positive = (s_test > 0.0) & (s_key > 0.0)
    c = jnp.where(positive, s_test, 1.0)
    d = jnp.where(positive, s_key, 1.0)
    b = jnp.clip(_safe_div(v, c), 0.0, 0.5)
    if not finite:
        return jnp.where(positive, b, 0.5), positive
    has_b = b > 0.0
    bb = jnp.where(has_b, b, 0.25)
    var = (c + d) * (1.0 - bb) * bb / (c * d)
    # log2 of the argument, in log space: counts up to 1e12 and a down to 1e-20 stay in range
    log2_arg = jnp.log2(c + d) - jnp.log2(c) - jnp.log2(d) - jnp.log2((1.0 - bb) * bb) + 2.0 * log2_inv_a
    arg_ok = log2_arg > 0.0
    gamma = _safe_sqrt(var / _LN2 * jnp.where(arg_ok, log2_arg, 0.0))
    phi = jnp.where(has_b, bb + gamma, 0.0)
    # Without single photons in both bases there is no bound: report the worst case 1/2.
    return jnp.where(positive, phi, 0.5), positive & (arg_ok | ~has_b)


def lim2014_bounds(det, err, mu, p, log_inv_eps, finite: bool = True):
    """Two-decoy bounds of Lim et al. 2014 for one basis, Eqs. (2)-(4) ((A4)-(A10)).

        s_0 >= tau_0 (mu2 n^-_mu3 - mu3 n^+_mu2) / (mu2 - mu3)                          (2)
        s_1 >= tau_1 mu1 [n^-_mu2 - n^+_mu3 - (mu2^2 - mu3^2)/mu1^2 (n^+_mu1 - s_0/tau_0)]
               / [mu1 (mu2 - mu3) - mu2^2 + mu3^2]                                        (3)
        v_1 <= tau_1 (m^+_mu2 - m^-_mu3) / (mu2 - mu3)                                    (4)

    with n^+-_k = e^k/p_k (n_k +- delta(n, eps)), m^+-_k likewise with delta(m, eps), n and m the
    totals over intensities. The vacuum bound enters Eq. (3) clipped at 0 (s_0 >= 0 always holds).

    Args:
        det, err: detections and errors per intensity (mu1, mu2, mu3), shape (3,).
        mu, p: intensities and their probabilities, shape (3,); p must be positive.
        log_inv_eps: ln(1/eps) with eps = eps_sec/21.
        finite: False drops the deviations (the asymptotic bounds).

    Returns:
        (s0, s1, v1) lower, lower and upper bounds (unclipped).
    """
    scale = 1.0 if finite else 0.0
    d_n = scale * hoeffding_delta(jnp.sum(det), log_inv_eps)
    d_m = scale * hoeffding_delta(jnp.sum(err), log_inv_eps)
    n_lo, n_hi = _hoeffding_counts(det, mu, p, d_n)
    m_lo, m_hi = _hoeffding_counts(err, mu, p, d_m)
    mu1, mu2, mu3 = mu[0], mu[1], mu[2]
    tau0, tau1 = _tau(mu, p, 0), _tau(mu, p, 1)
    s0 = tau0 * _safe_div(mu2 * n_lo[2] - mu3 * n_hi[1], mu2 - mu3)
    s0_pos = jnp.maximum(s0, 0.0)
    num = n_lo[1] - n_hi[2] - _safe_div(mu2**2 - mu3**2, mu1**2) * (n_hi[0] - s0_pos / tau0)
    s1 = tau1 * mu1 * _safe_div(num, mu1 * (mu2 - mu3) - mu2**2 + mu3**2)
    v1 = tau1 * _safe_div(m_hi[1] - m_lo[2], mu2 - mu3)
    return s0, s1, v1


def rusca2018_bounds(det, err, mu, p, log_inv_eps, finite: bool = True):
    """One-decoy bounds of Rusca et al. 2018 for one basis (Eqs. (A10), (A16), (A17), (A19), (A22)).

        s_0 >= tau_0 / (mu1 - mu2) (mu1 n^-_mu2 - mu2 n^+_mu1)                           (A19)
        s_0 <= s_0^u = 2 [tau_0 e^mu2 / p_mu2 (m_mu2 + delta(m)) + delta(n)]             (A16)
        s_1 >= tau_1 mu1 / (mu2 (mu1 - mu2))
               [n^-_mu2 - mu2^2/mu1^2 n^+_mu1 - (mu1^2 - mu2^2)/mu1^2 s_0^u / tau_0]      (A17)
        v_1 <= tau_1 / (mu1 - mu2) (m^+_mu1 - m^-_mu2)                                    (A22)

    Without a vacuum decoy, s_1 needs an *upper* bound on the vacuum detections; Rusca takes it
    from the errors of the decoy intensity (vacuum detections err with probability 1/2). Eq. (A10)
    is derived here again from Lim's Appendix A with two intensities: the coefficient of s_1/tau_1
    is (mu1 - mu2) mu2 / mu1, which gives the prefactor of Eq. (A17).

    Args:
        det, err: detections and errors per intensity (mu1, mu2), shape (2,).
        mu, p: intensities and probabilities, shape (2,); p must be positive.
        log_inv_eps: ln(1/eps) with eps = eps_sec/19.
        finite: False drops the deviations (the asymptotic bounds).

    Returns:
        (s0_lower, s1_lower, v1_upper).
    """
    scale = 1.0 if finite else 0.0
    d_n = scale * hoeffding_delta(jnp.sum(det), log_inv_eps)
    d_m = scale * hoeffding_delta(jnp.sum(err), log_inv_eps)
    n_lo, n_hi = _hoeffding_counts(det, mu, p, d_n)
    m_lo, m_hi = _hoeffding_counts(err, mu, p, d_m)
    mu1, mu2 = mu[0], mu[1]
    tau0, tau1 = _tau(mu, p, 0), _tau(mu, p, 1)
    s0_lower = tau0 * _safe_div(mu1 * n_lo[1] - mu2 * n_hi[0], mu1 - mu2)
    s0_upper = 2.0 * (tau0 * jnp.exp(mu2) / p[1] * (err[1] + d_m) + d_n)
    ratio = _safe_div(mu2**2, mu1**2)
    num = n_lo[1] - ratio * n_hi[0] - (1.0 - ratio) * s0_upper / tau0
    s1 = tau1 * mu1 * _safe_div(num, mu2 * (mu1 - mu2))
    v1 = tau1 * _safe_div(m_hi[0] - m_lo[1], mu1 - mu2)
    return s0_lower, s1, v1


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


class _FiniteBase:
    """Shared machinery: counts -> bounds -> key length -> FiniteKeyRate."""

    name: ClassVar[str]
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
        return out

    def _common_protocol_checks(self):
        k = self.n_intensities
        name = self.name
        return [
            Rule("key_basis", lambda p, xp: xp.asarray(p.key_basis == "Z"),
                 f"{name} needs key_basis 'Z' (X is the test basis for the phase error)"),
            Rule("intensities", lambda p, xp: xp.asarray(xp.size(p.intensities) == k),
                 f"{name} needs {k} intensities"),
            Rule("probabilities", lambda p, xp: xp.all(xp.asarray(p.probabilities) > 0.0),
                 f"{name} needs every intensity probability > 0 (each is used in the decoy bounds)"),
            Rule("p_z", lambda p, xp: (xp.asarray(p.p_z) > 0.0) & (xp.asarray(p.p_z) < 1.0),
                 f"{name} needs 0 < p_z < 1 (both bases are measured)"),
        ]

    def protocol_checks(self, protocol):
        """Constraints this analysis puts on the protocol (``Rule`` objects, like ``checks``)."""
        raise NotImplementedError

    def validate_protocol(self, protocol):
        """Raise :class:`qmc.ValidationError` naming the first violated protocol constraint."""
        for rule in self.protocol_checks(protocol):
            message = rule.error(protocol, "protocol.")
            if message is not None:
                raise ValidationError(message)
        return protocol

    def _valid(self, protocol, link=None):
        ok = is_valid(self) & is_valid(protocol)
        if link is not None:
            ok = ok & is_valid(link)
        for rule in self.protocol_checks(protocol):
            ok = ok & rule.condition(protocol)
        return ok

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
        e_obs = _safe_div(jnp.sum(err[:, 0]), n_key)
        leak = self.f_ec * n_key * h2(e_obs)
        penalty = 0.0
        if finite:
            eps_cor = self._eps_cor()
            penalty = 6.0 * (jnp.log2(self.eps_split) - jnp.log2(eps_sec)) + 1.0 - jnp.log2(eps_cor)
        s1k_pos = jnp.maximum(s1k, 0.0)
        length = jnp.maximum(s0k, 0.0) + s1k_pos * (1.0 - h2(phi)) - leak - penalty
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
        if finite:
            kappa = jnp.asarray(self.kappa, jnp.float64)
            use_kappa = (kappa > 0.0) & (kappa < 1.0)
            n_key = jnp.sum(counts.detections[:, 0])
            fixed = self._eps_sec()

            def eps_of(length):
                return jnp.where(use_kappa, jnp.clip(kappa * jnp.maximum(length, 1.0), 1e-300, 0.5), fixed)

            def step(_, length):
                return self._key_length(counts, mu, p, eps_of(length), True)[0]

            # Start above the fixed point (l <= n_key) and descend: l_{i+1} = F(kappa l_i). The
            # contraction factor is about sqrt(n_key) / l, so a few steps suffice wherever l > 0.
            # fori_loop with static bounds: one compiled body, reverse-differentiable (a scan).
            # With kappa = 0 (fixed eps_sec) the iteration is skipped: a real branch unless kappa
            # itself is batched (vmap turns the cond into a select); the result is the same.
            length = jax.lax.cond(
                use_kappa, lambda l: jax.lax.fori_loop(0, _KAPPA_STEPS, step, l), lambda l: l,
                jnp.maximum(n_key, 1.0),
            )
            eps_sec = eps_of(length)
        length, diag, phase_ok = self._key_length(counts, mu, p, eps_sec, finite)
        length_inf, _, _ = self._key_length(counts, mu, p, eps_sec, False)

        n_pulses = counts.n_pulses
        rate_raw = _safe_div(length, n_pulses)
        valid = self._valid(protocol, link)
        detected = (diag["n_key"] > 0.0) & (n_pulses > 0.0) & jnp.isfinite(n_pulses)
        singles = (diag["s1"] > 0.0) & (diag["s1_test"] > 0.0)
        reason = jnp.select(
            [~valid, ~detected, ~singles, ~phase_ok, jnp.isnan(rate_raw),
             ~(rate_raw > 0.0) & (length_inf > 0.0), ~(rate_raw > 0.0)],
            [INVALID, NO_DETECTIONS, NO_SINGLE_PHOTONS, PHASE_UNDEFINED, NOT_FINITE, FINITE_SIZE,
             NOT_POSITIVE],
            OK,
        ).astype(jnp.int32)
        good = (reason == OK) & jnp.isfinite(rate_raw)
        rate = jnp.where(good, rate_raw, 0.0)
        pz = jnp.asarray(protocol.p_z, jnp.float64)
        y1 = _safe_div(diag["s1"], n_pulses * pz**2 * _tau(mu, p, 1))
        signal_gain = _safe_div(counts.detections[0, 0], n_pulses * p[0] * pz**2)
        return FiniteKeyRate(
            rate=rate, reason=reason, y1=_clean(y1), e1=_clean(diag["phase_error"]),
            gain=_clean(signal_gain), qber=_clean(diag["e_obs"]), key_length=_clean(length),
            n_pulses=_clean(n_pulses), n_key=_clean(diag["n_key"]), s0=_clean(diag["s0"]),
            s1=_clean(diag["s1"]), s1_test=_clean(diag["s1_test"]), v1_test=_clean(diag["v1_test"]),
            phase_error=_clean(diag["phase_error"]), leak_ec=_clean(diag["leak_ec"]),
            eps_sec=_clean(eps_sec), key_length_asymptotic=_clean(length_inf),
        )

    def counts(self, obs: Observations, protocol, n_pulses=None) -> DecoyCounts:
        """Counts this analysis reads: expected at ``block_size`` when ``obs`` holds
        probabilities (``n_sent`` is None), else the observed counts."""
        if obs.n_sent is not None:
            return DecoyCounts.observed(obs, protocol, n_pulses)
        if self.finite:
            return DecoyCounts.expected(obs, protocol, self.block_size)
        return DecoyCounts.per_pulse(obs, protocol)

    def key_rate_from_observations(
        self, obs: Observations, protocol, link=None, n_pulses=None
    ) -> FiniteKeyRate:
        """Key rate from :class:`Observations`.

        Expected probabilities (``Observations.from_table``, ``n_sent`` None) are scaled to the
        block size; observed counts (``Observations.from_counts``, e.g. from a Tally) are used as
        they are, with ``n_pulses`` the pulses sent (estimated from ``n_sent`` when None).
        ``link`` only adds its validity check.
        """
        return self.rate_from_counts(self.counts(obs, protocol, n_pulses), protocol, link)

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
    """

    f_ec: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    block_size: float = 1e9
    kappa: float = 0.0
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
        f_ec, eps_sec, eps_cor, block_size, kappa: as in :class:`FiniteLim2014` (block_size is
            Rusca's n_Z, the key-basis detections).
    """

    f_ec: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    block_size: float = 1e9
    kappa: float = 0.0
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
    name: ClassVar[str] = "asymptotic_one_decoy"
    n_intensities: ClassVar[int] = 2
    eps_split: ClassVar[float] = 19.0
    finite: ClassVar[bool] = False

    def protocol_checks(self, protocol):
        return self._common_protocol_checks() + _rusca_rules(self.name)

    def _bounds(self, det, err, mu, p, log_inv_eps, finite):
        return rusca2018_bounds(det, err, mu, p, log_inv_eps, finite)


FINITE = {cls.name: cls for cls in (FiniteLim2014, FiniteRusca2018, AsymptoticTwoDecoy, AsymptoticOneDecoy)}
