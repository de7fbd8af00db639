"""Asymptotic analyses: closed forms, decoy bounds against the true single-photon quantities,
invariants over random parameters (hypothesis), reasons for a zero rate, and the PLOB bound."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qmc
from qmc import presets
from qmc.analysis import h2, plob_bound, reason_text
from qmc.engines import exact

import reference as ref

EPS = ref.EPS
ALL_ANALYSES = sorted(qmc.ANALYSES)


@jax.jit
def key_rate(analysis, link, protocol):
    """One compilation per analysis class and protocol shape (analyses are PyTrees)."""
    return analysis.key_rate(link, protocol)


def h2_float(p: float) -> float:
    return 0.0 if p <= 0 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


# --- closed forms of Lo, Ma, Chen (2005) in Ma's linear model ------------------------------
@pytest.mark.parametrize("length_km", [0.0, 20.0, 50.0, 120.0])
def test_rates_match_lo_ma_chen_closed_forms(length_km):
    """GYS, linear model, q = 1/2 (Lo, Ma, Chen, PRL 94, 230504 (2005), Eq. (1)), mu = 0.48 with
    decoys and mu = 0.01 without:

        Q = Y0 + 1 - e^{-eta mu},  E = (Y0 / 2 + e_d (1 - e^{-eta mu})) / Q,
        Y1 = Y0 + eta,  e1 = (Y0 / 2 + e_d eta) / Y1,  Q1 = Y1 mu e^{-mu},
        infinite decoys: R = q [Q1 (1 - H(e1)) - f Q H(E)]
        single photons:  R = q Y1 [1 - H(e1) - f H(e1)]
        no decoy (GLLP): R = q [Q (1 - D) (1 - H(E / (1 - D))) - f Q H(E)], D = P(n >= 2) / Q.
    """
    f = ref.GYS_F_EC
    link = ref.gys_link(length_km)
    eta = float(link.transmittance())
    y0 = float(link.detector.background_yield)
    y1 = y0 + eta
    e1 = (0.5 * y0 + ref.GYS_E_D * eta) / y1

    def signal(mu):
        c = -math.expm1(-eta * mu)
        return y0 + c, (0.5 * y0 + ref.GYS_E_D * c) / (y0 + c)

    mu = 0.48
    q, e = signal(mu)
    q1 = y1 * mu * math.exp(-mu)
    mu_nd = 0.01
    q_nd, e_nd = signal(mu_nd)
    delta = math.fsum(ref.poisson_pmf(mu_nd, ref.poisson_cutoff(mu_nd))[2:]) / q_nd  # P(n >= 2) / Q
    expected = {  # (rate, protocol, magnitude of the terms it subtracts)
        "infinite_decoy": (0.5 * (q1 * (1 - h2_float(e1)) - f * q * h2_float(e)), ref.gys_protocol(mu),
                           0.5 * (q1 + f * q)),
        "single_photon": (0.5 * y1 * (1 - (1 + f) * h2_float(e1)), ref.gys_protocol(mu), 0.5 * (1 + f) * y1),
        "no_decoy": (0.5 * (q_nd * (1 - delta) * (1 - h2_float(e_nd / (1 - delta))) - f * q_nd * h2_float(e_nd)),
                     ref.gys_no_decoy_protocol(mu_nd), 0.5 * (1 + f) * q_nd),
    }
    for name, (value, protocol, scale) in expected.items():
        out = key_rate(qmc.ANALYSES[name](f_ec=f), link, protocol)
        if value <= 0:
            assert float(out.rate) == 0.0 and reason_text(out.reason) != "ok", name
        else:
            # a few ulps in each term (measured: at most about 1 ulp of the scale)
            assert abs(float(out.rate) - value) <= 16 * EPS * scale, (name, float(out.rate), value)
            assert reason_text(out.reason) == "ok"


def test_key_basis_and_basis_probabilities_weight_the_rate():
    """R = P(signal) sum_b P_A(b) P_B(b) r_b: key from both bases at p_z = 1/2 is q = 1/2 (twice
    the Z-only rate, the link being symmetric), and p_z -> 1 with key from Z tends to q = 1."""
    link = ref.gys_link(50.0, "threshold")
    analysis = qmc.InfiniteDecoy(f_ec=1.22)
    both = float(key_rate(analysis, link, ref.gys_protocol()).rate)
    z_only = float(key_rate(analysis, link, qmc.DecoyBB84((0.48, 0.05, 0.0), (1.0, 0.0, 0.0), 0.5, "Z")).rate)
    efficient = float(key_rate(analysis, link, qmc.DecoyBB84((0.48, 0.05, 0.0), (1.0, 0.0, 0.0), 0.9, "Z")).rate)
    decoys = float(key_rate(analysis, link, qmc.DecoyBB84((0.48, 0.05, 0.0), (0.8, 0.1, 0.1), 0.5, "both")).rate)
    assert both == pytest.approx(2 * z_only, rel=8 * EPS)
    assert efficient == pytest.approx(0.81 / 0.25 * z_only, rel=8 * EPS)
    assert decoys == pytest.approx(0.8 * both, rel=8 * EPS)


def test_observations_from_counts_equal_from_table():
    """Counts n * P(outcome) give the same gains and error gains as the table itself."""
    link, protocol = ref.gys_link(30.0, "threshold"), ref.gys_protocol()
    sent = jnp.full((3, 2, 2, 2), 2.0**40)

    @jax.jit
    def both(link, protocol):
        table = exact.outcome_table(link, protocol)
        return qmc.Observations.from_counts(table * sent[..., None], sent), qmc.Observations.from_table(table)

    from_counts, from_table = both(link, protocol)
    # detected = sent - no clicks: cancels to eps / Q relative
    gain = np.asarray(from_table.gain)
    np.testing.assert_allclose(from_counts.gain, gain, rtol=0, atol=8 * EPS)
    np.testing.assert_allclose(from_counts.error_gain, from_table.error_gain, rtol=8 * EPS)
    np.testing.assert_array_equal(from_counts.n_sent, np.full((3, 2), 2.0**41))  # two bits


def test_binary_entropy():
    p = jnp.asarray([0.0, 1e-300, 0.11, 0.5, 0.7, -0.1])
    expected = [0.0, h2_float(1e-300), h2_float(0.11), 1.0, 1.0, 0.0]  # clipped to [0, 1/2]
    np.testing.assert_allclose(jax.jit(h2)(p), expected, rtol=4 * EPS, atol=0)
    grad = jax.jit(jax.grad(h2))(0.0)
    assert np.isfinite(grad)


# --- decoy bounds against the true single-photon yield and error rate ----------------------
@functools.cache
def _bounds_fn(click_model: str):
    @jax.jit
    def fn(theta):
        efficiency, p_dark, e_d, mu, nu_frac, length_km, loss = theta
        link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km, loss),
                        qmc.ThresholdDetectors(efficiency, p_dark, e_d, click_model))
        nu = nu_frac * mu
        protocol = qmc.DecoyBB84(jnp.stack([mu, nu, 0.0]), (1.0, 0.0, 0.0))
        obs = exact.observations(link, protocol)
        y1_lower, e1_upper = qmc.VacuumWeak().bounds(obs, protocol)
        single = exact.photon_number_observations(link, protocol, 1)
        # float64 rounding of the bound: a few ulps of each term it adds up
        terms = mu / (mu * nu - nu**2) * (
            obs.gain[1] * jnp.exp(nu) + obs.gain[0] * jnp.exp(mu) * nu**2 / mu**2 + obs.gain[2]
        )
        numerator = obs.error_gain[1] * jnp.exp(nu) - obs.error_gain[2]
        numerator_terms = obs.error_gain[1] * jnp.exp(nu) + obs.error_gain[2]
        no_decoy = qmc.NoDecoy().key_rate(link, qmc.DecoyBB84(mu[None], (1.0,)))
        # GLLP's untagged pulses: vacuum and single photons, P(0) = e^-mu, P(1) = mu e^-mu
        untagged = obs.gain[2] * jnp.exp(-mu) + single.gain[0] * mu * jnp.exp(-mu)
        untagged_errors = obs.error_gain[2] * jnp.exp(-mu) + single.error_gain[0] * mu * jnp.exp(-mu)
        return dict(y1_lower=y1_lower, e1_upper=e1_upper, y1=single.gain[0], e1=single.qber[0],
                    terms=terms, numerator=numerator, numerator_terms=numerator_terms,
                    nd_untagged=no_decoy.y1 * mu * jnp.exp(-mu), nd_e1=no_decoy.e1, nd_reason=no_decoy.reason,
                    untagged=untagged, untagged_qber=untagged_errors / untagged)
    return fn


@st.composite
def decoy_params(draw, max_log_p_dark=-0.31, max_efficiency=1.0):
    return np.array([
        draw(st.floats(1e-3, max_efficiency)),          # efficiency
        10.0 ** draw(st.floats(-12.0, max_log_p_dark)),  # p_dark
        draw(st.floats(0.0, 0.5)),                      # misalignment
        draw(st.floats(1e-2, 1.0)),                     # mu
        draw(st.floats(1e-2, 0.95)),                    # nu / mu
        draw(st.floats(0.0, 300.0)),                    # length_km
        draw(st.floats(0.0, 0.4)),                      # loss_db_per_km
    ])


def _check_bounds(out):
    out = {k: np.asarray(v) for k, v in out.items()}
    tol_y1 = 16 * EPS * (out["terms"] + out["y1"])
    assert np.all(out["y1_lower"] <= out["y1"] + tol_y1), (out["y1_lower"], out["y1"])
    ok = (out["y1_lower"] > tol_y1) & (out["numerator"] > 0)
    rel = 16 * EPS * (out["numerator_terms"] / np.where(ok, out["numerator"], 1.0)
                      + tol_y1 / np.where(ok, out["y1_lower"], 1.0))
    assert np.all(np.where(ok, out["e1_upper"] >= out["e1"] * (1 - rel), True)), (out["e1_upper"], out["e1"])
    # GLLP without decoys: the untagged (vacuum + single-photon) gain Q0 + Q1 >= Q - P(n >= 2),
    # and their error rate <= E Q / (Q - P(n >= 2)) (key basis Z; phase error from X). The
    # subtraction Q - P(n >= 2) is accurate to a few ulps of Q + P(n >= 2) <= 2.
    has_bound = reason_text(out["nd_reason"]) != "single-photon bound not positive"
    if has_bound and out["nd_untagged"] > 0:
        assert out["nd_untagged"] <= out["untagged"][0] + 16 * EPS
        rel = 16 * EPS / out["nd_untagged"]
        assert out["nd_e1"] >= out["untagged_qber"][1] * (1 - rel)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(decoy_params())
def test_vacuum_weak_bounds_hold_threshold_model(theta):
    """Y1^L <= Y1 and e1^U >= e1 (Ma et al. 2005, Eqs. (34), (37)) for the physical model, in
    both bases, up to the float64 rounding of the bound (16 ulps of the terms it adds)."""
    _check_bounds(_bounds_fn("threshold")(theta))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(decoy_params(max_log_p_dark=-3.0, max_efficiency=0.99))
def test_vacuum_weak_bounds_hold_linear_model(theta):
    """The same in Ma's linear model, within its domain Y0 + eta <= 1 (no clipping of the gain:
    then Q_mu = sum_n P(n) Y_n holds exactly, which the bounds rely on)."""
    _check_bounds(_bounds_fn("ma2005")(theta))


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_vacuum_weak_bound_tightens_as_nu_goes_to_zero(click_model):
    """Y1 - Y1^L = (nu^2/mu^2 S_mu - S_nu) / (nu (1 - nu/mu)),  S_x = sum_{n>=2} Y_n x^n / n!,
    so the gap is nu L + O(nu^2) with L = S_mu / mu^2 - Y2 / 2, and the relative correction is
    nu (1/mu - Y3 / (6 L)) to first order; we bound it by nu (1/mu + Y3 / (6 L))."""
    mu = 0.48
    link = ref.gys_link(50.0, click_model)

    @jax.jit
    def evaluate(link, protocol):
        obs = exact.observations(link, protocol)
        yields = [exact.photon_number_observations(link, protocol, n).gain[0, 0] for n in (1, 2, 3)]
        return obs, qmc.VacuumWeak().bounds(obs, protocol)[0][0], yields

    y = dict(zip((1, 2, 3), map(float, evaluate(link, ref.gys_protocol(mu))[2])))
    gaps = []
    for nu in (0.1, 0.05, 0.01, 1e-3):
        protocol = ref.gys_protocol(mu, nu)
        obs, y1_lower, _ = evaluate(link, protocol)
        y1_lower = float(y1_lower)
        s_mu = float(obs.gain[0, 0]) * math.exp(mu) - float(obs.gain[2, 0]) - y[1] * mu
        limit = s_mu / mu**2 - y[2] / 2
        gap = y[1] - y1_lower
        assert gap > 0
        assert abs(gap / (nu * limit) - 1) <= nu * (1 / mu + y[3] / (6 * limit))
        gaps.append(gap / y[1])
    assert all(a > b for a, b in zip(gaps, gaps[1:]))
    assert gaps[1] < 0.02  # nu = 0.05 (the GYS study): Y1 within 2 %


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
@pytest.mark.parametrize("length_km", [0.0, 40.0, 100.0, 140.0])
def test_bounded_analyses_stay_below_infinite_decoys(click_model, length_km):
    """Less knowledge never helps: no_decoy <= vacuum_weak <= infinite_decoy at equal f."""
    link = ref.gys_link(length_km, click_model)
    for mu in (0.01, 0.1, 0.48, 0.9):
        protocol = ref.gys_protocol(mu, min(0.05, mu / 2))
        rates = {name: float(key_rate(qmc.ANALYSES[name](f_ec=1.22), link, protocol).rate)
                 for name in ("no_decoy", "vacuum_weak", "infinite_decoy")}
        assert rates["no_decoy"] <= rates["infinite_decoy"] * (1 + 64 * EPS)
        assert rates["vacuum_weak"] <= rates["infinite_decoy"] * (1 + 64 * EPS)


# --- invariants of every analysis over random parameters -----------------------------------
# The analyses of the core library (asymptotic decoy-state rates and PLOB). qmc.ANALYSES also
# registers the finite-key analyses of qmc.analysis.finite, which have their own tests.
CORE_ANALYSES = sorted(
    name for name, cls in qmc.ANALYSES.items() if cls.__module__ in ("qmc.analysis.asymptotic", "qmc.analysis.bounds")
)
N_LOSS = 16


@functools.cache
def _rates_fn(click_model: str):
    """Every core analysis at 2 N_LOSS points: lengths 0..max at the drawn loss coefficient, then
    loss coefficients 0..2x the drawn one at half the maximum length. One compilation."""

    @jax.jit
    def fn(theta):
        efficiency, log_p_dark, e_d, mu, nu_frac, p_z, p_signal, loss, max_length = theta
        detector = qmc.ThresholdDetectors(efficiency, 10.0**log_p_dark, e_d, click_model)
        decoys = qmc.DecoyBB84(jnp.stack([mu, nu_frac * mu, 0.0]),
                               jnp.stack([p_signal, (1 - p_signal) / 2, (1 - p_signal) / 2]), p_z)
        single = qmc.DecoyBB84(mu[None], (1.0,), p_z)
        steps = jnp.linspace(0.0, 1.0, N_LOSS)
        lengths = jnp.concatenate([max_length * steps, jnp.full(N_LOSS, 0.5 * max_length)])
        losses = jnp.concatenate([jnp.full(N_LOSS, loss), 2.0 * loss * steps])

        def at(length_km, loss_db_per_km):
            link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km, loss_db_per_km), detector)
            rates = {name: qmc.ANALYSES[name]().key_rate(link, single if name == "no_decoy" else decoys)
                     for name in CORE_ANALYSES}
            return rates, link.channel.transmittance()

        return jax.vmap(at)(lengths, losses)

    return fn


@st.composite
def rate_params(draw):
    mu = draw(st.floats(0.02, 1.0))
    return np.array([
        draw(st.floats(0.01, 1.0)),         # efficiency
        draw(st.floats(-12.0, -1.0)),       # log10 p_dark
        draw(st.floats(0.0, 0.5)),          # misalignment
        mu,
        draw(st.floats(0.01, 0.9)),         # nu / mu
        draw(st.floats(0.05, 0.95)),        # p_z
        draw(st.floats(0.1, 1.0)),          # probability of the signal
        draw(st.floats(0.0, 1.0)),          # loss_db_per_km (axis 2 goes to twice this)
        draw(st.floats(1.0, 3000.0)),       # largest length_km (axis 1)
    ])


def _check_rates(name, out, transmittance):
    rate = np.asarray(out.rate)
    assert not np.any(np.isnan(rate)), name
    assert np.all(rate >= 0.0), name
    if name in ("plob", "tgw"):  # bounds: infinite at transmittance 1
        assert np.all(np.isfinite(rate) | (np.asarray(transmittance) == 1.0))
    else:
        assert np.all(np.isfinite(rate)), name
    for field in ("y1", "e1", "gain", "qber"):
        assert not np.any(np.isnan(np.asarray(getattr(out, field)))), (name, field)
    # non-increasing as the loss grows, up to the rounding of a rate (a few ulps of the terms it
    # subtracts, which are bounded by the gain, or of the rate itself for PLOB)
    scale = np.asarray(out.gain) + rate
    for axis in (slice(0, N_LOSS), slice(N_LOSS, 2 * N_LOSS)):
        with np.errstate(invalid="ignore"):
            rises = np.diff(rate[axis]) > 64 * EPS * scale[axis][:-1]
        assert not np.any(rises), (name, rate[axis])


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
@settings(max_examples=50, deadline=None, derandomize=True)
@given(theta=rate_params())
def test_rates_finite_nonnegative_and_monotone_in_loss(click_model, theta):
    """Never NaN, never negative, and non-increasing in fiber length and in dB/km, for every
    core analysis (``CORE_ANALYSES``: infinite_decoy, no_decoy, plob, single_photon, vacuum_weak)."""
    rates, transmittance = _rates_fn(click_model)(theta)
    assert sorted(rates) == CORE_ANALYSES
    for name, out in rates.items():
        _check_rates(name, out, transmittance)


# --- reasons ---------------------------------------------------------------------------------
def test_zero_rates_come_with_reasons():
    protocol = ref.gys_protocol()
    dark = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(50.0, 0.2), qmc.ThresholdDetectors(0.0, 0.0, 0.01))
    noisy = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(50.0, 0.2), qmc.ThresholdDetectors(0.1, 1e-6, 0.2))
    good = ref.gys_link(20.0)  # inside every analysis' range (no decoy: 40 km)
    for name in ("infinite_decoy", "vacuum_weak", "no_decoy", "single_photon"):
        analysis = qmc.ANALYSES[name]()
        p = ref.gys_no_decoy_protocol(0.01) if name == "no_decoy" else protocol
        out = key_rate(analysis, dark, p)
        assert float(out.rate) == 0.0 and reason_text(out.reason) == "no detections", name
        out = key_rate(analysis, noisy, p)
        assert float(out.rate) == 0.0, name
        assert reason_text(out.reason) in ("error rate too high: key rate not positive",
                                           "single-photon bound not positive"), name
        out = key_rate(analysis, good, p)
        assert float(out.rate) > 0 and reason_text(out.reason) == "ok", name


# --- PLOB ------------------------------------------------------------------------------------
def test_plob_bound_values():
    """-log2(1 - eta) (Pirandola et al., Nat. Commun. 8, 15043 (2017)); ~ eta / ln 2 for small eta."""
    eta = np.array([0.0, 1e-300, 1e-12, 0.01, 0.5, 0.9, 1.0])
    expected = [0.0, 1e-300 / math.log(2), 1e-12 / math.log(2) * (1 + 5e-13), -math.log2(0.99), 1.0,
                -math.log2(0.1), math.inf]
    np.testing.assert_allclose(jax.jit(plob_bound)(eta), expected, rtol=8 * EPS, atol=0)
    link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(0.0, 0.2), qmc.ThresholdDetectors(0.1))
    out = jax.jit(qmc.PLOB().key_rate)(link)
    assert float(out.rate) == math.inf and reason_text(out.reason) == "ok"  # eta = 1: no finite bound


def test_plob_is_above_every_key_rate():
    """PLOB uses the channel transmittance only; detectors and sifting only lose more. Near-ideal
    link: perfect detectors, p_dark = 1e-12, e_d = 0, mu optimized on a grid."""
    detector = qmc.ThresholdDetectors(efficiency=1.0, p_dark=1e-12, misalignment=0.0)
    mus = jnp.geomspace(1e-3, 2.0, 200)

    @jax.jit
    def rates(length_km):
        link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km, 0.2), detector)
        out = {"plob": qmc.PLOB().key_rate(link).rate}
        for name in ("infinite_decoy", "vacuum_weak", "no_decoy", "single_photon"):
            def rate(mu):
                protocol = (qmc.DecoyBB84(mu[None], (1.0,)) if name == "no_decoy"
                            else qmc.DecoyBB84(jnp.stack([mu, 1e-4, 0.0]), (1.0, 0.0, 0.0)))
                return qmc.ANALYSES[name]().key_rate(link, protocol).rate
            out[name] = jnp.max(jax.vmap(rate)(mus))
        return out

    for length_km in (0.0, 1.0, 10.0, 50.0, 100.0, 200.0, 400.0):
        out = {k: float(v) for k, v in rates(length_km).items()}
        assert out["infinite_decoy"] > 0
        for name, rate in out.items():
            assert rate <= out["plob"], (length_km, name, rate, out["plob"])


def test_tgw_bound_values_and_limits():
    # Takeoka, Guha, Wilde (2014): log2((1 + eta) / (1 - eta)); 2 eta / ln 2 as eta -> 0, twice PLOB's
    # slope there; above PLOB everywhere; infinite at eta = 1.
    from qmc.analysis import plob_bound, tgw_bound

    for eta in (0.5, 0.1, 0.9):
        assert float(tgw_bound(eta)) == pytest.approx(math.log2((1 + eta) / (1 - eta)), rel=1e-13)
    for eta in (1e-4, 1e-8, 1e-12):
        assert float(tgw_bound(eta)) == pytest.approx(2 * eta / math.log(2), rel=max(eta, 1e-12))  # the next term: eta**2 / 3
        assert float(tgw_bound(eta)) / float(plob_bound(eta)) == pytest.approx(2.0, rel=1e-3)
    etas = np.logspace(-12, -1e-3, 50)
    assert np.all(np.asarray(tgw_bound(etas)) > np.asarray(plob_bound(etas)))
    assert float(tgw_bound(1.0)) == math.inf


def test_tgw_is_a_variant_of_the_default_study():
    from qmc import cli

    _, spec, _ = cli.prepare(cli.compose("sweep.length_km.values=[0,50]"))
    tgw = spec["analysis"]["variants"]["tgw"]
    assert isinstance(tgw, qmc.TGW)
    link = presets.gys_link(50.0)
    eta = float(link.channel.transmittance())
    assert float(tgw.key_rate(link).rate) == pytest.approx(math.log2((1 + eta) / (1 - eta)), rel=1e-12)
