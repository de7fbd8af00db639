"""Decoy-state bounds with finite-size terms: the two-decoy bounds of Lim et al. (2014), the
one-decoy bounds of Rusca et al. (2018), and the phase-error bound both use.

Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), arXiv:1311.7129, Eqs. (2)-(5) and
Appendix A; Rusca, Boaron, Grunenfelder, Martin, Zbinden, APL 112, 171104 (2018),
arXiv:1801.03443, Appendix A. The finite-key analyses that combine them into a key length are in
:mod:`qmc.analysis.finite`.

Formulas checked against the papers. Lim: against the published PRA text (Eqs. (1)-(5), (A1)-(A10),
(B2)-(B4), Sec. IV). Rusca: the printed text was not available to us; the formulas follow a public
transcription of its Appendix A, checked by re-deriving Eqs. (A10), (A16), (A17) and (A22) from
Lim's Appendix A with two intensities (see :func:`rusca2018_bounds`).

* Lim's gamma. Main text Eq. (5) writes gamma(eps_sec, ...) with the factor 21^2/a^2 inside the
  logarithm; Appendix B, Eq. (B2), writes gamma(alpha_1, ...) with 1/a^2 and alpha_1 = eps_sec/21.
  Both are the same number; here gamma takes a = eps_sec/21 and 1/a^2 (writing
  "gamma(eps_sec/21, ...) with 21^2/a^2" would count the 21 twice). "log 2" in gamma's prefactor
  is the natural logarithm of 2.
* Lim's system model (Sec. IV; :class:`qmc.engines.lim2014.Lim2014Model`) prints the
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

Every square root, division and logarithm here has a guarded argument with the double-``where``
pattern, so neither the value nor its gradient is NaN for any input.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

__all__ = ["hoeffding_delta", "phase_error_upper", "lim2014_bounds", "rusca2018_bounds", "tau", "safe_div"]

_LN2 = math.log(2.0)


def _safe_sqrt(x):
    ok = x > 0.0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, x, 1.0)), 0.0)


def safe_div(num, den, fallback=0.0):
    ok = den != 0.0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fallback)


def hoeffding_delta(n, log_inv_eps):
    """delta(n, eps) = sqrt(n / 2 ln(1/eps)) (Lim 2014, Eq. (A1)); ``log_inv_eps`` = ln(1/eps)."""
    return _safe_sqrt(jnp.maximum(n, 0.0) / 2.0 * log_inv_eps)


def tau(mu, p, n: int):
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
    b = jnp.clip(safe_div(v, c), 0.0, 0.5)
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
    tau0, tau1 = tau(mu, p, 0), tau(mu, p, 1)
    s0 = tau0 * safe_div(mu2 * n_lo[2] - mu3 * n_hi[1], mu2 - mu3)
    s0_pos = jnp.maximum(s0, 0.0)
    num = n_lo[1] - n_hi[2] - safe_div(mu2**2 - mu3**2, mu1**2) * (n_hi[0] - s0_pos / tau0)
    s1 = tau1 * mu1 * safe_div(num, mu1 * (mu2 - mu3) - mu2**2 + mu3**2)
    v1 = tau1 * safe_div(m_hi[1] - m_lo[2], mu2 - mu3)
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
    tau0, tau1 = tau(mu, p, 0), tau(mu, p, 1)
    s0_lower = tau0 * safe_div(mu1 * n_lo[1] - mu2 * n_hi[0], mu1 - mu2)
    s0_upper = 2.0 * (tau0 * jnp.exp(mu2) / p[1] * (err[1] + d_m) + d_n)
    ratio = safe_div(mu2**2, mu1**2)
    num = n_lo[1] - ratio * n_hi[0] - (1.0 - ratio) * s0_upper / tau0
    s1 = tau1 * mu1 * safe_div(num, mu2 * (mu1 - mu2))
    v1 = tau1 * safe_div(m_hi[0] - m_lo[1], mu1 - mu2)
    return s0_lower, s1, v1
