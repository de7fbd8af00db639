"""Tally and SiftedTally: int64 counts, observations, statistics and key-rate intervals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc.engines.observations import Observations
from qmc.engines import exact
from qmc.engines.block import BlockEngine
from qmc.engines.exact import photon_outcome_table, sifted_probabilities
from qmc.engines.tally import SiftedTally, Tally


def _link(length_km=50.0):
    return qmc.Link(channel=qmc.Fiber(length_km=length_km, loss_db_per_km=0.21), detector=qmc.detectors.gys2004("threshold"))


PROTO = qmc.DecoyBB84(intensities=(0.48, 0.1, 0.0), probabilities=(0.8, 0.1, 0.1))


def _random_counts(seed=0, k=3, scale=10**6):
    rng = np.random.default_rng(seed)
    return rng.integers(0, scale, size=(k, 2, 2, 2, 4)).astype(np.int64)


def test_observations_match_from_counts():
    counts = _random_counts()
    t = Tally(jnp.asarray(counts))
    ref = Observations.from_counts(counts, counts.sum(-1))
    obs = t.observations()
    np.testing.assert_allclose(obs.gain, ref.gain, rtol=1e-15)
    np.testing.assert_allclose(obs.error_gain, ref.error_gain, rtol=1e-15)
    # The sifted reduction gives the same observations.
    sobs = t.sifted().observations()
    np.testing.assert_allclose(sobs.gain, ref.gain, rtol=1e-14)
    np.testing.assert_allclose(sobs.error_gain, ref.error_gain, rtol=1e-14)
    assert t.sent.dtype == jnp.int64 and int(t.n_pulses) == counts.sum()


def test_sifted_cells_relative_to_alice_bit():
    counts = np.zeros((1, 2, 2, 2, 4), np.int64)
    counts[0, 0, 0, 0] = [10, 5, 1, 2]  # Z matched, bit 0: detector 0 is correct
    counts[0, 0, 0, 1] = [20, 3, 7, 4]  # Z matched, bit 1: detector 1 is correct
    counts[0, 0, 1, 0] = [99, 99, 99, 99]  # mismatched: not sifted
    s = Tally(jnp.asarray(counts)).sifted()
    np.testing.assert_array_equal(s.counts[0, 0], [30, 5 + 7, 1 + 3, 6])
    np.testing.assert_array_equal(s.counts[0, 1], [0, 0, 0, 0])
    assert int(s.n_pulses) == counts.sum()
    assert float(s.n_errors[0, 0]) == 4 + 3.0


def test_int64_exact_beyond_float53():
    """Counts near 1e15 and above 2**53 stay exact (a float32 would stop at 2**24)."""
    counts = np.zeros((3, 2, 2, 2, 4), np.int64)
    counts[0, 0, 0, 0, 0] = 10**15 + 1
    counts[0, 0, 0, 0, 1] = 2**53 + 1
    t = Tally(jnp.asarray(counts))
    assert int(t.n_pulses) == 10**15 + 2**53 + 2
    assert int(t.sifted().counts[0, 0, 1]) == 2**53 + 1
    assert int((t + t).counts[0, 0, 0, 0, 1]) == 2**54 + 2


def test_leading_axes_and_vmap():
    counts = np.stack([_random_counts(s) for s in range(4)]).reshape(2, 2, 3, 2, 2, 2, 4)
    t = Tally(jnp.asarray(counts))
    obs = t.observations()
    assert obs.gain.shape == (2, 2, 3, 2)
    ref = Tally(jnp.asarray(counts[1, 0])).observations()
    np.testing.assert_allclose(obs.gain[1, 0], ref.gain)
    g = jax.vmap(lambda tt: tt.gain())(Tally(jnp.asarray(counts.reshape(4, 3, 2, 2, 2, 4))))
    assert g.shape == (4, 3, 2)


def test_stderr_and_intervals():
    c = jnp.asarray([[[1000 - 37, 30, 5, 2]] * 2] * 3, jnp.int64)  # (3, 2, 4)
    s = SiftedTally(c, jnp.int64(6000))
    n, d = 1000.0, 37.0
    assert float(s.gain()[0, 0]) == pytest.approx(d / n)
    assert float(s.gain_stderr()[0, 0]) == pytest.approx(math.sqrt(d / n * (1 - d / n) / n))
    e = 5 + 0.5 * 2
    assert float(s.qber()[0, 0]) == pytest.approx(e / d)
    w2 = 5 + 0.25 * 2
    assert float(s.qber_stderr()[0, 0]) == pytest.approx(math.sqrt((w2 / d - (e / d) ** 2) / d))
    lo, hi = s.gain_interval()
    assert float(lo[0, 0]) < d / n < float(hi[0, 0])
    clo, chi = s.gain_interval(method="clopper_pearson")
    assert float(clo[0, 0]) < float(lo[0, 0]) and float(chi[0, 0]) > float(hi[0, 0])  # exact is wider
    with pytest.raises(ValueError):
        s.gain_interval(method="nope")


def test_photon_outcome_table_sums_to_outcome_table():
    link = _link(25.0)
    joint = photon_outcome_table(link, PROTO)
    np.testing.assert_allclose(joint.sum(-2), exact.outcome_table(link, PROTO), rtol=1e-12, atol=1e-18)
    assert float(joint.min()) >= 0.0
    # The photon-number marginal is Poisson.
    mu = np.asarray(PROTO.intensities)
    marg = np.asarray(joint.sum(-1))[:, 0, 0, 0]  # (k, 3)
    pois = np.stack([np.exp(-mu), mu * np.exp(-mu)], -1)
    np.testing.assert_allclose(marg[:, :2], pois, rtol=1e-12)


def test_sifted_probabilities_normalized():
    p_class, p_out = sifted_probabilities(_link(), PROTO)
    assert float(p_class.sum()) == pytest.approx(0.8 * 0.5 + 0.1 * 0.5 + 0.1 * 0.5)  # p_z^2 + (1-p_z)^2 = 1/2
    np.testing.assert_allclose(p_out.sum(-1), 1.0, rtol=1e-14)


def test_key_rate_interval_is_honest():
    """The delta-method stderr of the VacuumWeak rate matches the spread of the rate over many
    block-engine sessions (to 15 %, about 5 standard errors of a 500-session spread estimate)."""
    link, analysis = _link(25.0), qmc.VacuumWeak()
    n = 10**8
    tallies = BlockEngine(n_pulses=n, n_sessions=500, fast=True).tally(jax.random.key(3), link, PROTO)
    kr, est = tallies.key_rate(analysis, PROTO, link)
    rates = np.asarray(kr.rate)
    assert np.all(np.asarray(kr.reason) == 0)
    spread = rates.std(ddof=1)
    predicted = float(np.median(np.asarray(est.stderr)))
    assert abs(predicted / spread - 1.0) < 0.15, (predicted, spread)
    exact_rate = float(analysis.key_rate(link, PROTO).rate)
    assert abs(rates.mean() - exact_rate) < 5 * spread / math.sqrt(rates.size)
    # Intervals are clipped at 0 and bracket the estimate.
    assert np.all(np.asarray(est.lo) >= 0.0) and np.all(np.asarray(est.lo) <= rates)
    assert np.all(np.asarray(est.hi) >= rates)


def test_gain_stderr_matches_session_spread():
    link = _link(50.0)
    tallies = BlockEngine(n_pulses=10**7, n_sessions=2000, fast=True).tally(jax.random.key(4), link, PROTO)
    gains = np.asarray(tallies.gain())  # (S, k, 2)
    se = np.asarray(tallies.gain_stderr()).mean(0)
    ratio = gains.std(0, ddof=1)[:2] / se[:2]  # signal and decoy (vacuum counts are too few)
    # The spread of 2000 sessions is known to ~1.6 %; z = 5 gives +-8 %.
    assert np.all(np.abs(ratio - 1.0) < 0.08), ratio
