"""The heralded single-photon source (qmc.sources.HeraldedSource) and the coincidence window of the
two-arm link (qmc.entanglement.window).

Heralded source: P(n | herald) against an independent numpy sum (Bayes with the pair statistics
written out), its generating function, mean and g2(0), and the limits of a perfect herald
(P(n | n >= 1)) and an uninformative one (the unconditioned distribution). Window: the capture
erf(w / (2 sqrt(2) sigma)) against the Gaussian probability, the accidental probability
1 - exp(-R w), the null window bit for bit, the limits of a long and a zero window, one definition
for the table, CHSH, BBM92 and the engines, and the refusals. Tolerances: closed forms against sums
to 1e-12 (a few hundred float64 terms, no cancellation); Monte Carlo |z| < 5 per cell.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc.analysis import BBM92Asymptotic
from qmc.engines import BlockEngine, exact, pulse
from qmc.entanglement import (
    STATISTICS, PairSource, TwoArmLink, chsh_probabilities, gain_and_qber, key_rate_from_table, model_s,
    outcome_table,
)
from qmc.entanglement.chsh import CHSH_ANGLES, bit_probabilities
from qmc.entanglement.two_arm import angle_table
from qmc.entanglement.window import window_capture, window_dark_probability
from qmc.protocols import BBM92, DecoyBB84
from qmc.sources import FockSource, HeraldedSource
from qmc.sources.heralded import PAIR_STATISTICS

N = np.arange(300)
CASES = [(0.1, 0.6, 1e-5), (1e-3, 0.3, 0.0), (0.8, 0.95, 1e-3), (2.0, 0.05, 0.2)]  # mu, eta_h, p_d


def _pairs_numpy(stats, mu):
    """P(n pairs), written out in numpy: (n + 1) l^n / (1 + l)^(n + 2), l = mu / 2; or Poisson."""
    n = N.astype(float)
    if stats == "thermal":
        lam = mu / 2.0
        return (n + 1.0) * lam ** n / (1.0 + lam) ** (n + 2.0)
    return np.exp(-mu + n * np.log(mu) - np.array([math.lgamma(k + 1.0) for k in n]))


def _herald_numpy(eta_h, p_d):
    """P(herald | n) = 1 - (1 - p_d)(1 - eta_h)^n, written p_d + (1 - p_d)(1 - (1 - eta_h)^n): exactly
    p_d at n = 0, and 1 - (1 - eta_h)^n >= eta_h cancels at most a factor 1 / eta_h."""
    return p_d + (1.0 - p_d) * (1.0 - (1.0 - eta_h) ** N)


def _heralded_numpy(stats, mu, eta_h, p_d):
    joint = _pairs_numpy(stats, mu) * _herald_numpy(eta_h, p_d)
    return joint / joint.sum()


def test_pair_statistics_are_the_pair_source_s():
    assert PAIR_STATISTICS == STATISTICS


@pytest.mark.parametrize("stats", PAIR_STATISTICS)
@pytest.mark.parametrize("case", CASES)
def test_heralded_distribution_against_a_numpy_sum(stats, case):
    mu, eta_h, p_d = case
    src = HeraldedSource(stats, eta_h, p_d)
    p = np.asarray(src.photon_number_pmf(mu, N))
    want = _heralded_numpy(stats, mu, eta_h, p_d)
    assert p.sum() == pytest.approx(1.0, abs=1e-13)
    # elementwise where the terms are normal numbers (n < 40: above 1e-170); the exponent of a
    # Poisson term, up to ~400, carries ~400 eps of relative error in either computation
    np.testing.assert_allclose(p[:40], want[:40], rtol=1e-12)
    # the herald probability, the generating function (what the engines read), mean and g2(0)
    joint = _pairs_numpy(stats, mu) * _herald_numpy(eta_h, p_d)
    assert float(src.herald_probability(mu)) == pytest.approx(joint.sum(), rel=1e-12)
    for x in (1e-4, 0.3, 1.0):
        assert math.exp(float(src.log_p_none(mu, x))) == pytest.approx(np.sum(want * (1.0 - x) ** N), rel=1e-11, abs=1e-300)
    mean = np.sum(N * want)
    assert float(src.mean_photon_number(mu)) == pytest.approx(mean, rel=1e-12)
    assert float(src.heralded_g2(mu)) == pytest.approx(np.sum(N * (N - 1.0) * want) / mean ** 2, rel=1e-11)


@pytest.mark.parametrize("mu", [1e-3, 0.1, 1.0])
def test_a_perfect_herald_of_poisson_pairs_gives_n_at_least_one(mu):
    p = np.asarray(HeraldedSource("poisson", 1.0, 0.0).photon_number_pmf(mu, N))
    pairs = _pairs_numpy("poisson", mu)
    assert p[0] == 0.0
    np.testing.assert_allclose(p[1:40], pairs[1:40] / -math.expm1(-mu), rtol=1e-12)
    # g2 of P(n | n >= 1): mu^2 / (1 - e^-mu) / (mu / (1 - e^-mu))^2 = 1 - e^-mu
    assert float(HeraldedSource("poisson", 1.0, 0.0).heralded_g2(mu)) == pytest.approx(-math.expm1(-mu), rel=1e-13)


@pytest.mark.parametrize("stats, g2_pairs", [("thermal", 1.5), ("poisson", 1.0)])
def test_an_uninformative_herald_leaves_the_pair_statistics(stats, g2_pairs):
    # eta_h = 0: only dark counts herald, independently of n, so P(n | herald) = P(n); the
    # unconditioned g2 is 3/2 for the two thermal polarization modes of the thermal state, 1 for Poisson
    src = HeraldedSource(stats, 0.0, 1e-3)
    for mu in (0.01, 0.5):
        np.testing.assert_allclose(np.asarray(src.photon_number_pmf(mu, N))[:40], _pairs_numpy(stats, mu)[:40], rtol=1e-12)
        assert float(src.heralded_g2(mu)) == pytest.approx(g2_pairs, rel=1e-13)
    # a saturated herald (many pairs, every pulse heralded) tends to the same value
    # (thermal: the herald misses with (1 + lambda eta_h)^-2 = 3e-5 at mu = 400)
    assert float(HeraldedSource(stats, 0.9, 0.0).heralded_g2(400.0)) == pytest.approx(g2_pairs, rel=1e-4)


@pytest.mark.parametrize("stats, g2_pairs", [("thermal", 1.5), ("poisson", 1.0)])
def test_heralded_g2_is_small_for_a_weak_pump(stats, g2_pairs):
    eta_h = 0.5
    src = HeraldedSource(stats, eta_h, 0.0)
    for mu in (1e-4, 1e-3, 1e-2):
        g2 = float(src.heralded_g2(mu))
        # leading order: g2_pairs mu (2 - eta_h), corrections of relative order mu
        assert g2 < 1.0 and g2 == pytest.approx(g2_pairs * mu * (2.0 - eta_h), rel=3 * mu)
    g2 = np.asarray(src.heralded_g2(jnp.array([1e-3, 1e-2, 1e-1, 1.0])))
    assert np.all(np.diff(g2) > 0)  # more pairs, more multi-photon heralds


def test_nothing_heralded_is_given_the_one_photon_limit():
    src = HeraldedSource("thermal", 0.5, 0.0)
    assert float(src.herald_probability(0.0)) == 0.0
    np.testing.assert_array_equal(np.asarray(src.photon_number_pmf(0.0, jnp.arange(3))), [0.0, 1.0, 0.0])
    assert float(src.log_p_none(0.0, 0.25)) == pytest.approx(math.log(0.75), rel=1e-15)
    assert float(src.mean_photon_number(0.0)) == 1.0 and float(src.heralded_g2(0.0)) == 0.0


def test_the_exact_engine_takes_the_heralded_source():
    # The BB84 outcome table of the heralded source is the P(n | herald) mixture of Fock tables.
    src = HeraldedSource("thermal", 0.6, 1e-5)
    protocol = DecoyBB84(intensities=(0.01, 0.002, 0.0), probabilities=(0.8, 0.1, 0.1))
    link = qmc.Link(source=src)
    got = np.asarray(exact.outcome_table(link, protocol))
    mus = np.asarray(protocol.intensities)
    want = sum(np.asarray(src.photon_number_pmf(jnp.asarray(mus), n))[:, None, None, None, None]
               * np.asarray(exact.outcome_table(link, protocol, FockSource(n_photons=n))) for n in range(8))
    # left out, n >= 8: a double click grows as n^2, so relative to the two-photon term of a
    # cell about C(8, 2) (9 / 3) lambda^6 ~ 1e-12 (lambda = mu / 2 = 0.005); p_both in closed form
    # (the engine forms single clicks as differences: absolute error ~1e-16 of a 1e-2 click probability)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-17)


def test_heralded_source_refusals():
    with pytest.raises(qmc.ValidationError, match=r"^source\.herald_efficiency = 1\.5 is out of range: must be in \[0, 1\]$"):
        qmc.validate(HeraldedSource(herald_efficiency=1.5), "source.")
    with pytest.raises(qmc.ValidationError, match=r"source\.herald_p_dark = -0\.1 is out of range"):
        qmc.validate(HeraldedSource(herald_p_dark=-0.1), "source.")
    with pytest.raises(qmc.ValidationError, match="a herald must be possible"):
        qmc.validate(HeraldedSource(herald_efficiency=0.0, herald_p_dark=0.0))
    with pytest.raises(qmc.ValidationError, match="source.statistics = bose: must be one of thermal, poisson"):
        qmc.validate(HeraldedSource("bose"), "source.")
    assert bool(qmc.is_valid(HeraldedSource()))


# --- the coincidence window --------------------------------------------------------------------

WINDOW = dict(coincidence_window_ns=0.5, timing_jitter_ps=200.0, dark_count_rate_hz=1e4)  # pulses every 1 ns
LINK = TwoArmLink.gys2004(20.0, PairSource(0.05, **WINDOW))


def test_capture_is_the_gaussian_probability_of_the_window():
    for w_ns, sigma_ps in ((1.0, 100.0), (0.5, 300.0), (0.1, 1000.0)):
        a = w_ns * 1e3 / 2.0  # half-width, ps: P(|dt| < a) for dt ~ N(0, sigma^2)
        want = 1.0 - math.erfc(a / (sigma_ps * math.sqrt(2.0)))
        assert float(window_capture(w_ns, sigma_ps)) == pytest.approx(want, rel=1e-14)
    assert float(window_capture(100.0, 100.0)) == 1.0   # a long window captures every pair
    assert float(window_capture(0.0, 100.0)) == 0.0     # a zero window none
    assert float(window_capture(1.0, 0.0)) == 1.0 and float(window_capture(0.0, 0.0)) == 0.0


def test_accidental_probability_is_one_minus_exp_of_rate_times_window():
    for rate, w_ns in ((100.0, 1.0), (1e6, 5.0), (1e9, 0.5)):
        want = 1.0 - math.exp(-rate * w_ns * 1e-9)
        assert float(window_dark_probability(rate, w_ns)) == pytest.approx(want, rel=1e-9)  # reference cancels


def test_a_null_window_is_the_old_table_bit_for_bit():
    for source in (PairSource(0.05), PairSource(0.05, timing_jitter_ps=300.0)):
        link = TwoArmLink.gys2004(20.0, source)
        eta_a, eta_b = link.transmittances()
        old = outcome_table(source.pair_lambda, eta_a, eta_b, link.p_dark_a, link.p_dark_b, link.pair_error())
        np.testing.assert_array_equal(np.asarray(link.table()), np.asarray(old))


def test_the_window_reaches_the_table_chsh_and_bbm92_through_one_definition():
    c = float(window_capture(0.5, 200.0))
    p = float(window_dark_probability(1e4, 0.5))
    eta_a, eta_b = LINK.transmittances()
    # the same link written without a window: Bob's efficiency times c, p_dark = 1 - exp(-R w)
    plain = dataclasses.replace(LINK, source=PairSource(0.05), efficiency_b=LINK.efficiency_b * c, p_dark_a=p, p_dark_b=p)
    np.testing.assert_allclose(np.asarray(LINK.table()), np.asarray(plain.table()), rtol=1e-14, atol=1e-20)
    np.testing.assert_allclose(np.asarray(chsh_probabilities(LINK)), np.asarray(chsh_probabilities(plain)), rtol=1e-14)
    assert float(model_s(LINK)) == pytest.approx(float(model_s(plain)), rel=1e-14)
    want = angle_table(LINK.source.pair_lambda, eta_a, eta_b * c, p, p, LINK.pair_error(), *CHSH_ANGLES[0])
    np.testing.assert_allclose(np.asarray(chsh_probabilities(LINK)[0]), np.asarray(bit_probabilities(want)), rtol=1e-14)
    rate = float(key_rate_from_table(LINK.table(), 1.16))
    assert 0.0 < rate < float(key_rate_from_table(TwoArmLink.gys2004(20.0, PairSource(0.05)).table(), 1.16))
    obs = exact.observations(LINK, BBM92())  # the engines read the protocol's cells: the same table
    np.testing.assert_allclose(np.asarray(obs.gain[0]), np.asarray(gain_and_qber(LINK.table())[0]), rtol=1e-13)
    assert float(BBM92Asymptotic(f_ec=1.16).key_rate(LINK, BBM92()).rate) == pytest.approx(rate, rel=1e-13)


def test_window_limits():
    # long window at a slow pump, no dark counts: every pair is counted, nothing else
    slow = PairSource(0.05, rep_rate_hz=1e3, coincidence_window_ns=1e5, timing_jitter_ps=100.0, dark_count_rate_hz=0.0)
    full = dataclasses.replace(LINK, source=PairSource(0.05), p_dark_a=0.0, p_dark_b=0.0)
    np.testing.assert_array_equal(np.asarray(dataclasses.replace(LINK, source=slow).table()), np.asarray(full.table()))
    # zero window: no coincidence at all
    zero = dataclasses.replace(LINK, source=PairSource(0.05, coincidence_window_ns=0.0, timing_jitter_ps=200.0,
                                                         dark_count_rate_hz=1e4))
    gain, qber = gain_and_qber(zero.table())
    np.testing.assert_array_equal(np.asarray(gain), 0.0)
    # a rate that gives the per-gate p_dark in the window, no jitter: the gated link again
    w = 0.5
    rate = -math.log1p(-float(LINK.p_dark_a)) / (w * 1e-9)
    gated = dataclasses.replace(LINK, source=PairSource(0.05, coincidence_window_ns=w, dark_count_rate_hz=rate))
    want = dataclasses.replace(LINK, source=PairSource(0.05)).table()
    np.testing.assert_allclose(np.asarray(gated.table()), np.asarray(want), rtol=1e-13, atol=1e-22)


def test_window_refusals():
    with pytest.raises(qmc.ValidationError, match=r"^source\.coincidence_window_ns = 2\., source\.rep_rate_hz = "
                                                  r"1\.e\+09: the coincidence window must be >= 0 and shorter than the pulse period"):
        qmc.validate(TwoArmLink(PairSource(0.1, coincidence_window_ns=2.0)))
    with pytest.raises(qmc.ValidationError, match="source.coincidence_window_ns"):
        qmc.validate(TwoArmLink(PairSource(0.1, coincidence_window_ns=1.0)))  # exactly one period
    with pytest.raises(qmc.ValidationError, match="source.coincidence_window_ns"):
        qmc.validate(TwoArmLink(PairSource(0.1, coincidence_window_ns=-0.1)))
    with pytest.raises(qmc.ValidationError, match=r"source\.timing_jitter_ps = -1 is out of range: must be >= 0"):
        qmc.validate(TwoArmLink(PairSource(0.1, coincidence_window_ns=0.5, timing_jitter_ps=-1.0)))
    with pytest.raises(qmc.ValidationError, match="source.dark_count_rate_hz = .*needs a coincidence window"):
        qmc.validate(TwoArmLink(PairSource(0.1, dark_count_rate_hz=100.0)))
    assert bool(qmc.is_valid(LINK)) and not bool(qmc.is_valid(TwoArmLink(PairSource(0.1, coincidence_window_ns=1.5))))


def test_the_block_engine_draws_the_windowed_cells():
    n = 10**8
    counts = np.asarray(BlockEngine(n_pulses=n).tally(jax.random.key(11), LINK, BBM92()).counts, float)
    mean = n * np.asarray(exact.joint_probabilities(LINK, BBM92())).ravel()
    z = (counts - mean) / np.sqrt(np.maximum(mean, 1.0))  # Poisson approximation, conservative
    assert counts.sum() == n and np.max(np.abs(z)) < 5.0


def test_the_pulse_engine_draws_the_windowed_cells():
    n = 2**20
    counts = np.asarray(pulse.simulate(jax.random.key(12), LINK, BBM92(), n, block_pulses=2**18, chunk=2**18).counts, float)
    mean = n * np.asarray(exact.joint_probabilities(LINK, BBM92())).ravel()
    z = (counts - mean) / np.sqrt(np.maximum(mean, 1.0))
    assert counts.sum() == n and np.max(np.abs(z)) < 5.0
