"""qmc.stats: standard errors and intervals against scipy and against their definitions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

import qmc  # noqa: F401  (float64)
from qmc import stats


def test_z_value():
    assert stats.z_value(0.95) == pytest.approx(1.959963984540054, rel=1e-12)
    assert stats.z_value(0.6827) == pytest.approx(1.0, rel=1e-3)


def test_binomial_stderr():
    assert float(stats.binomial_stderr(30, 100)) == pytest.approx(math.sqrt(0.3 * 0.7 / 100))
    assert float(stats.binomial_stderr(0, 0)) == 0.0
    assert float(stats.binomial_stderr(0, 10)) == 0.0


def _wilson_reference(k, n, z):
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


@pytest.mark.parametrize("k,n", [(1, 10), (5, 100), (50, 100), (3, 1_000_000), (999, 1000)])
def test_wilson_matches_formula(k, n):
    lo, hi = stats.wilson_interval(k, n, 0.95)
    ref = _wilson_reference(k, n, stats.z_value(0.95))
    assert float(lo) == pytest.approx(max(ref[0], 0.0), rel=1e-12, abs=1e-15)
    assert float(hi) == pytest.approx(min(ref[1], 1.0), rel=1e-12)


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (7, 50), (50, 50), (3, 100_000), (12_345, 1_000_000)])
def test_clopper_pearson_matches_scipy(k, n):
    lo, hi = stats.clopper_pearson_interval(k, n, 0.95)
    ref_lo = 0.0 if k == 0 else st.beta.ppf(0.025, k, n - k + 1)
    ref_hi = 1.0 if k == n else st.beta.ppf(0.975, k + 1, n - k)
    assert float(lo) == pytest.approx(ref_lo, rel=1e-8, abs=1e-15)
    assert float(hi) == pytest.approx(ref_hi, rel=1e-8)


@settings(max_examples=40, deadline=None)
@given(n=hs.integers(1, 10**9), frac=hs.floats(0.0, 1.0))
def test_intervals_contain_estimate(n, frac):
    k = int(round(frac * n))
    p = k / n
    for lo, hi in (stats.wilson_interval(k, n), stats.clopper_pearson_interval(k, n)):
        lo, hi = float(lo), float(hi)
        assert 0.0 <= lo <= p + 1e-12 and p - 1e-12 <= hi <= 1.0


def test_wilson_coverage_small_counts():
    """Coverage of the 95 % Wilson interval for p = 0.02, n = 200 is near 95 % (computed exactly
    by summing the binomial pmf over k)."""
    n, p = 200, 0.02
    ks = np.arange(n + 1)
    lo, hi = stats.wilson_interval(ks, n)
    covered = (np.asarray(lo) <= p) & (p <= np.asarray(hi))
    coverage = st.binom.pmf(ks, n, p)[covered].sum()
    assert 0.93 < coverage < 0.99


def test_weighted_outcome_stderr_is_sample_stderr():
    rng = np.random.default_rng(0)
    w = rng.choice([0.0, 0.5, 1.0], size=1000, p=[0.9, 0.02, 0.08])
    se = stats.weighted_outcome_stderr(w.sum(), (w**2).sum(), w.size)
    assert float(se) == pytest.approx(w.std() / math.sqrt(w.size), rel=1e-12)


def test_delta_method_product():
    x = jnp.asarray([2.0, 3.0])
    cov = jnp.asarray([[0.04, 0.01], [0.01, 0.09]])
    value, se = stats.delta_method_stderr(lambda v: v[0] * v[1], x, cov)
    g = np.array([3.0, 2.0])
    assert float(value) == 6.0
    assert float(se) == pytest.approx(math.sqrt(g @ np.asarray(cov) @ g), rel=1e-12)


def test_stats_are_jittable():
    f = jax.jit(lambda k, n: (stats.wilson_interval(k, n), stats.clopper_pearson_interval(k, n)))
    (lo, hi), (clo, chi) = f(jnp.asarray([3.0, 40.0]), jnp.asarray([100.0, 50.0]))
    assert np.all(np.asarray(lo) < np.asarray(hi)) and np.all(np.asarray(clo) < np.asarray(chi))
