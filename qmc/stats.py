"""Estimators, standard errors and confidence intervals for Monte Carlo and observed counts.

Every function here is a pure ``jnp`` function (jit- and vmap-safe) unless it says otherwise.
Methods, stated once:

* **Binomial standard error**: sqrt(p (1 - p) / n) with p = k / n (the plug-in estimate; 0 when
  k = 0 or k = n, where an interval is the honest answer).
* **Wilson score interval** (Wilson, JASA 22, 209 (1927)): the set of p for which
  |k - n p| <= z sqrt(n p (1 - p)); good coverage even for k of a few, never outside [0, 1].
  Accepts a non-integer k (errors with double clicks counted 1/2).
* **Clopper-Pearson interval** (Biometrika 26, 404 (1934)): exact (conservative) binomial interval
  from beta quantiles, computed by bisection of the regularized incomplete beta function.
* **Weighted mean of outcomes** (QBER with double clicks counted 1/2): the per-detection error
  value e in {0, 1/2, 1}; conditional on the D detections, stderr = sqrt(Var(e) / D) with
  Var(e) = E[e^2] - E[e]^2 (the sample variance of the per-detection values).
* **Delta method** (first order): for a differentiable f of estimates x with covariance C,
  stderr(f) = sqrt(grad f^T C grad f); the interval is f +- z stderr, clipped to the range of f.
"""

from __future__ import annotations

import functools
import math
import statistics

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import betainc

from qmc._pytree import pytree_dataclass

__all__ = [
    "Estimate", "z_value", "binomial_stderr", "wilson_interval", "clopper_pearson_interval",
    "normal_interval", "weighted_outcome_stderr", "delta_method_stderr",
]


@pytree_dataclass
class Estimate:
    """A value with its standard error and a confidence interval [lo, hi].

    Attributes:
        value: point estimate.
        stderr: standard error (method stated by whoever made it).
        lo, hi: interval bounds at the stated confidence.
    """

    value: object
    stderr: object
    lo: object
    hi: object


def z_value(confidence: float = 0.95) -> float:
    """Two-sided normal quantile: 1.96 for 0.95 (a Python float, so it is static under jit)."""
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def binomial_stderr(k, n):
    """Plug-in standard error of the frequency k / n: sqrt(p (1 - p) / n); 0 where n = 0."""
    k = jnp.asarray(k, jnp.float64)
    n = jnp.asarray(n, jnp.float64)
    safe = jnp.maximum(n, 1.0)
    p = jnp.clip(k / safe, 0.0, 1.0)
    return jnp.where(n > 0, jnp.sqrt(p * (1.0 - p) / safe), 0.0)


@functools.partial(jax.jit, static_argnames="confidence")
def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval (lo, hi) for a binomial proportion k / n; (0, 1) where n = 0."""
    z = z_value(confidence)
    k = jnp.asarray(k, jnp.float64)
    n = jnp.asarray(n, jnp.float64)
    safe = jnp.maximum(n, 1.0)
    p = jnp.clip(k / safe, 0.0, 1.0)
    denom = 1.0 + z * z / safe
    center = (p + z * z / (2.0 * safe)) / denom
    half = z * jnp.sqrt(p * (1.0 - p) / safe + z * z / (4.0 * safe * safe)) / denom
    lo = jnp.where(n > 0, jnp.clip(center - half, 0.0, 1.0), 0.0)
    hi = jnp.where(n > 0, jnp.clip(center + half, 0.0, 1.0), 1.0)
    lo = jnp.where(k <= 0, 0.0, lo)
    hi = jnp.where((k >= n) & (n > 0), 1.0, hi)
    return lo, hi


def _beta_ppf(q, a, b, iters: int = 80):
    """Quantile of Beta(a, b) by bisection of betainc (monotone, so bisection is safe)."""

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = betainc(a, b, mid) < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = lax.fori_loop(0, iters, body, (jnp.zeros_like(q), jnp.ones_like(q)))
    return 0.5 * (lo + hi)


def _beta_quantile_normal(z, a, b):
    """Quantile of Beta(a, b) at standard-normal quantile z: mean + sd (z + gamma (z^2 - 1) / 6),
    gamma the skewness (Cornish-Fisher); for large a + b."""
    s = a + b
    mean = a / s
    sd = jnp.sqrt(a * b / (s * s * (s + 1.0)))
    gamma = 2.0 * (b - a) * jnp.sqrt(s + 1.0) / ((s + 2.0) * jnp.sqrt(a * b))
    return jnp.clip(mean + sd * (z + gamma * (z * z - 1.0) / 6.0), 0.0, 1.0)


@functools.partial(jax.jit, static_argnames="confidence")
def clopper_pearson_interval(k, n, confidence: float = 0.95):
    """Clopper-Pearson (exact) interval (lo, hi) for integer k successes in n trials.

    lo = Beta^-1(alpha/2; k, n - k + 1), hi = Beta^-1(1 - alpha/2; k + 1, n - k), with lo = 0 at
    k = 0 and hi = 1 at k = n. Bisection to ~1e-24 absolute (80 halvings), in float64.
    """
    alpha = 1.0 - confidence
    k = jnp.asarray(k, jnp.float64)
    n = jnp.asarray(n, jnp.float64)
    k, n = jnp.broadcast_arrays(k, n)
    a_lo = jnp.maximum(k, 1e-300)
    b_lo = jnp.maximum(n - k + 1.0, 1e-300)
    a_hi = jnp.maximum(k + 1.0, 1e-300)
    b_hi = jnp.maximum(n - k, 1e-300)
    lo = _beta_ppf(jnp.full_like(k, alpha / 2.0), a_lo, b_lo)
    hi = _beta_ppf(jnp.full_like(k, 1.0 - alpha / 2.0), a_hi, b_hi)
    # betainc loses its precision when both shape parameters are large (1e8): with more than 1e5
    # successes and failures the Cornish-Fisher expansion of the beta quantile to its skewness
    # term (error a fraction O(1/sqrt(min(k, n - k))) of the width) replaces the bisection.
    z = z_value(confidence)
    large = jnp.minimum(k, n - k) > 1e5
    lo = jnp.where(large, _beta_quantile_normal(-z, a_lo, b_lo), lo)
    hi = jnp.where(large, _beta_quantile_normal(z, a_hi, b_hi), hi)
    lo = jnp.where(k <= 0, 0.0, lo)
    hi = jnp.where(k >= n, 1.0, hi)
    return lo, hi


def normal_interval(value, stderr, confidence: float = 0.95, lo_bound=-jnp.inf, hi_bound=jnp.inf):
    """value +- z stderr, clipped to [lo_bound, hi_bound]."""
    z = z_value(confidence)
    return (jnp.clip(value - z * stderr, lo_bound, hi_bound), jnp.clip(value + z * stderr, lo_bound, hi_bound))


def weighted_outcome_stderr(sum_w, sum_w2, n):
    """Standard error of the mean of per-trial values w (e.g. error value 0, 1/2 or 1).

    Args:
        sum_w: sum of w over the n trials.
        sum_w2: sum of w**2.
        n: number of trials.

    Returns:
        sqrt((E[w^2] - E[w]^2) / n) with the plug-in moments; 0 where n = 0.
    """
    n = jnp.asarray(n, jnp.float64)
    safe = jnp.maximum(n, 1.0)
    mean = sum_w / safe
    var = jnp.maximum(sum_w2 / safe - mean * mean, 0.0)
    return jnp.where(n > 0, jnp.sqrt(var / safe), 0.0)


def delta_method_stderr(fn, x, cov):
    """First-order (delta-method) standard error of ``fn(x)`` for a flat vector ``x``.

    Args:
        fn: scalar function of a 1-d array (differentiable with ``jax.grad``).
        x: the estimates, shape (m,).
        cov: their covariance, shape (m, m).

    Returns:
        (value, stderr).
    """
    value, grad = jax.value_and_grad(fn)(x)
    grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
    var = grad @ cov @ grad
    return value, jnp.sqrt(jnp.maximum(var, 0.0))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0 or math.isnan(confidence):
        raise ValueError(f"confidence = {confidence}: must be in (0, 1)")
