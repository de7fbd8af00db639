"""Fading laws of a free-space channel's transmittance, T = T_mean X with X >= 0 and E[X] = 1.

Each law has a sampler (key first), a density or distribution function, and a quadrature
(nodes, weights) for E[f(X)], which the exact engine uses to average outcome probabilities over
the fading. With zero variance every law gives X = 1 exactly: all samples 1.0, all nodes 1.0 with
weights (1, 0, ..., 0), so a faded link's numbers are the fixed-loss link's, bit for bit.

* **Log-normal** (weak turbulence): ln X ~ Normal(-s^2/2, s^2), s^2 = ln(1 + sigma_I^2), so
  E[X] = 1 and Var X = sigma_I^2 (the scintillation index). Quadrature: Gauss-Hermite.
* **Gamma-Gamma** (moderate to strong turbulence; M. A. Al-Habash, L. C. Andrews, R. L. Phillips,
  Opt. Eng. 40, 1554 (2001); Andrews & Phillips 2005, chap. 11): X = G1 G2 with independent
  G1 ~ Gamma(alpha, scale 1/alpha) (large-scale eddies) and G2 ~ Gamma(beta, scale 1/beta) (small
  scale), density 2 (ab)^{(a+b)/2} / (Gamma(a) Gamma(b)) x^{(a+b)/2 - 1} K_{a-b}(2 sqrt(ab x)).
  Plane wave, zero inner scale, from the Rytov variance s = sigma_R^2 (Al-Habash et al. 2001):
      alpha = 1 / (exp[0.49 s / (1 + 1.11 s^{6/5})^{7/6}] - 1),
      beta  = 1 / (exp[0.51 s / (1 + 0.69 s^{6/5})^{5/6}] - 1),
  so that Var X = 1/alpha + 1/beta + 1/(alpha beta) is the plane-wave scintillation index of
  :func:`qmc.freespace.turbulence.scintillation_index_plane`. Quadrature: the tensor product of
  two generalized Gauss-Laguerre rules (Golub-Welsch, traced), exact for E[X] and E[X^2].
* **Beam wander** (D. Vasylyev, A. A. Semenov, W. Vogel, PRL 108, 220501 (2012)): a Gaussian beam
  of 1/e^2 intensity radius W on a circular aperture of radius a, its centre deflected from the
  aperture's centre by a 2D Gaussian of standard deviation sigma per axis (so the deflection r is
  Rayleigh(sigma)). The transmittance at deflection r is exactly
      T(r) = (2 / (pi W^2)) int_{|x| <= a} exp(-2 |x - r|^2 / W^2) d^2x = P(|Z + r| <= a),
  Z ~ N(0, (W/2)^2 I_2): the noncentral chi-square CDF with 2 degrees of freedom and
  noncentrality (2r/W)^2 at (2a/W)^2, i.e. 1 - Q_1(2r/W, 2a/W) (Marcum Q). Averaged over the
  Gaussian deflection, Z + r ~ N(0, (W^2/4 + sigma^2) I_2), so
      <T> = 1 - exp(-2 a^2 / (W^2 + 4 sigma^2))   (closed form; X = T / <T>).
  The paper's approximation T(r) ~= T0^2 exp[-(r/R)^lambda] (their T is the amplitude transmission
  coefficient; here T is the transmittance, their T^2) with, x = 4 a^2 / W^2,
      T0^2 = 1 - exp(-x/2),
      lambda = 2 x e^{-x} I1(x) / (1 - e^{-x} I0(x)) / ln[2 T0^2 / (1 - e^{-x} I0(x))],
      R = a ln[2 T0^2 / (1 - e^{-x} I0(x))]^{-1/lambda},
  is exact at r = 0 and at r = a, value and slope (T(a) = (1 - e^{-x} I0(x)) / 2 is the exact
  1 - Q_1(b, b)); with the Rayleigh deflection it gives the paper's log-negative Weibull law,
  here for the transmittance t in (0, T0^2]:
      P(T <= t) = exp[-(R^2 / (2 sigma^2)) ln(T0^2/t)^{2/lambda}],
      p(t) = (R^2 / (sigma^2 lambda t)) ln(T0^2/t)^{2/lambda - 1} P(T <= t),
  which is the paper's density of the amplitude T changed to the variable T^2. The equation
  numbers of PRL 108, 220501 could not be checked here; the formulas are quoted by content.
  The samplers and quadrature use the exact T(r) (``exact=False`` samples the approximation);
  the exact distribution function P(T <= t) = exp(-r*^2 / (2 sigma^2)), T(r*) = t, is found by
  bisection. Quadrature: Gauss-Legendre panels in u = r^2 / (2 sigma^2) (density e^{-u}) with
  breaks where T(r) turns over (r = a + c W/2).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy import special

from qmc._pytree import pytree_dataclass, static
from qmc.freespace.turbulence import (
    large_scale_log_variance, scintillation_index_plane, small_scale_log_variance,
)
from qmc.validation import Range, Rule

__all__ = [
    "LAWS", "Fading", "lognormal_log_variance", "sample_lognormal", "lognormal_pdf", "lognormal_cdf",
    "lognormal_quadrature", "gamma_gamma_shapes", "sample_gamma_gamma", "log_bessel_k",
    "gamma_gamma_pdf", "gamma_gamma_cdf", "gamma_quadrature", "gamma_gamma_quadrature",
    "aperture_transmittance", "beam_wander_mean_transmittance", "beam_wander_approximation",
    "aperture_transmittance_approx", "sample_beam_wander_transmittance", "beam_wander_cdf",
    "beam_wander_cdf_approx", "beam_wander_pdf_approx", "beam_wander_quadrature",
]

LAWS = ("none", "lognormal", "gamma_gamma", "beam_wander")
_APERTURE_NODES = 64  # Gauss-Legendre nodes of the exact aperture integral
_APERTURE_HALF_WIDTH = 10.0  # the aperture integrand is cut at |t - 2r/W| > 10 (e^{-50})
_BESSEL_K_NODES = 512  # trapezoid nodes of K_nu's integral representation
_BISECTION_STEPS = 64
_WANDER_BREAKS = (-6.0, -3.0, -1.5, 0.0, 1.5, 3.0, 6.0)  # r = a + c W/2: where T(r) turns over
_WANDER_U_MAX = 50.0  # the beam-wander quadrature stops at r^2 / (2 sigma^2) = 50
_WANDER_U_EDGES = (0.0, 1.0, 2.0, 4.0, 7.0, 11.0, 16.0, 22.0, 30.0, 40.0, _WANDER_U_MAX)


def _no_fading(zero, nodes, weights):
    """Nodes all 1.0 and weights (1, 0, ..., 0) where ``zero``: the fixed-loss link bit for bit."""
    one_hot = (jnp.arange(nodes.shape[-1]) == 0).astype(weights.dtype)
    return jnp.where(zero, 1.0, nodes), jnp.where(zero, one_hot, weights)


def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _along_last(nodes, ndim: int):
    """A 1D array of nodes shaped (1, ..., 1, n) to meet arrays of rank ``ndim`` + 1 without
    implicit rank promotion (which qmc's tests make an error)."""
    return jnp.reshape(jnp.asarray(nodes), (1,) * ndim + (-1,))


# --------------------------------------------------------------------------------------------
# Log-normal
# --------------------------------------------------------------------------------------------

def lognormal_log_variance(scintillation_index):
    """s^2 = ln(1 + sigma_I^2), the variance of ln X."""
    return jnp.log1p(jnp.asarray(scintillation_index))


def sample_lognormal(key, scintillation_index, shape=()):
    """X = exp(s N - s^2/2), N standard normal: mean 1, variance sigma_I^2."""
    s2 = lognormal_log_variance(scintillation_index)
    zero = s2 == 0
    s2 = jnp.where(zero, 1.0, s2)
    x = jnp.exp(jnp.sqrt(s2) * jr.normal(key, shape) - 0.5 * s2)
    return jnp.where(zero, 1.0, x)


def lognormal_pdf(x, scintillation_index):
    """Density of X: exp(-(ln x + s^2/2)^2 / (2 s^2)) / (x s sqrt(2 pi)), 0 for x <= 0."""
    s2 = lognormal_log_variance(scintillation_index)
    x = jnp.asarray(x)
    safe = jnp.where(x > 0, x, 1.0)
    log_p = -(jnp.log(safe) + 0.5 * s2) ** 2 / (2 * s2) - jnp.log(safe) - 0.5 * jnp.log(2 * math.pi * s2)
    return jnp.where(x > 0, jnp.exp(log_p), 0.0)


def lognormal_cdf(x, scintillation_index):
    """P(X <= x) = Phi((ln x + s^2/2) / s)."""
    s2 = lognormal_log_variance(scintillation_index)
    x = jnp.asarray(x)
    safe = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, special.ndtr((jnp.log(safe) + 0.5 * s2) / jnp.sqrt(s2)), 0.0)


def lognormal_quadrature(scintillation_index, n: int = 32):
    """E[f(X)] ~= sum w_i f(x_i): Gauss-Hermite (probabilists') nodes z_i, x_i = exp(s z_i - s^2/2)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    s2 = lognormal_log_variance(scintillation_index)
    nodes = jnp.exp(jnp.sqrt(jnp.where(s2 == 0, 1.0, s2)) * z - 0.5 * s2)
    return _no_fading(s2 == 0, nodes, jnp.asarray(w))


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------

def gamma_gamma_shapes(rytov_variance):
    """(alpha, beta) of the plane-wave Gamma-Gamma law, Al-Habash et al. 2001 (zero inner scale);
    both inf at sigma_R^2 = 0."""
    s = jnp.asarray(rytov_variance)
    return 1.0 / jnp.expm1(large_scale_log_variance(s)), 1.0 / jnp.expm1(small_scale_log_variance(s))


def sample_gamma_gamma(key, alpha, beta, shape=()):
    """X = G1 G2, G1 ~ Gamma(alpha, 1/alpha), G2 ~ Gamma(beta, 1/beta); X = 1 where both are inf."""
    key_large, key_small = jr.split(key)
    zero = jnp.isinf(alpha) & jnp.isinf(beta)
    alpha = jnp.where(jnp.isinf(alpha), 1.0, alpha)
    beta = jnp.where(jnp.isinf(beta), 1.0, beta)
    x = jr.gamma(key_large, alpha, shape) / alpha * (jr.gamma(key_small, beta, shape) / beta)
    return jnp.where(zero, 1.0, x)


def log_bessel_k(nu, z):
    """ln K_nu(z) for z > 0: K_nu(z) = int_0^inf exp(-z cosh s) cosh(nu s) ds (DLMF 10.32.9),
    by the trapezoid rule on [0, asinh((|nu| + 60)/z) + 1] in log space (exponentially convergent:
    the integrand is analytic in a strip). About 1e-12 relative against scipy.special.kv."""
    nu, z = jnp.broadcast_arrays(jnp.abs(jnp.asarray(nu)), jnp.asarray(z))
    nu, z = nu[..., None], z[..., None]
    h = (jnp.arcsinh((nu + 60.0) / z) + 1.0) / _BESSEL_K_NODES
    j = np.arange(_BESSEL_K_NODES + 1)
    s = _along_last(j, h.ndim - 1) * h
    log_cosh = nu * s + jnp.log1p(jnp.exp(-2.0 * nu * s)) - math.log(2.0)
    ends = _along_last(np.where((j == 0) | (j == _BESSEL_K_NODES), math.log(0.5), 0.0), h.ndim - 1)
    return jax.nn.logsumexp(-z * jnp.cosh(s) + log_cosh + ends, axis=-1) + jnp.log(h[..., 0])


def gamma_gamma_pdf(x, alpha, beta):
    """Density of X (Al-Habash et al. 2001): 2 (ab)^{(a+b)/2} x^{(a+b)/2-1} K_{a-b}(2 sqrt(ab x))
    / (Gamma(a) Gamma(b)); 0 for x <= 0."""
    x = jnp.asarray(x)
    safe = jnp.where(x > 0, x, 1.0)
    m = 0.5 * (alpha + beta)
    log_p = (math.log(2.0) + m * jnp.log(alpha * beta) - special.gammaln(alpha) - special.gammaln(beta)
             + (m - 1.0) * jnp.log(safe) + log_bessel_k(alpha - beta, 2.0 * jnp.sqrt(alpha * beta * safe)))
    return jnp.where(x > 0, jnp.exp(log_p), 0.0)


def gamma_quadrature(shape, n: int = 16):
    """Nodes and weights of E[f(G)], G ~ Gamma(shape, scale 1/shape) (mean 1): generalized
    Gauss-Laguerre with parameter shape - 1 by Golub-Welsch (the eigenvalues of the Jacobi matrix
    with diagonal 2i + shape and off-diagonal sqrt(i (i + shape - 1)); weights the squared first
    components of its eigenvectors). Exact for polynomials of degree < 2n; traceable in ``shape``."""
    shape = jnp.asarray(shape, dtype=float)
    i = jnp.arange(n, dtype=float)
    off = jnp.sqrt(i[1:] * (i[1:] + shape - 1.0))
    jacobi = jnp.diag(2.0 * i + shape) + jnp.diag(off, 1) + jnp.diag(off, -1)
    t, v = jnp.linalg.eigh(jacobi)
    return t / shape, v[0] ** 2


def gamma_gamma_quadrature(alpha, beta, n: int = 16):
    """E[f(X)] ~= sum w_k f(x_k) over the n^2 products of two :func:`gamma_quadrature` rules:
    exact for E[X^j], j < 2n (to round-off); nodes 1.0 and weights (1, 0, ...) at alpha = beta = inf."""
    zero = jnp.isinf(alpha) & jnp.isinf(beta)
    g1, w1 = gamma_quadrature(jnp.where(jnp.isinf(alpha), 1.0, alpha), n)
    g2, w2 = gamma_quadrature(jnp.where(jnp.isinf(beta), 1.0, beta), n)
    nodes = (g1[:, None] * g2[None, :]).ravel()
    weights = (w1[:, None] * w2[None, :]).ravel()
    return _no_fading(zero, nodes, weights)


def gamma_gamma_cdf(x, alpha, beta, nodes_per_panel: int = 32):
    """P(X <= x) = E[P(alpha, alpha x / G2)], G2 ~ Gamma(beta, 1/beta), P the regularized lower
    incomplete gamma function: Gauss-Legendre in u = ln G2 on [-max(45/beta, 12/sqrt(beta)),
    max(ln(1 + 50/beta), 12/sqrt(beta))], in four panels split at u = ln x (where the inner
    function steps) and ln x -+ 8/sqrt(alpha). About 1e-10 against adaptive quadrature (tests)."""
    x = jnp.clip(jnp.asarray(x), 1e-300, None)
    u_lo = -jnp.maximum(45.0 / beta, 12.0 / jnp.sqrt(beta))
    u_hi = jnp.maximum(jnp.log1p(50.0 / beta), 12.0 / jnp.sqrt(beta))
    u_x = jnp.clip(jnp.log(x), u_lo, u_hi)
    d = 8.0 / jnp.sqrt(alpha)
    edges = jnp.stack(jnp.broadcast_arrays(u_lo, jnp.clip(u_x - d, u_lo, u_hi), u_x,
                                           jnp.clip(u_x + d, u_lo, u_hi), u_hi), axis=-1)
    t, w = (_along_last(v, edges.ndim) for v in _legendre(nodes_per_panel))
    half = 0.5 * (edges[..., 1:] - edges[..., :-1])[..., None]
    u = half * t + 0.5 * (edges[..., 1:] + edges[..., :-1])[..., None]
    # density of ln G2: beta^beta exp(beta u - beta e^u) / Gamma(beta)
    log_density = beta * jnp.log(beta) + beta * (u - jnp.exp(u)) - special.gammaln(beta)
    inner = special.gammainc(alpha, alpha * x[..., None, None] * jnp.exp(-u))
    return jnp.clip(jnp.sum(inner * jnp.exp(log_density) * half * w, axis=(-2, -1)), 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Beam wander
# --------------------------------------------------------------------------------------------

def aperture_transmittance(deflection_m, beam_width_m, aperture_radius_m):
    """Exact fraction of a Gaussian beam (1/e^2 radius W) through a circular aperture (radius a)
    when the beam centre is ``deflection_m`` r from the aperture centre: 1 - Q_1(2r/W, 2a/W)
    = int_0^{2a/W} t exp(-(t - nu)^2/2) I0e(nu t) dt, nu = 2r/W (Gauss-Legendre on the part of
    [0, 2a/W] within 10 of nu; the rest is below e^{-50})."""
    nu = 2.0 * jnp.asarray(deflection_m) / beam_width_m
    b = 2.0 * jnp.asarray(aperture_radius_m) / beam_width_m
    lo = jnp.clip(nu - _APERTURE_HALF_WIDTH, 0.0, None)
    hi = jnp.maximum(jnp.minimum(b, nu + _APERTURE_HALF_WIDTH), lo)
    nu, lo, hi = jnp.broadcast_arrays(nu, lo, hi)
    x, w = (_along_last(v, nu.ndim) for v in _legendre(_APERTURE_NODES))
    half = 0.5 * (hi - lo)[..., None]
    t = half * x + 0.5 * (hi + lo)[..., None]
    f = t * jnp.exp(-0.5 * (t - nu[..., None]) ** 2) * special.i0e(nu[..., None] * t)
    return jnp.sum(f * w, axis=-1) * half[..., 0]


def beam_wander_mean_transmittance(beam_width_m, aperture_radius_m, wander_sigma_m):
    """<T> = 1 - exp(-2 a^2 / (W^2 + 4 sigma^2)), exact for a Gaussian deflection."""
    a, w, s = (jnp.asarray(v) for v in (aperture_radius_m, beam_width_m, wander_sigma_m))
    return -jnp.expm1(-2.0 * a ** 2 / (w ** 2 + 4.0 * s ** 2))


def beam_wander_approximation(beam_width_m, aperture_radius_m):
    """(T0^2, lambda, R in m) of Vasylyev et al. 2012's T(r) ~= T0^2 exp[-(r/R)^lambda]."""
    a = jnp.asarray(aperture_radius_m)
    x = 4.0 * a ** 2 / jnp.asarray(beam_width_m) ** 2
    t0_sq = -jnp.expm1(-0.5 * x)
    at_edge = 1.0 - special.i0e(x)  # 2 T(a), the exact transmittance at r = a, doubled
    log_ratio = jnp.log(2.0 * t0_sq / at_edge)
    shape = 2.0 * x * special.i1e(x) / at_edge / log_ratio
    return t0_sq, shape, a * log_ratio ** (-1.0 / shape)


def aperture_transmittance_approx(deflection_m, beam_width_m, aperture_radius_m):
    """Vasylyev et al. 2012's approximation T0^2 exp[-(r/R)^lambda] of :func:`aperture_transmittance`."""
    t0_sq, shape, scale_m = beam_wander_approximation(beam_width_m, aperture_radius_m)
    return t0_sq * jnp.exp(-(jnp.asarray(deflection_m) / scale_m) ** shape)


def sample_beam_wander_transmittance(key, beam_width_m, aperture_radius_m, wander_sigma_m, shape=(),
                                     exact: bool = True):
    """Transmittance T(r) with r ~ Rayleigh(sigma): exact (Marcum Q) or the paper's approximation."""
    r = jnp.asarray(wander_sigma_m) * jr.rayleigh(key, 1.0, shape)
    fn = aperture_transmittance if exact else aperture_transmittance_approx
    return fn(r, beam_width_m, aperture_radius_m)


def beam_wander_cdf(t, beam_width_m, aperture_radius_m, wander_sigma_m):
    """Exact P(T <= t) = exp(-r*^2 / (2 sigma^2)) with T(r*) = t (T falls with r), by bisection."""
    t = jnp.asarray(t)
    t_max = aperture_transmittance(0.0, beam_width_m, aperture_radius_m)
    r_hi = jnp.asarray(aperture_radius_m) + 10.0 * jnp.asarray(beam_width_m)

    def step(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = aperture_transmittance(mid, beam_width_m, aperture_radius_m) > t
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, step, (jnp.zeros_like(t), jnp.full_like(t, r_hi)))
    r_star = 0.5 * (lo + hi)
    below = jnp.exp(-r_star ** 2 / (2.0 * jnp.asarray(wander_sigma_m) ** 2))
    return jnp.where(t >= t_max, 1.0, jnp.where(t <= 0, 0.0, below))


def _log_t0_over(t, t0_sq):
    return jnp.log(t0_sq / jnp.clip(t, 1e-300, None))


def beam_wander_cdf_approx(t, beam_width_m, aperture_radius_m, wander_sigma_m):
    """P(T <= t) of the approximation: exp[-(R^2/(2 sigma^2)) ln(T0^2/t)^{2/lambda}] on (0, T0^2)."""
    t = jnp.asarray(t)
    t0_sq, shape, scale_m = beam_wander_approximation(beam_width_m, aperture_radius_m)
    u = jnp.clip(_log_t0_over(t, t0_sq), 0.0, None)
    cdf = jnp.exp(-(scale_m ** 2 / (2.0 * jnp.asarray(wander_sigma_m) ** 2)) * u ** (2.0 / shape))
    return jnp.where(t >= t0_sq, 1.0, jnp.where(t <= 0, 0.0, cdf))


def beam_wander_pdf_approx(t, beam_width_m, aperture_radius_m, wander_sigma_m):
    """Density of T under the approximation (the paper's log-negative Weibull law, in T^2):
    (R^2 / (sigma^2 lambda t)) ln(T0^2/t)^{2/lambda - 1} P(T <= t) on (0, T0^2), else 0."""
    t = jnp.asarray(t)
    t0_sq, shape, scale_m = beam_wander_approximation(beam_width_m, aperture_radius_m)
    inside = (t > 0) & (t < t0_sq)
    u = jnp.where(inside, _log_t0_over(t, t0_sq), 1.0)
    s2 = jnp.asarray(wander_sigma_m) ** 2
    cdf = jnp.exp(-(scale_m ** 2 / (2.0 * s2)) * u ** (2.0 / shape))
    density = scale_m ** 2 / (s2 * shape * jnp.where(inside, t, 1.0)) * u ** (2.0 / shape - 1.0) * cdf
    return jnp.where(inside, density, 0.0)


def beam_wander_quadrature(beam_width_m, aperture_radius_m, wander_sigma_m, nodes_per_panel: int = 8):
    """E[f(T)] ~= sum w_k f(T_k) over the Rayleigh deflection, in u = r^2 / (2 sigma^2) (density
    e^{-u}; T is analytic in u): Gauss-Legendre on the panels between u = 0, 1, 2, 4, 7, 11, 16, 22, 30, 40, 50 and the u
    of r = a + c W/2, c in -6 ... 6 (where T(r) falls), so that any sigma / W is resolved; the
    mass beyond u = 50 (e^{-50}) is left out. Returns transmittances T_k (not T_k / <T>)."""
    a, w_m = jnp.asarray(aperture_radius_m), jnp.asarray(beam_width_m)
    sigma = jnp.asarray(wander_sigma_m)
    zero = sigma == 0
    sigma = jnp.where(zero, 1.0, sigma)
    breaks_r = jnp.clip(a + jnp.asarray(_WANDER_BREAKS) * 0.5 * w_m, 0.0, None)
    breaks_u = jnp.minimum(breaks_r ** 2 / (2.0 * sigma ** 2), _WANDER_U_MAX)
    edges = jnp.sort(jnp.concatenate([jnp.asarray(_WANDER_U_EDGES), breaks_u]))
    x, w = (_along_last(v, 1) for v in _legendre(nodes_per_panel))
    half = 0.5 * (edges[1:] - edges[:-1])[:, None]
    u = (half * x + 0.5 * (edges[1:] + edges[:-1])[:, None]).ravel()
    weights = (half * w).ravel() * jnp.exp(-u)
    nodes = aperture_transmittance(sigma * jnp.sqrt(2.0 * u), w_m, a)
    t_fixed = aperture_transmittance(0.0, w_m, a)
    nodes, weights = _no_fading(zero, nodes, weights)
    return jnp.where(zero, t_fixed, nodes), weights


# --------------------------------------------------------------------------------------------
# The fading of a link, as a component
# --------------------------------------------------------------------------------------------

@pytree_dataclass
class Fading:
    """The fading law of a link's transmittance, T = T_mean X (config: ``atmosphere.turbulence``
    for ``law``, ``sweep.rytov_variance``, ``fading.*``).

    Args:
        law: ``"none"``, ``"lognormal"``, ``"gamma_gamma"`` or ``"beam_wander"`` (static).
        rytov_variance: sigma_R^2 of the path (plane wave); sets alpha and beta of Gamma-Gamma and,
            through the plane-wave scintillation index in all regimes, the log-normal's variance.
        scintillation_index: sigma_I^2 for the log-normal law instead (None: from
            ``rytov_variance``; give ``rytov_variance`` itself for the weak-turbulence sigma_I^2 =
            sigma_R^2). Not used by the other laws.
        beam_width_m, aperture_radius_m, wander_sigma_m: beam wander's W (1/e^2 radius at the
            aperture), a and sigma (deflection per axis), m. X = T(r) / <T>, and
            :meth:`mean_transmittance` is <T> (1 for the other laws).
    """

    law: str = static("none")
    rytov_variance: float = 0.0
    scintillation_index: float | None = None
    beam_width_m: float = 1.0
    aperture_radius_m: float = 0.5
    wander_sigma_m: float = 0.0

    def checks(self):
        optional = Rule("scintillation_index",
                        lambda f, xp: xp.asarray(True) if f.scintillation_index is None
                        else xp.asarray(f.scintillation_index) >= 0, "must be >= 0 or null")
        return [
            Rule("law", lambda f, xp: xp.asarray(f.law in LAWS), f"must be one of {', '.join(LAWS)}"),
            Range("rytov_variance", 0.0, 100.0), optional,
            Range("beam_width_m", 0.0, math.inf, lo_open=True),
            Range("aperture_radius_m", 0.0, math.inf, lo_open=True),
            Range("wander_sigma_m", 0.0),
        ]

    def shapes(self):
        """(alpha, beta) of Gamma-Gamma from ``rytov_variance``."""
        return gamma_gamma_shapes(self.rytov_variance)

    def lognormal_index(self):
        """sigma_I^2 the log-normal law uses."""
        if self.scintillation_index is not None:
            return jnp.asarray(self.scintillation_index)
        return scintillation_index_plane(self.rytov_variance)

    def mean_transmittance(self):
        """<T> of beam wander (the aperture's mean capture); 1 for the other laws."""
        if self.law == "beam_wander":
            return beam_wander_mean_transmittance(self.beam_width_m, self.aperture_radius_m,
                                                  self.wander_sigma_m)
        return jnp.asarray(1.0)

    def _wander(self):
        return self.beam_width_m, self.aperture_radius_m, self.wander_sigma_m

    def sample(self, key, shape=()):
        """Draws of X (mean 1); all 1.0 without fading."""
        if self.law == "none":
            return jnp.ones(shape)
        if self.law == "lognormal":
            return sample_lognormal(key, self.lognormal_index(), shape)
        if self.law == "gamma_gamma":
            return sample_gamma_gamma(key, *self.shapes(), shape)
        t = sample_beam_wander_transmittance(key, *self._wander(), shape)
        return jnp.where(self.wander_sigma_m == 0, 1.0, t / self.mean_transmittance())

    def quadrature(self, n: int = 16):
        """(nodes of X, weights) with sum w f(x) ~= E[f(X)]; (1.0,), (1.0,) for ``none``. ``n``:
        Gauss-Hermite nodes (log-normal), nodes per factor (Gamma-Gamma: n^2 nodes) or twice the
        nodes per panel (beam wander: 17 panels of n/2 nodes)."""
        if self.law == "none":
            return jnp.ones(1), jnp.ones(1)
        if self.law == "lognormal":
            return lognormal_quadrature(self.lognormal_index(), n)
        if self.law == "gamma_gamma":
            return gamma_gamma_quadrature(*self.shapes(), n)
        t, w = beam_wander_quadrature(*self._wander(), max(n // 2, 2))
        return jnp.where(self.wander_sigma_m == 0, 1.0, t / self.mean_transmittance()), w

    def pdf(self, x):
        """Density of X (beam wander: the paper's approximation, scaled by the exact <T>)."""
        if self.law == "lognormal":
            return lognormal_pdf(x, self.lognormal_index())
        if self.law == "gamma_gamma":
            return gamma_gamma_pdf(x, *self.shapes())
        if self.law == "beam_wander":
            mean = self.mean_transmittance()
            return mean * beam_wander_pdf_approx(mean * jnp.asarray(x), *self._wander())
        raise ValueError("law 'none' has no density: X = 1")

    def cdf(self, x):
        """P(X <= x) (beam wander: exact)."""
        x = jnp.asarray(x)
        if self.law == "none":
            return jnp.where(x >= 1.0, 1.0, 0.0)
        if self.law == "lognormal":
            return lognormal_cdf(x, self.lognormal_index())
        if self.law == "gamma_gamma":
            return gamma_gamma_cdf(x, *self.shapes())
        return beam_wander_cdf(self.mean_transmittance() * x, *self._wander())
