"""Fading laws (qmc.freespace.fading): each sampler against its law (moments and a
Kolmogorov-Smirnov test, p-value threshold 1e-4 fixed before running, fixed keys), the densities
and distribution functions against independent scipy evaluations, Gamma-Gamma alpha and beta,
the exact beam-wandering mean, the quadratures' moments, and zero variance giving X = 1 bit for bit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

import qmc
from qmc.freespace import fading as fd
from qmc.freespace.turbulence import scintillation_index_plane
from qmc.validation import ValidationError

P_MIN = 1e-4  # KS p-value threshold, chosen before running
N = 200_000  # draws for the moment checks
N_KS = 5_000  # draws for the KS tests (each costs a distribution-function evaluation)


def z5(sample, exact_mean, exact_second):
    """|sample mean - exact| within 5 standard errors."""
    se = math.sqrt(max(exact_second - exact_mean ** 2, 0.0) / sample.size)
    return abs(float(np.mean(sample)) - exact_mean) <= 5 * se + 1e-15


def alpha_beta_numpy(s):
    """Al-Habash et al., Opt. Eng. 40, 1554 (2001), plane wave, zero inner scale, written with
    sigma_R = sqrt(s) as published (sigma_R^{12/5}), independently of the module."""
    sr = math.sqrt(s)
    alpha = 1.0 / (math.exp(0.49 * sr ** 2 / (1 + 1.11 * sr ** (12 / 5)) ** (7 / 6)) - 1)
    beta = 1.0 / (math.exp(0.51 * sr ** 2 / (1 + 0.69 * sr ** (12 / 5)) ** (5 / 6)) - 1)
    return alpha, beta


# --------------------------------------------------------------------------------------------
# Log-normal
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("si2", [0.1, 0.6])
def test_lognormal_sampler(si2):
    x = np.asarray(fd.sample_lognormal(jr.key(1), si2, (N,)))
    s2 = math.log1p(si2)
    assert z5(x, 1.0, 1.0 + si2)
    assert z5(x ** 2, 1.0 + si2, math.exp(6 * s2))  # E X^k = exp(k (k-1) s^2 / 2)
    law = stats.lognorm(math.sqrt(s2), scale=math.exp(-s2 / 2))
    assert stats.kstest(x[:N_KS], law.cdf).pvalue > P_MIN
    grid = np.array([0.05, 0.5, 1.0, 2.5])
    np.testing.assert_allclose(fd.lognormal_pdf(grid, si2), law.pdf(grid), rtol=1e-12)
    np.testing.assert_allclose(fd.lognormal_cdf(grid, si2), law.cdf(grid), rtol=1e-12)


@pytest.mark.parametrize("si2", [0.05, 0.5, 2.0])
def test_lognormal_quadrature_moments(si2):
    x, w = fd.lognormal_quadrature(si2, 32)
    assert float(jnp.sum(w)) == pytest.approx(1.0, rel=1e-14)
    assert float(jnp.sum(w * x)) == pytest.approx(1.0, rel=1e-12)
    assert float(jnp.sum(w * x ** 2)) == pytest.approx(1.0 + si2, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", [0.05, 0.2, 1.0, 1.6, 3.5, 10.0, 40.0])
def test_gamma_gamma_shapes_against_the_published_formula(s):
    # No published table of (alpha, beta) could be found to cite, so the shapes are checked against
    # an independent evaluation of the published expressions (and the limits below).
    alpha, beta = (float(v) for v in fd.gamma_gamma_shapes(s))
    a_ref, b_ref = alpha_beta_numpy(s)
    assert alpha == pytest.approx(a_ref, rel=1e-13) and beta == pytest.approx(b_ref, rel=1e-13)
    assert 1 / alpha + 1 / beta + 1 / (alpha * beta) == pytest.approx(float(scintillation_index_plane(s)), rel=1e-12)


def test_gamma_gamma_shape_limits():
    alpha, beta = (float(v) for v in fd.gamma_gamma_shapes(1e-4))
    assert alpha == pytest.approx(1 / 0.49e-4, rel=1e-3) and beta == pytest.approx(1 / 0.51e-4, rel=1e-3)
    alpha, beta = (float(v) for v in fd.gamma_gamma_shapes(1e4))  # saturation: beta -> 1, alpha grows
    assert beta == pytest.approx(1 / math.expm1(0.51 / 0.69 ** (5 / 6)), rel=1e-2) and alpha > 10
    # the widely quoted rounded values for sigma_R^2 = 0.2 / 1.6 / 3.5 (weak / moderate / strong),
    # found only as a figure legend in a public MATLAB script, not checked against a paper:
    for s, (a_q, b_q) in {0.2: (11.6, 10.1), 1.6: (4.0, 1.9), 3.5: (4.2, 1.4)}.items():
        alpha, beta = (float(v) for v in fd.gamma_gamma_shapes(s))
        assert abs(alpha - a_q) < 0.1 and abs(beta - b_q) < 0.1  # quoted to one decimal


@pytest.mark.parametrize("s", [0.3, 3.5])
def test_gamma_gamma_sampler(s):
    alpha, beta = (float(v) for v in fd.gamma_gamma_shapes(s))
    x = np.asarray(fd.sample_gamma_gamma(jr.key(2), alpha, beta, (N,)))
    m2 = (1 + 1 / alpha) * (1 + 1 / beta)
    m4 = np.prod([(1 + j / alpha) * (1 + j / beta) for j in range(4)])
    assert z5(x, 1.0, m2) and z5(x ** 2, m2, m4)
    # ln X = ln G1 + ln G2 has cumulants psi^(n-1)(alpha) + psi^(n-1)(beta) (n >= 2): far more
    # sensitive to a wrong shape than the moments of X
    log_x = np.log(x)
    k1 = special.digamma(alpha) - math.log(alpha) + special.digamma(beta) - math.log(beta)
    k2, k4 = (special.polygamma(n, alpha) + special.polygamma(n, beta) for n in (1, 3))
    assert z5(log_x, k1, k2 + k1 ** 2)
    assert z5((log_x - k1) ** 2, k2, k4 + 3 * k2 ** 2)
    cdf = lambda v: np.asarray(fd.gamma_gamma_cdf(v, alpha, beta, 16))  # to 1e-6: plenty for KS, and faster
    assert stats.kstest(x[:N_KS], cdf).pvalue > P_MIN


def gg_cdf_scipy(x, alpha, beta):
    f = lambda g: special.gammainc(alpha, alpha * x / g) * stats.gamma.pdf(g, beta, scale=1 / beta)
    return integrate.quad(f, 0, np.inf, epsabs=1e-15, epsrel=1e-12, limit=1000)[0]


@pytest.mark.parametrize("s", [0.2, 3.5, 20.0])
def test_gamma_gamma_density_and_cdf_against_scipy(s):
    alpha, beta = (float(v) for v in fd.gamma_gamma_shapes(s))
    grid = np.array([0.01, 0.2, 0.7, 1.0, 1.5, 4.0])
    m = (alpha + beta) / 2
    ref = 2 * (alpha * beta) ** m / (special.gamma(alpha) * special.gamma(beta)) * grid ** (m - 1) \
        * special.kv(alpha - beta, 2 * np.sqrt(alpha * beta * grid))
    np.testing.assert_allclose(fd.gamma_gamma_pdf(grid, alpha, beta), ref, rtol=1e-10)
    mine = np.asarray(fd.gamma_gamma_cdf(grid, alpha, beta))
    np.testing.assert_allclose(mine, [gg_cdf_scipy(v, alpha, beta) for v in grid], atol=1e-10)
    pdf = jax.jit(fd.gamma_gamma_pdf)
    total = integrate.quad(lambda v: float(pdf(v, alpha, beta)), 0, np.inf, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-7)


def test_log_bessel_k_against_scipy():
    nu, z = np.meshgrid([0.0, 0.3, 1.7, 5.0, 20.0], [1e-6, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4])
    ref = np.log(special.kve(nu, z)) - z
    np.testing.assert_allclose(fd.log_bessel_k(nu, z), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("s", [0.01, 0.5, 3.5, 30.0])
def test_gamma_gamma_quadrature_moments(s):
    alpha, beta = fd.gamma_gamma_shapes(s)
    x, w = fd.gamma_gamma_quadrature(alpha, beta, 16)
    assert x.shape == (256,)
    assert float(jnp.sum(w)) == pytest.approx(1.0, rel=1e-13)
    assert float(jnp.sum(w * x)) == pytest.approx(1.0, rel=1e-12)
    m2 = (1 + 1 / float(alpha)) * (1 + 1 / float(beta))
    assert float(jnp.sum(w * x ** 2)) == pytest.approx(m2, rel=1e-12)


def test_gamma_gamma_quadrature_is_traceable():
    def average(rytov):  # E[exp(-3 X)]: fading raises it (Jensen), so its slope in sigma_R^2 is positive
        x, w = fd.gamma_gamma_quadrature(*fd.gamma_gamma_shapes(rytov), 8)
        return jnp.sum(w * jnp.exp(-3.0 * x))

    h = 1e-5
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(average)))(jnp.asarray([0.1, 1.0, 5.0, 1.0 - h, 1.0 + h]))
    assert np.all(np.isfinite(np.asarray(values))) and np.all(np.asarray(grads) > 0)
    assert float(grads[1]) == pytest.approx(float((values[4] - values[3]) / (2 * h)), rel=1e-5)


# --------------------------------------------------------------------------------------------
# Beam wander
# --------------------------------------------------------------------------------------------

def t_exact_scipy(r, w, a):
    return stats.ncx2.cdf((2 * a / w) ** 2, 2, (2 * np.asarray(r) / w) ** 2)


@pytest.mark.parametrize("w, a", [(0.3, 0.5), (0.01, 1.0), (10.0, 0.5), (1.0, 1.0)])
def test_aperture_transmittance_is_the_noncentral_chi_square_cdf(w, a):
    r = np.linspace(0.0, a + 5 * w, 101)
    np.testing.assert_allclose(fd.aperture_transmittance(r, w, a), t_exact_scipy(r, w, a), atol=1e-13, rtol=1e-12)
    # centred beam: 1 - exp(-2 a^2 / W^2); and the approximation is exact at r = 0 and r = a
    assert float(fd.aperture_transmittance(0.0, w, a)) == pytest.approx(-math.expm1(-2 * a * a / w / w), rel=1e-13)
    for r0 in (0.0, a):
        assert float(fd.aperture_transmittance_approx(r0, w, a)) == pytest.approx(
            float(fd.aperture_transmittance(r0, w, a)), rel=1e-10)


def test_approximation_limits_and_accuracy():
    _, lam, scale = fd.beam_wander_approximation(100.0, 0.5)  # W >> a: T ~ T0^2 exp(-2 r^2 / W^2)
    assert float(lam) == pytest.approx(2.0, rel=1e-6) and float(scale) == pytest.approx(100.0 / math.sqrt(2), rel=1e-3)
    r = np.linspace(0.0, 1.0, 41)
    err = np.max(np.abs(np.asarray(fd.aperture_transmittance_approx(r, 0.5, 0.5)) - t_exact_scipy(r, 0.5, 0.5)))
    assert err < 0.02  # an approximation: a few 1e-3 here


@pytest.mark.parametrize("w, a, sigma", [(0.3, 0.5, 0.2), (0.2, 0.1, 0.3), (2.0, 0.5, 0.8)])
def test_beam_wander_mean_and_sampler(w, a, sigma):
    t = np.asarray(fd.sample_beam_wander_transmittance(jr.key(3), w, a, sigma, (N,)))
    mean = float(fd.beam_wander_mean_transmittance(w, a, sigma))
    assert mean == pytest.approx(-math.expm1(-2 * a * a / (w * w + 4 * sigma * sigma)), rel=1e-14)
    nodes, weights = fd.beam_wander_quadrature(w, a, sigma)
    m2 = float(jnp.sum(weights * nodes ** 2))
    m4 = float(jnp.sum(weights * nodes ** 4))
    assert z5(t, mean, m2) and z5(t ** 2, m2, m4)
    assert abs(float(np.mean(t)) / mean - 1) < 1e-3 or abs(float(np.mean(t)) - mean) < 1e-3
    cdf = lambda v: np.asarray(fd.beam_wander_cdf(v, w, a, sigma))
    assert stats.kstest(t[:N_KS], cdf).pvalue > P_MIN
    t_apx = np.asarray(fd.sample_beam_wander_transmittance(jr.key(4), w, a, sigma, (N,), exact=False))[:N_KS]
    cdf_apx = lambda v: np.asarray(fd.beam_wander_cdf_approx(v, w, a, sigma))
    assert stats.kstest(t_apx, cdf_apx).pvalue > P_MIN


def test_beam_wander_cdf_against_scipy_root():
    w, a, sigma = 0.3, 0.5, 0.2
    for t in (0.05, 0.3, 0.6, 0.9):
        r_star = optimize.brentq(lambda r: t_exact_scipy(r, w, a) - t, 0.0, 5.0, xtol=1e-14)
        ref = math.exp(-r_star ** 2 / (2 * sigma ** 2))
        assert float(fd.beam_wander_cdf(t, w, a, sigma)) == pytest.approx(ref, rel=1e-9)


def test_beam_wander_approximate_density():
    w, a, sigma = 0.3, 0.5, 0.2
    t0_sq = float(fd.beam_wander_approximation(w, a)[0])
    pdf = lambda v: float(fd.beam_wander_pdf_approx(v, w, a, sigma))
    cdf = lambda v: float(fd.beam_wander_cdf_approx(v, w, a, sigma))
    assert integrate.quad(pdf, 0, t0_sq, limit=400)[0] == pytest.approx(1.0, abs=1e-6)
    assert integrate.quad(pdf, 0.2, 0.7, limit=200)[0] == pytest.approx(cdf(0.7) - cdf(0.2), rel=1e-8)


@pytest.mark.parametrize("w, a, sigma", [(0.3, 0.5, 0.2), (0.01, 1.0, 1.0), (10.0, 0.5, 3.0), (1.0, 1.0, 0.01),
                                         (0.1, 0.5, 5.0)])
def test_beam_wander_quadrature_moments(w, a, sigma):
    nodes, weights = fd.beam_wander_quadrature(w, a, sigma)
    mean = float(fd.beam_wander_mean_transmittance(w, a, sigma))
    assert float(jnp.sum(weights)) == pytest.approx(1.0, rel=1e-12)
    assert float(jnp.sum(weights * nodes)) == pytest.approx(mean, rel=1e-9)
    pts = sorted({0.0, *[max(a + c * w / 2, 0.0) for c in (-6, -3, -1.5, 0, 1.5, 3, 6)],
                  *[sigma * math.sqrt(2 * u) for u in (2, 8, 20, 50)]})
    f = lambda r: t_exact_scipy(r, w, a) ** 2 * r / sigma ** 2 * math.exp(-r * r / (2 * sigma ** 2))
    m2 = sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=400)[0] for lo, hi in zip(pts[:-1], pts[1:]))
    assert float(jnp.sum(weights * nodes ** 2)) == pytest.approx(m2, rel=1e-9)


# --------------------------------------------------------------------------------------------
# The Fading component
# --------------------------------------------------------------------------------------------

LAWS_AT_ZERO = [fd.Fading("none"), fd.Fading("lognormal"), fd.Fading("gamma_gamma"),
                fd.Fading("lognormal", 0.0, scintillation_index=0.0),
                fd.Fading("beam_wander", beam_width_m=0.4, aperture_radius_m=0.3, wander_sigma_m=0.0)]


@pytest.mark.parametrize("fading", LAWS_AT_ZERO, ids=lambda f: f.law)
def test_zero_variance_is_the_fixed_loss_link_bit_for_bit(fading):
    x = np.asarray(jax.jit(lambda k: fading.sample(k, (1000,)))(jr.key(5)))
    assert np.all(x == 1.0)
    nodes, weights = fading.quadrature()
    assert np.all(np.asarray(nodes) == 1.0) and float(jnp.sum(weights)) == 1.0
    eta = jnp.asarray(0.0123456789)
    p_fixed = -jnp.expm1(-0.5 * eta)  # an outcome probability of the fixed-loss link
    p_faded = jnp.sum(weights * -jnp.expm1(-0.5 * eta * nodes))
    assert float(p_faded) == float(p_fixed)


@pytest.mark.parametrize("fading", [fd.Fading("lognormal", 0.4), fd.Fading("gamma_gamma", 2.0),
                                    fd.Fading("beam_wander", beam_width_m=0.3, aperture_radius_m=0.5,
                                              wander_sigma_m=0.2)], ids=lambda f: f.law)
def test_fading_component(fading):
    qmc.validate(fading)
    nodes, weights = fading.quadrature()
    assert float(jnp.sum(weights * nodes)) == pytest.approx(1.0, rel=1e-9)
    x = np.asarray(fading.sample(jr.key(6), (N,)))  # shape N: the samplers' kernels are compiled
    m2, m4 = (float(jnp.sum(weights * nodes ** k)) for k in (2, 4))
    assert z5(x, 1.0, m2) and z5(x ** 2, m2, m4)
    # the distribution function is the law's (checked against its sampler above), at E[X] = 1 scale
    probe = jnp.asarray([0.5, 1.0, 1.02])
    direct = {"lognormal": lambda v: fd.lognormal_cdf(v, fading.lognormal_index()),
              "gamma_gamma": lambda v: fd.gamma_gamma_cdf(v, *fading.shapes()),
              "beam_wander": lambda v: fd.beam_wander_cdf(v * fading.mean_transmittance(), 0.3, 0.5, 0.2)}
    np.testing.assert_allclose(fading.cdf(probe), direct[fading.law](probe), rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(fading.pdf(jnp.asarray([0.3, 0.9, 1.05])))))


def test_fading_validation():
    with pytest.raises(ValidationError, match="atmosphere.turbulence"):
        qmc.validate(fd.Fading("kolmogorov"), "atmosphere.turbulence.")
    with pytest.raises(ValidationError, match="rytov_variance"):
        qmc.validate(fd.Fading("gamma_gamma", -0.1))
    with pytest.raises(ValidationError, match="beam_width_m"):
        qmc.validate(fd.Fading("beam_wander", beam_width_m=0.0))
    with pytest.raises(ValidationError, match="scintillation_index"):
        qmc.validate(fd.Fading("lognormal", scintillation_index=-1.0))
