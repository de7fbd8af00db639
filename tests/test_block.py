"""Block engine and its samplers: exact binomial/multinomial laws, agreement with the exact engine."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as st_h

import qmc
import reference as ref
from qmc.engines import exact
from qmc.random import binomial, compact, philox
from qmc.engines.block import BlockEngine, sample_sessions
from qmc.engines.exact import sifted_probabilities

Z = 5.0
SESSIONS = 2000  # one session count throughout: n_sessions is static, each new one compiles
PROTO = qmc.DecoyBB84(intensities=(0.48, 0.1, 0.0), probabilities=(0.8, 0.1, 0.1))


_link = ref.gys_threshold_link


def _chi2_binned(x, n, p, bins=60):
    """p-value of a chi-square test of samples x against Binomial(n, p), cells with >= 5 expected."""
    lo, hi = st.binom.ppf(1e-6, n, p), st.binom.ppf(1 - 1e-6, n, p)
    edges = np.arange(lo, hi + 2) if hi - lo < bins else np.unique(np.round(np.linspace(lo, hi + 1, bins)))
    obs = np.histogram(x, bins=np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    cdf = st.binom.cdf(np.concatenate([edges - 1, [n]]), n, p)
    exp = np.diff(np.concatenate([[0.0], cdf])) * len(x)
    # Merge the sparse tails into their neighbours.
    keep = exp >= 5
    chi = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum() + (obs[~keep].sum() - exp[~keep].sum()) ** 2 / max(exp[~keep].sum(), 1.0)
    return st.chi2.sf(chi, keep.sum())


SIZE = 100_000
LANES = jnp.arange(SIZE, dtype=jnp.uint32)


@jax.jit
def _binomial_draws(key, n, p):
    return binomial.binomial(philox.philox_key(key, 1), 0, n, p, LANES)


@pytest.mark.parametrize(
    "n,p", [(20, 0.3), (10**6, 2e-6), (10**6, 3e-5), (1000, 0.5), (10**6, 0.3), (7, 0.97), (10**12, 0.2)]
)
def test_binomial_follows_its_law(n, p):
    size = SIZE
    x = np.asarray(_binomial_draws(jax.random.key(11), float(n), p))
    assert np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= n
    sd = math.sqrt(n * p * (1 - p))
    assert abs(x.mean() - n * p) <= Z * sd / math.sqrt(size)
    assert _chi2_binned(x, n, p) > 1e-6


def test_binomial_edge_cases_and_huge_n():
    key = jax.random.key(0)
    np.testing.assert_array_equal(_binomial_draws(key, 0.0, 0.5), 0.0)
    np.testing.assert_array_equal(_binomial_draws(key, 100.0, 0.0), 0.0)
    np.testing.assert_array_equal(_binomial_draws(key, 100.0, 1.0), 100.0)
    # n = 1e15: exact integers in float64, spread of the binomial (not of a float32 rounding).
    x = np.asarray(_binomial_draws(key, 1e15, 0.7))
    assert np.all(x == np.round(x))
    sd = math.sqrt(1e15 * 0.21)
    z = (x - 7e14) / sd
    assert abs(z.mean()) < Z / math.sqrt(x.size)
    assert abs(z.std() - 1.0) < Z * math.sqrt(0.5 / x.size)
    assert st.kstest(z, "norm").pvalue > 1e-6


@settings(max_examples=40, deadline=None)
@given(st_h.lists(st_h.booleans(), min_size=1, max_size=300), st_h.integers(1, 400))
def test_first_true_is_nonzero(mask, size):
    m = jnp.asarray(mask)
    expected = np.flatnonzero(mask)[:size]
    expected = np.concatenate([expected, np.full(size - expected.size, len(mask))])
    np.testing.assert_array_equal(compact.first_true(m, size, len(mask)), expected)


def test_binomial_does_not_depend_on_its_loop_unrolling(monkeypatch):
    """The inversion's steps and the BTRS finish's tries per loop iteration are speed only."""
    rng = np.random.default_rng(3)
    n = np.concatenate([rng.integers(0, 60, 3000), np.floor(10 ** rng.uniform(1, 15, 3000))]).astype(float)
    p = np.concatenate([rng.uniform(0, 1, 3000), 10 ** rng.uniform(-12, 0, 3000)])
    lanes = jnp.arange(n.size, dtype=jnp.uint32)
    # a new function each time: traced again with the patched constants
    draw = lambda: np.asarray(jax.jit(lambda k: binomial.binomial(k, 0, n, p, lanes))(  # noqa: E731
        philox.philox_key(jax.random.key(2), 3)))
    results = []
    for steps, tries in [(8, 1), (8, 4), (1, 1), (3, 2)]:  # the default, the GPU's former choice, others
        monkeypatch.setattr(binomial, "_INVERSION_STEPS", steps)
        monkeypatch.setattr(binomial, "_FINISH_TRIES", tries)
        results.append(draw())
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def _cells_full(link, proto):
    return (proto.class_probabilities()[..., None] * exact.outcome_table(link, proto)).ravel()


def _assert_multinomial(counts, n, p):
    """Sessions (rows of ``counts``) against Multinomial(n, p): each session's chi-square statistic
    over the cells with n p >= 20 (the rest pooled) follows the chi-square law across sessions (KS
    test), and every cell's mean over sessions agrees with n p within Z standard errors."""
    s = counts.shape[0]
    big = n * p >= 20
    obs = np.concatenate([counts[:, big], counts[:, ~big].sum(1, keepdims=True)], 1)
    pp = np.concatenate([p[big], [p[~big].sum()]])
    chi = ((obs - n * pp) ** 2 / (n * pp)).sum(1)
    assert st.kstest(chi, st.chi2(len(pp) - 1).cdf).pvalue > 1e-6
    se = np.sqrt(n * p * (1 - p) / s)
    assert np.all(np.abs(counts.mean(0) - n * p) <= Z * se + 1e-12)


def test_full_sessions_follow_multinomial_law():
    """Each session's 96 cells: the chi-square statistic against N p over the cells with N p >= 20
    (pooling the rest) follows the chi-square law across sessions (KS test), and every cell's
    mean over sessions agrees with N p within 5 standard errors."""
    link, n, s = _link(25.0), 10**7, SESSIONS
    t = BlockEngine(n_pulses=n, n_sessions=s, fast=False).tally(jax.random.key(5), link, PROTO)
    counts = np.asarray(t.counts).reshape(s, -1)
    assert np.all(counts.sum(1) == n)
    p = np.asarray(_cells_full(link, PROTO))
    _assert_multinomial(counts, n, p)


def test_fast_sessions_follow_multinomial_law():
    link, n, s = _link(50.0), 10**8, SESSIONS
    t = BlockEngine(n_pulses=n, n_sessions=s, fast=True).tally(jax.random.key(6), link, PROTO)
    p_class, p_out = sifted_probabilities(link, PROTO)
    p = np.asarray(p_class[..., None] * p_out).ravel()
    p = np.concatenate([p, [1.0 - p.sum()]])
    counts = np.asarray(t.counts).reshape(s, -1)
    counts = np.concatenate([counts, (n - counts.sum(1))[:, None]], 1)
    assert np.all(np.asarray(t.n_pulses) == n)
    _assert_multinomial(counts, n, p)


def _random_points(seed, count):
    return ref.random_points(seed, count, max_length_km=120, log10_p_dark=(-9, -4))


@pytest.mark.parametrize("fast", [False, True])
def test_block_agrees_with_exact_at_random_points(fast):
    """Summed over sessions, every cell within 5 binomial standard errors of N p."""
    n, s = 10**7, SESSIONS
    for i, (link, proto) in enumerate(_random_points(1, 4)):
        t = BlockEngine(n_pulses=n, n_sessions=s, fast=fast).tally(jax.random.key(100 + i), link, proto)
        if fast:
            p_class, p_out = sifted_probabilities(link, proto)
            p = np.asarray(p_class[..., None] * p_out).ravel()
        else:
            p = np.asarray(_cells_full(link, proto))
        c = np.asarray(t.counts).reshape(s, -1).sum(0)
        total = n * s
        sd = np.sqrt(total * p * (1 - p))
        assert np.all(np.abs(c - total * p) <= Z * sd + 1e-9), (i, np.max(np.abs(c - total * p) / np.maximum(sd, 1e-300)))


def test_sessions_do_not_depend_on_batch_and_repeat():
    link = _link()
    key = jax.random.key(7)

    def draw(key, s):  # 500 and 2000 sessions are compiled by test_tally too
        return BlockEngine(n_pulses=10**6, n_sessions=s, fast=True).tally(key, link, PROTO)

    a = draw(key, 500)
    b = draw(key, SESSIONS)
    np.testing.assert_array_equal(a.counts, b.counts[:500])
    c = draw(key, 500)
    np.testing.assert_array_equal(a.counts, c.counts)
    d = draw(jax.random.key(8), 500)
    assert not np.array_equal(a.counts, d.counts)
    # The same through the jitted function, and with n_pulses as data (no recompile).
    e = sample_sessions(key, link, PROTO, jnp.float64(10**6), 500, True)
    np.testing.assert_array_equal(a.counts, e.counts)


def test_hidden_photon_counts_follow_poisson():
    """Pulses sent per photon-number bin (0, 1, 2+) per intensity follow the Poisson law."""
    link, n, s = _link(10.0), 10**7, SESSIONS
    t = BlockEngine(n_pulses=n, n_sessions=s, fast=False, photon_counts=True).tally(jax.random.key(9), link, PROTO)
    pc = np.asarray(t.photon_counts)
    np.testing.assert_array_equal(pc.sum(-2), np.asarray(t.counts))
    sent = pc.sum(-1).sum(0)  # (k, 2, 2, 2, 3) over sessions
    per_k = sent.sum((1, 2, 3))  # (k, 3)
    mu = np.asarray(PROTO.intensities)
    pois = np.stack([np.exp(-mu), mu * np.exp(-mu), 1 - np.exp(-mu) * (1 + mu)], -1)
    for k in range(2):
        tot = per_k[k].sum()
        chi = ((per_k[k] - tot * pois[k]) ** 2 / (tot * pois[k])).sum()
        assert st.chi2.sf(chi, 2) > 1e-6
    assert per_k[2, 1:].sum() == 0  # vacuum pulses carry no photon


@pytest.mark.slow
def test_fast_mode_hidden_photon_counts_and_decoy_bound():
    """Fast mode with photon bins: the true single-photon yield from the hidden counts lies above
    the vacuum + weak decoy lower bound computed from the same sessions' observations."""
    link, n, s = _link(10.0), 10**9, SESSIONS
    f = BlockEngine(n_pulses=n, n_sessions=s, fast=True, photon_counts=True).tally(jax.random.key(9), link, PROTO)
    np.testing.assert_array_equal(np.asarray(f.photon_counts).sum(-2), np.asarray(f.counts))
    y, y_se, e, e_se = f.photon_yields()
    assert y.shape == (s, 3, 2, 3)
    y1_true = np.asarray(y[:, 0, 0, 1])  # signal, Z basis, one photon
    y1_bound = np.asarray(jax.vmap(lambda o: qmc.VacuumWeak().bounds(o, PROTO)[0])(f.observations()))[:, 0]
    assert np.mean(y1_bound <= y1_true) > 0.95
