"""Pair sources, the two-arm outcome table, BBM92 and CHSH (qmc.entanglement).

The closed-form table is checked against Ma, Fung, Lo's formulas (PRA 76, 012307 (2007)), against
an independent sum over pair numbers, and at its limits; the CHSH value from sampled counts against
2 sqrt(2) V.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc.entanglement import (
    PairSource, TwoArmLink, chsh_from_counts, expected_s, gain_and_qber, key_rate_from_table,
    maximum_distance_km, mfl_error_gain, mfl_gain, mfl_k, model_s, optimal_key_rate,
    outcome_table, pair_number_pmf, sample_chsh_counts, split_length, visibility,
)
from qmc.entanglement.pair_sum import outcome_table_by_pair_number

# lambda, eta_A, eta_B, p_dark_A, p_dark_B, e_d: cells well above 1e-6, so that inclusion-exclusion
# (absolute error ~1e-16) keeps a relative precision better than 1e-10
POINTS = [
    (0.1, 0.3, 0.5, 1e-2, 3e-3, 0.04),
    (0.05, 0.8, 0.2, 1e-3, 2e-2, 0.0),
    (0.02, 0.5, 0.5, 0.0, 0.0, 0.1),
]


def _y0(p_dark):
    return 1.0 - (1.0 - p_dark) ** 2


def test_pair_number_statistics():
    n = jnp.arange(400)
    for stats in ("thermal", "poisson"):
        p = pair_number_pmf(0.3, n, stats)
        assert float(jnp.sum(p)) == pytest.approx(1.0, abs=1e-14)
        assert float(jnp.sum(n * p)) == pytest.approx(0.3, rel=1e-13)  # mean pair number mu
    lam = 0.15  # Ma, Fung, Lo: P(n) = (n + 1) lambda^n / (1 + lambda)^(n + 2), lambda = mu / 2
    src = PairSource(2 * lam)
    assert float(src.pair_lambda) == pytest.approx(lam)
    for k in range(6):
        assert float(src.pair_number_pmf(k)) == pytest.approx((k + 1) * lam ** k / (1 + lam) ** (k + 2), rel=1e-13)


def test_source_position_splits_the_length():
    assert [float(x) for x in split_length(100.0, "middle")] == [50.0, 50.0]
    assert [float(x) for x in split_length(100.0, "alice")] == [0.0, 100.0]
    assert [float(x) for x in split_length(100.0, "alice", 30.0)] == [30.0, 70.0]
    assert [float(x) for x in split_length(100.0, position_km=130.0)] == [100.0, 0.0]
    link = TwoArmLink(PairSource(0.1, position_km=20.0), length_km=80.0)
    assert [float(x) for x in link.arm_lengths_km()] == [20.0, 60.0]


@pytest.mark.parametrize("stats", ["thermal", "poisson"])
@pytest.mark.parametrize("click_model", ["threshold", "ma2007"])
def test_every_basis_pair_block_sums_to_one(stats, click_model):
    for lam, ea, eb, da, db, e in POINTS:
        t = outcome_table(lam, ea, eb, da, db, e, stats, click_model)
        assert t.shape == (2, 2, 4, 4)
        np.testing.assert_allclose(np.asarray(jnp.sum(t, axis=(2, 3))), 1.0, rtol=0, atol=1e-14)
        assert float(jnp.min(t)) >= -1e-16


@pytest.mark.parametrize("point", POINTS)
def test_table_reduces_to_ma_fung_lo(point):
    lam, ea, eb, da, db, e = point
    q_mfl = float(mfl_gain(lam, ea, eb, _y0(da), _y0(db)))
    eq_mfl = float(mfl_error_gain(lam, ea, eb, _y0(da), _y0(db), e))
    # Ma, Fung, Lo's dark counts: gain and error exactly, in both bases
    q, err = gain_and_qber(outcome_table(lam, ea, eb, da, db, e, click_model="ma2007"))
    np.testing.assert_allclose(np.asarray(q), q_mfl, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(q * err), eq_mfl, rtol=1e-12)
    # physical threshold detectors: the same gain; the error differs by the dark counts that
    # coincide with a correlated click, (1 - 2 e_d)(1 - (1 - p_dA)(1 - p_dB)) K, exactly
    q, err = gain_and_qber(outcome_table(lam, ea, eb, da, db, e, click_model="threshold"))
    np.testing.assert_allclose(np.asarray(q), q_mfl, rtol=1e-12)
    extra = (1 - 2 * e) * (1 - (1 - da) * (1 - db)) * float(mfl_k(lam, ea, eb))
    np.testing.assert_allclose(np.asarray(q * err), eq_mfl + extra, rtol=1e-12)


def test_threshold_equals_ma_fung_lo_without_dark_counts():
    lam, ea, eb, e = 0.3, 0.4, 0.7, 0.033
    q, err = gain_and_qber(outcome_table(lam, ea, eb, 0.0, 0.0, e))
    np.testing.assert_allclose(np.asarray(q * err), float(mfl_error_gain(lam, ea, eb, 0.0, 0.0, e)), rtol=1e-12)


@pytest.mark.parametrize("stats", ["thermal", "poisson"])
@pytest.mark.parametrize("point", POINTS)
def test_closed_form_agrees_with_the_sum_over_pair_numbers(stats, point):
    lam, ea, eb, da, db, e = point
    reference, left_out = outcome_table_by_pair_number(2 * lam, ea, eb, da, db, e, stats, n_max=16)
    assert left_out < 1e-13  # the truncated tail
    closed = np.asarray(outcome_table(lam, ea, eb, da, db, e, stats))
    np.testing.assert_allclose(closed, reference, rtol=1e-10, atol=1e-16)


def test_mismatched_bases_have_uniform_independent_bits_and_bases_are_symmetric():
    t = np.asarray(outcome_table(*POINTS[0]))
    np.testing.assert_allclose(t[0, 0], t[1, 1], rtol=1e-12)        # Z-Z = X-X
    for block in (t[0, 1], t[1, 0]):
        single = block[1:3, 1:3]
        np.testing.assert_allclose(single, single[0, 0], rtol=1e-10)  # the four bit pairs alike
        np.testing.assert_allclose(block[1, :], block[2, :], rtol=1e-10)
        np.testing.assert_allclose(block[:, 1], block[:, 2], rtol=1e-10)


def test_qber_limits():
    for lam in (0.01, 0.1, 0.5, 2.0):
        # unit efficiency, no dark counts, e_d = 0: all errors are double clicks with random bits
        _, err = gain_and_qber(outcome_table(lam, 1.0, 1.0, 0.0, 0.0, 0.0))
        np.testing.assert_allclose(np.asarray(err), lam / (2 * (2 + lam)), rtol=1e-12)
        q = float(mfl_gain(lam, 1.0, 1.0, 0.0, 0.0))
        e_mfl = float(mfl_error_gain(lam, 1.0, 1.0, 0.0, 0.0, 0.0)) / q
        assert e_mfl == pytest.approx(lam / (2 * (2 + lam)), rel=1e-12)
        # vanishing efficiency: dark counts only, E = 1/2
        _, err = gain_and_qber(outcome_table(lam, 0.0, 0.0, 1e-6, 1e-6, 0.033))
        np.testing.assert_allclose(np.asarray(err), 0.5, rtol=1e-12)
        _, err = gain_and_qber(outcome_table(lam, 1e-9, 1e-9, 1e-5, 1e-5, 0.033))
        assert abs(float(err[0]) - 0.5) < 1e-2


def test_key_rate_positive_short_zero_long_and_vmaps_over_lengths():
    link = TwoArmLink.gys2004(0.0)
    lengths = jnp.array([0.0, 50.0, 400.0])
    rates, mus = jax.jit(jax.vmap(lambda L: optimal_key_rate(dataclasses.replace(link, length_km=L))))(lengths)
    assert float(rates[0]) > float(rates[1]) > 0.0 and float(rates[2]) == 0.0
    assert 0.05 < float(mus[1]) < 0.15
    # the optimum beats its neighbours on a coarse grid
    at = lambda mu: float(key_rate_from_table(dataclasses.replace(
        link, length_km=50.0, source=PairSource(mu)).table(), 1.16))
    assert float(rates[1]) >= max(at(float(mus[1]) * 1.2), at(float(mus[1]) / 1.2))


def test_source_in_the_middle_reaches_farther_than_at_alice():
    # GYS arms (eta 4.5 %, Y0 1.7e-6 per side, e_d 3.3 % for the pair, 0.21 dB/km), f = 1.16
    middle = maximum_distance_km(TwoArmLink.gys2004(0.0, PairSource(position="middle")), f_ec=1.16, tol_km=0.1)
    alice = maximum_distance_km(TwoArmLink.gys2004(0.0, PairSource(position="alice")), f_ec=1.16, tol_km=0.1)
    assert middle == pytest.approx(289.4, abs=0.3)  # the numbers in docs/entanglement.md
    assert alice == pytest.approx(172.4, abs=0.3)
    assert middle > alice + 100.0


def test_chsh_from_sampled_counts():
    link = TwoArmLink(PairSource(0.1), 10.0, 0.2, 0.3, 0.3, 1e-4, 1e-4, 0.02)
    v = float(visibility(link))
    counts = sample_chsh_counts(jax.random.PRNGKey(7), link, 2e6)
    assert counts.dtype == jnp.int64
    s, se = (float(x) for x in chsh_from_counts(counts))
    assert se > 0 and abs(s - float(expected_s(v))) < 5 * se
    assert s > 2.0 + 5 * se  # above the classical limit
    # the model's own S at the CHSH angles: 2 sqrt(2) V up to kappa^2 / (8 D0 (D0 - kappa))
    eta_a, eta_b = (float(x) for x in link.transmittances())
    lam = 0.05
    kappa = lam * eta_a * eta_b * (1 + lam)
    d0 = 1 + lam * (eta_a + eta_b) + lam ** 2 * eta_a * eta_b
    s_model = float(expected_s(v)) / (1 + kappa ** 2 / (8 * d0 * (d0 - kappa)))
    assert float(model_s(link)) == pytest.approx(s_model, rel=1e-12)


def test_chsh_standard_error_from_counts():
    counts = jnp.array([[[40, 10], [10, 40]]] * 4)
    s, se = chsh_from_counts(counts)
    e = 0.6
    assert float(s) == pytest.approx(2 * e)  # + - + +
    assert float(se) == pytest.approx(math.sqrt(4 * (1 - e ** 2) / 100))


def test_validation_names_the_field():
    with pytest.raises(qmc.ValidationError, match=r"source\.mean_pair_number = -1 is out of range"):
        qmc.validate(TwoArmLink(PairSource(-1.0)))
    with pytest.raises(qmc.ValidationError, match=r"source\.statistics"):
        qmc.validate(TwoArmLink(PairSource(0.1, statistics="bose")))
    with pytest.raises(qmc.ValidationError, match=r"source\.position_km"):
        qmc.validate(TwoArmLink(PairSource(0.1, position_km=-1.0)))
    with pytest.raises(qmc.ValidationError, match=r"misalignment = 0\.7"):
        qmc.validate(TwoArmLink(misalignment=0.7))
    assert bool(qmc.is_valid(TwoArmLink.gys2004(10.0)))
    assert not bool(qmc.is_valid(TwoArmLink(PairSource(0.1, visibility=1.5))))
