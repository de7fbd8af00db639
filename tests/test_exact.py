"""The exact engine against hand-derivable limits, closed forms and a direct photon-number sum.

Tolerances are float64 rounding levels: ``reference.rounding_scale`` gives the magnitude that
bounds each entry's rounding error, and 32 ulps of it is what float64 allows (each reference term
carries about 2 N + 10 roundings for N photons, with weights that fall off fast, and fsum adds
them exactly; the engine about 10). Measured differences are at most about 3 ulps.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qmc
from qmc.engines import exact

import reference as ref

EPS = ref.EPS
ULPS = 32  # see the module docstring

# jit once per static structure (click model, Fock photon number, number of intensities)
table_fn = jax.jit(exact.outcome_table)
observations_fn = jax.jit(exact.observations)
photon_number_fn = jax.jit(exact.photon_number_observations, static_argnums=2)

INTENSITIES = (1.5, 0.3, 0.02, 0.0)
PROTOCOL = qmc.DecoyBB84(intensities=INTENSITIES, probabilities=(1.0, 0.0, 0.0, 0.0))
GRID = list(itertools.product((0.999, 0.3, 1e-3, 1e-7), (0.0, 1e-6, 0.05), (0.0, 1e-9, 0.033, 0.5)))


def assert_within_rounding(engine, reference, scale, ulps=ULPS):
    engine, reference = np.asarray(engine), np.asarray(reference)
    diff = np.abs(engine - reference)
    bad = diff > ulps * EPS * scale
    assert not bad.any(), (
        f"{bad.sum()} entries differ by more than {ulps} ulps; worst at "
        f"{np.unravel_index(np.argmax(np.where(bad, diff, 0)), diff.shape)}: "
        f"engine {engine[bad][:3]}, reference {reference[bad][:3]}"
    )


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
@pytest.mark.parametrize("source", [None, qmc.FockSource(n_photons=1), qmc.FockSource(n_photons=3)])
def test_table_has_one_row_per_class(click_model, source):
    """Shape (k, 2, 2, 2, 4) whatever the source (a Fock source ignores the intensity)."""
    table = table_fn(ref.wcp_link(0.1, 1e-6, 0.01, click_model), PROTOCOL, source)
    assert table.shape == (len(INTENSITIES), 2, 2, 2, 4)
    assert table.dtype == jnp.float64


# --- against the independent direct sum over photon numbers --------------------------------
@pytest.mark.parametrize("eta,p_dark,e_d", GRID)
def test_weak_coherent_matches_direct_photon_number_sum(eta, p_dark, e_d):
    """Poisson(mu)-weighted sum of n-photon multinomial outcomes, dark counts OR'ed in."""
    table = table_fn(ref.wcp_link(eta, p_dark, e_d), PROTOCOL)
    expected = ref.direct_sum_table(INTENSITIES, eta, p_dark, e_d)
    assert_within_rounding(table, expected, ref.rounding_scale(expected, eta, intensities=INTENSITIES))


@pytest.mark.parametrize("n_photons", [0, 1, 2, 3, 5])
def test_fock_source_matches_multinomial_sum(n_photons):
    for eta, p_dark, e_d in GRID:
        table = table_fn(ref.wcp_link(eta, p_dark, e_d), PROTOCOL, qmc.FockSource(n_photons=n_photons))
        expected = ref.direct_sum_table(INTENSITIES, eta, p_dark, e_d, n_photons=n_photons)
        assert_within_rounding(table, expected, ref.rounding_scale(expected, eta, n_photons=n_photons))


def test_single_photon_never_double_clicks_without_dark_counts():
    """A single photon reaches one detector at most: P(double) = 0 exactly (not ~1e-17)."""
    for eta, e_d in itertools.product((1.0, 0.999, 0.3, 1e-3), (0.0, 0.033, 0.5)):
        table = np.asarray(table_fn(ref.wcp_link(eta, 0.0, e_d), PROTOCOL, qmc.SinglePhotonSource()))
        assert np.all(table[..., 3] == 0.0)


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_weak_coherent_matches_closed_forms(click_model):
    """Closed form 1 (independent Poisson detectors) and 2 (Ma et al.'s linear model)."""
    for eta, p_dark, e_d in GRID:
        table = table_fn(ref.wcp_link(eta, p_dark, e_d, click_model), PROTOCOL)
        expected = ref.closed_form_table(INTENSITIES, eta, p_dark, e_d, click_model)
        assert_within_rounding(table, expected, ref.rounding_scale(expected, eta, intensities=INTENSITIES))


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_single_photon_yield_and_error(click_model):
    """Y1, e1 of ``photon_number_observations``: closed form 4, or Ma's Y1 = Y0 + eta,
    e1 Y1 = Y0 / 2 + e_d eta (PRA 72, 012326, Eqs. (2), (4))."""
    for eta, p_dark, e_d in GRID:
        single = photon_number_fn(ref.wcp_link(eta, p_dark, e_d, click_model), PROTOCOL, 1)
        if click_model == "threshold":
            y1, e1 = ref.single_photon_threshold(eta, p_dark, e_d)
        else:
            y0 = p_dark * (2.0 - p_dark)
            if y0 + eta > 1.0:
                continue  # outside the linear model's domain (the engine clips the gain at 1)
            y1, e1 = y0 + eta, (0.5 * y0 + e_d * eta) / (y0 + eta)
        np.testing.assert_allclose(np.asarray(single.gain), y1, rtol=ULPS * EPS, atol=0)
        np.testing.assert_allclose(np.asarray(single.qber), e1, rtol=ULPS * EPS, atol=0)


# --- hand-derivable limits ------------------------------------------------------------------
@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_no_loss_means_eta_is_the_detector_efficiency(click_model):
    detector = qmc.ThresholdDetectors(efficiency=0.37, p_dark=1e-5, misalignment=0.02, click_model=click_model)
    for channel in (qmc.Fiber(length_km=0.0, loss_db_per_km=0.2), qmc.Attenuator(loss=0.0),
                    qmc.Fiber(length_km=10.0, loss_db_per_km=0.0), qmc.Series((qmc.Attenuator(0.0),) * 2)):
        link = qmc.Link(qmc.WeakCoherentSource(), channel, detector)
        assert float(link.transmittance()) == 0.37
        table = table_fn(link, PROTOCOL)
        expected = ref.closed_form_table(INTENSITIES, 0.37, 1e-5, 0.02, click_model)
        assert_within_rounding(table, expected, ref.rounding_scale(expected, 0.37, intensities=INTENSITIES))


def test_channel_losses_add_in_db():
    """Transmittance 10^(-dB/10); spans in series multiply (losses add in dB)."""
    a = qmc.Fiber(length_km=30.0, loss_db_per_km=0.2, insertion_loss_db=1.0)  # 7 dB
    b = qmc.Attenuator(loss=3.0)
    total = qmc.Series((a, b))
    assert float(total.loss_db()) == pytest.approx(10.0, rel=4 * EPS)
    assert float(total.transmittance()) == pytest.approx(0.1, rel=16 * EPS)
    assert float(total.transmittance()) == pytest.approx(float(a.transmittance() * b.transmittance()), rel=16 * EPS)


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_no_dark_counts_means_no_clicks_at_zero_intensity(click_model):
    for eta, e_d in itertools.product((1.0, 0.3, 1e-7), (0.0, 0.033, 0.5)):
        table = np.asarray(table_fn(ref.wcp_link(eta, 0.0, e_d, click_model), PROTOCOL))
        assert np.all(table[-1] == np.array([1.0, 0.0, 0.0, 0.0]))
        fock0 = np.asarray(table_fn(ref.wcp_link(eta, 0.0, e_d, click_model), PROTOCOL, qmc.FockSource(n_photons=0)))
        assert np.all(fock0 == np.array([1.0, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize("e_d", [0.0, 1e-6, 0.033, 0.25, 0.5])
def test_pure_misalignment_gives_error_fraction_e_d(e_d):
    """Without dark counts the matched-basis QBER is e_d: exactly for a single photon (threshold)
    and for weak coherent pulses in the linear model; for weak coherent pulses on two threshold
    detectors, double clicks (half errors) and saturation shift it by
    e_d (1 - e_d) (1 - 2 e_d) x^2 / 12 + O(x^4), x = mu eta (the x^3 terms cancel)."""
    for eta in (1.0, 0.3, 1e-3, 1e-7):
        single = observations_fn(ref.wcp_link(eta, 0.0, e_d), PROTOCOL, qmc.SinglePhotonSource())
        np.testing.assert_allclose(np.asarray(single.qber[:, :]), e_d, rtol=8 * EPS, atol=8 * EPS * e_d)
        linear = observations_fn(ref.wcp_link(eta, 0.0, e_d, "ma2005"), PROTOCOL)
        np.testing.assert_allclose(np.asarray(linear.qber[:-1]), e_d, rtol=8 * EPS, atol=8 * EPS * e_d)
    coefficient = e_d * (1.0 - e_d) * (1.0 - 2.0 * e_d) / 12.0
    for x in (0.1, 0.01):
        qber = float(observations_fn(ref.wcp_link(x, 0.0, e_d), ref.single_intensity(1.0)).qber[0, 0])
        # the O(x^4) remainder is below x^2 times the x^2 term for these x
        assert abs((qber - e_d) - coefficient * x**2) <= x**2 * abs(coefficient) * x**2 + 64 * EPS * e_d


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_mismatched_basis_is_a_fair_coin(click_model):
    """In the mismatched basis each detector gets half the light: P(det 0 only) = P(det 1 only)
    exactly, whatever Alice's bit (a QBER of 1/2)."""
    for eta, p_dark, e_d in GRID:
        table = np.asarray(table_fn(ref.wcp_link(eta, p_dark, e_d, click_model), PROTOCOL))
        for a, b in ((0, 1), (1, 0)):
            assert np.all(table[:, a, b, :, 1] == table[:, a, b, :, 2])
            assert np.all(table[:, a, b, 0] == table[:, a, b, 1])


# --- every row is a probability distribution (property) ------------------------------------
@st.composite
def link_params(draw):
    return np.array([
        draw(st.floats(0.0, 1.0)),                      # efficiency
        10.0 ** draw(st.floats(-12.0, -0.31)),          # p_dark up to ~0.49
        draw(st.floats(0.0, 0.5)),                      # misalignment
        draw(st.floats(0.0, 400.0)),                    # length_km
        draw(st.floats(0.0, 1.0)),                      # loss_db_per_km
        draw(st.floats(0.0, 10.0)),                     # mu
    ])


@jax.jit
def _tables(theta):
    efficiency, p_dark, e_d, length_km, loss, mu = theta
    protocol = qmc.DecoyBB84(intensities=jnp.stack([mu, 0.5 * mu, 0.0]), probabilities=(1.0, 0.0, 0.0))
    out = {}
    for click_model in ("threshold", "ma2005"):
        link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km, loss),
                        qmc.ThresholdDetectors(efficiency, p_dark, e_d, click_model))
        out[click_model] = exact.outcome_table(link, protocol)
        for n in (1, 2, 4):
            out[f"{click_model}-fock{n}"] = exact.outcome_table(link, protocol, qmc.FockSource(n_photons=n))
    return out


@settings(max_examples=50, deadline=None, derandomize=True)
@given(link_params())
def test_rows_are_probability_distributions(theta):
    """Entries in [0, 1] exactly, rows sum to 1 within rounding (4 terms <= 1, each a sum of
    products over photon numbers and background with complements 1 - x taken of values near 1: up
    to 64 ulps, e.g. 44 for a single photon at eta = 0.97, p_dark = 0.1), and relabelling Alice's
    bit swaps the two detectors (to the rounding of the swapped arguments' order: 4 ulps)."""
    for name, table in _tables(theta).items():
        table = np.asarray(table)
        assert np.all((table >= 0.0) & (table <= 1.0)), name
        np.testing.assert_allclose(table.sum(axis=-1), 1.0, rtol=0, atol=64 * EPS, err_msg=name)
        np.testing.assert_allclose(table[:, :, :, 0, 1], table[:, :, :, 1, 2], rtol=0, atol=4 * EPS, err_msg=name)
        np.testing.assert_allclose(table[:, :, :, 0, 3], table[:, :, :, 1, 3], rtol=0, atol=4 * EPS, err_msg=name)


# --- the physical model against Ma et al.'s linear model at GYS parameters -----------------
@pytest.mark.parametrize("length_km", [0.0, 50.0, 100.0, 140.0])
def test_threshold_model_vs_ma2005_linear_model(length_km):
    """Differences between the two click models, derived to leading order.

    With x = eta mu, C = 1 - exp(-x), p = p_dark, Y0 = 1 - (1 - p)^2 and e = e_d (matched basis):
      gain:        Q_threshold = 1 - (1 - Y0) exp(-x) = Q_linear - Y0 C          (exact)
      error gain:  E Q_threshold - E Q_linear = g(x) - p (1 - exp(-e x)) + p^2 / 2 - f0 f1 / 2
                   = -p x (1/2 + e) + e (1 - e) (1 - 2 e) x^3 / 12 + r,
                   |r| <= p x^2 + p^2 x + x^4            (Taylor remainder, coefficients < 1)
    where g(x) = 1 - exp(-e x) - e C is the saturation of the weak (error) detector, f_j the
    firing probabilities, and the x^2 terms of g and of the double clicks f0 f1 / 2 cancel.
    At GYS (Y0 = 1.7e-6, mu = 0.48) the gains differ by a relative Y0 C / Q <= Y0 and the QBERs
    by at most 2.3e-5 (at 0 km; 5e-6 at 140 km).
    """
    mu = 0.48
    th = observations_fn(ref.gys_link(length_km, "threshold"), ref.gys_protocol(mu))
    ma = observations_fn(ref.gys_link(length_km, "ma2005"), ref.gys_protocol(mu))
    link = ref.gys_link(length_km)
    x = float(link.transmittance()) * mu
    p = float(link.detector.p_dark)
    y0, e, c = float(link.detector.background_yield), ref.GYS_E_D, -math.expm1(-x)
    q_th, q_ma = float(th.gain[0, 0]), float(ma.gain[0, 0])
    eq_th, eq_ma = float(th.error_gain[0, 0]), float(ma.error_gain[0, 0])
    # each gain carries a few ulps of itself; their difference is ~ 1e-6 of them
    assert abs((q_th - q_ma) + y0 * c) <= 16 * EPS * q_ma
    assert 0 < (q_ma - q_th) / q_ma <= y0
    leading = -p * x * (0.5 + e) + e * (1 - e) * (1 - 2 * e) * x**3 / 12
    remainder = p * x**2 + p**2 * x + x**4
    assert abs((eq_th - eq_ma) - leading) <= remainder + 16 * EPS * eq_ma
    e_th, e_ma = float(th.qber[0, 0]), float(ma.qber[0, 0])
    bound = (abs(leading) + remainder) / eq_ma + y0 * c / q_th
    assert abs(e_th / e_ma - 1.0) <= bound * (1 + 1e-3)
    assert abs(e_th / e_ma - 1.0) <= 2.5e-5
